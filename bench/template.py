"""Benchmark: a template over 200 znodes, one znode changes -> the rendered file installed, beside raw kazoo.

    .venv/bin/python -m bench.template [--znodes 200] [--changes 200] [--command run|render]

- a Jinja2 template reads every one of --znodes znodes (`znode(path)`); `zkherd run --template`
  (or `zkherd render`, --command) keeps DEST rendered, --change-delay 0; one znode is set at a
  time (each change a different znode) and the time to the runner's "configuration installed"
  log line (stamped after the rename) is taken, p50/p99;
- the reference, for the same sets in the same run: kazoo DataWatches on every znode in another
  client (set -> callback), the least any watcher can take (target: p99 under 2x its p99);
- a second reference: that watch plus a pipelined re-read of all the znodes (async gets), the
  least a renderer that re-reads everything on each change can take.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import statistics
import threading
import time

from kazoo.client import KazooClient

from bench.common import percentile, scratch_server
from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for

ROOT = "/bench/tpl"
INSTALLED = "configuration installed"


def log_times(text, pattern):
    return [datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
            for line in text.splitlines() if pattern in line]


def znode(i):
    return "%s/k%03d" % (ROOT, i)


def make_znodes(admin, count):
    admin.ensure_path(ROOT)
    txn = admin.transaction()
    for i in range(count):
        txn.create(znode(i), b"v0-%d" % i)
    txn.commit()


def write_template(path, count):
    # what a consumer's template looks like: one line per key, a value per line
    path.write_text("{%% for i in range(%d) %%}k{{ i }} = {{ znode('%s/k%%03d' | format(i)) }}\n{%% endfor %%}"
                    % (count, ROOT))


class RawWatches:
    """DataWatches on every znode in a client of their own; optionally re-reading them all on each event."""

    def __init__(self, hosts, count, reread=False):
        self.client = KazooClient(hosts)
        self.client.start()
        self.count, self.reread = count, reread
        self.seen, self.lock = {}, threading.Lock()
        for i in range(count):
            self.client.DataWatch(znode(i), self._recorder(i))

    def _recorder(self, index):
        def record(data, stat):
            if self.reread:  # the whole set, pipelined, from the watch thread
                for result in [self.client.get_async(znode(i)) for i in range(self.count)]:
                    result.get()
            with self.lock:
                self.seen[(index, data)] = time.time()
        return record

    def stop(self):
        self.client.stop()
        self.client.close()


def one_change_at_a_time(admin, proc, watches, count, changes):
    ours, references = [], [[] for watch in watches]
    for change in range(1, changes + 1):
        index = (change * 7) % count  # each change another znode
        value = b"v%d-%d" % (change, index)
        before = len(log_times(proc.log(), INSTALLED))
        sent = time.time()
        admin.set(znode(index), value)
        for watch in watches:
            wait_for(lambda watch=watch, key=(index, value): key in watch.seen, timeout=20)
        proc.wait_log(INSTALLED, count=before + 1, timeout=30)
        ours.append(1000 * (log_times(proc.log(), INSTALLED)[-1] - sent))
        for watch, reference in zip(watches, references):
            reference.append(1000 * (watch.seen[(index, value)] - sent))
        time.sleep(0.05)  # every change the first of its burst
    return ours, references


def main():
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--znodes", type=int, default=200)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--command", choices=["run", "render"], default="run")
    args = parser.parse_args()
    with scratch_server() as (server, work):
        admin = KazooClient(server.hosts)
        admin.start()
        make_znodes(admin, args.znodes)
        source, dest = work / "bench.conf.j2", work / "out" / "bench.conf"
        write_template(source, args.znodes)
        spec = "%s=%s" % (source, dest)
        if args.command == "run":
            argv = ["run", "--zk", server.hosts, "--template", spec, "--change-delay", "0", "--on-change", "none",
                    "--", "sleep", "1000"]
        else:
            argv = ["render", "--zk", server.hosts, "--change-delay", "0", spec]
        proc = Zkherd(argv, work / "zkherd.log")
        watches = [RawWatches(server.hosts, args.znodes), RawWatches(server.hosts, args.znodes, reread=True)]
        try:
            proc.wait_log(INSTALLED, timeout=60)
            ours, (raw, reread) = one_change_at_a_time(admin, proc, watches, args.znodes, args.changes)
            last = dest.read_text()
        finally:
            for watch in watches:
                watch.stop()
            proc.stop()
            admin.stop()
    assert last.count("\n") == args.znodes, "the rendered file lacks lines"
    ratio = percentile(ours, 99) / percentile(raw, 99)
    print("| measurement (%d znodes in one template, %d changes, one at a time) | p50 | p99 | target / reference |"
          % (args.znodes, args.changes))
    print("|---|---|---|---|")
    print("| one znode set -> rendered file installed (`zkherd %s`) | %.1f ms | %.1f ms | p99 under 2x raw: %.2fx |"
          % ("run --template" if args.command == "run" else "render", statistics.median(ours),
             percentile(ours, 99), ratio))
    print("| raw kazoo DataWatch, the same sets | %.1f ms | %.1f ms | reference |"
          % (statistics.median(raw), percentile(raw, 99)))
    print("| raw DataWatch + pipelined re-read of all %d znodes | %.1f ms | %.1f ms | reference |"
          % (args.znodes, statistics.median(reread), percentile(reread, 99)))


if __name__ == "__main__":
    main()
