"""Benchmark: `zkherd farm export` of a 1,000-member farm, one member changing, beside raw kazoo.

    .venv/bin/python -m bench.farm [--members 1000] [--changes 200]

- one member's data set -> DEST rewritten (the export's "export written" log line, stamped to the
  millisecond after the rename), p50/p99, and the ZooKeeper reads the export made per change;
- the reference, for the same changes in the same run: a kazoo DataWatch on that member (set ->
  callback in another client), the least any watcher can take;
- a burst: --burst sets of one member within about a second -> how many writes, and whether the
  file ends with the last state.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import re
import statistics
import threading
import time

from kazoo.client import KazooClient

from bench.common import percentile, scratch_server
from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for

MEMBER = "/farm/10.0.0.7"


def written_times(log_text):
    return [datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
            for line in log_text.splitlines() if "export written" in line]


def reads_so_far(log_text):
    return int(re.findall(r"reads=(\d+)", log_text)[-1])


def make_farm(admin, members):
    admin.ensure_path("/farm")
    txn = admin.transaction()
    for i in range(members):
        txn.create("/farm/10.0.%d.%d" % (i // 256, i % 256), json.dumps({"enabled": "1", "n": i}).encode())
        if (i + 1) % 500 == 0:
            txn.commit()
            txn = admin.transaction()
    txn.commit()


class RawWatch:
    """A DataWatch on MEMBER in its own client: when it last fired."""

    def __init__(self, hosts):
        self.client = KazooClient(hosts)
        self.client.start()
        self.seen, self.event = [], threading.Event()
        self.client.DataWatch(MEMBER, self._record)

    def _record(self, data, stat):
        self.seen.append(time.time())
        self.event.set()

    def stop(self):
        self.client.stop()
        self.client.close()


def one_change_at_a_time(admin, export, raw, changes):
    ours, reference, reads = [], [], []
    for change in range(1, changes + 1):
        log = export.log()
        before, reads_before = len(written_times(log)), reads_so_far(log)
        raw.event.clear()
        sent = time.time()
        admin.set(MEMBER, json.dumps({"enabled": "1", "n": 7, "change": change}).encode())
        wait_for(raw.event.is_set, timeout=10)
        export.wait_log("export written", count=before + 1, timeout=20)
        log = export.log()
        reference.append(1000 * (raw.seen[-1] - sent))
        ours.append(1000 * (written_times(log)[-1] - sent))
        reads.append(reads_so_far(log) - reads_before)
        time.sleep(0.1)  # more than the export's GAP: every change is the first of its burst
    return ours, reference, reads


def burst(admin, export, dest, count):
    before = len(written_times(export.log()))
    started = time.monotonic()
    for change in range(count):
        admin.set(MEMBER, json.dumps({"burst": change}).encode())
        time.sleep(1.0 / count)
    took = time.monotonic() - started
    last = {"burst": count - 1}
    wait_for(lambda: json.loads(dest.read_text()).get("10.0.0.7") == last, timeout=20)
    time.sleep(0.5)  # a write after the last state would be a bug: give it time to show
    writes = len(written_times(export.log())) - before
    return writes, took, json.loads(dest.read_text()).get("10.0.0.7") == last


def main():
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--burst", type=int, default=200)
    args = parser.parse_args()
    with scratch_server() as (server, work):
        admin = KazooClient(server.hosts)
        admin.start()
        make_farm(admin, args.members)
        dest = work / "farm.json"
        export = Zkherd(["farm", "export", "/farm", str(dest), "--zk", server.hosts], work / "export.log")
        raw = RawWatch(server.hosts)
        try:
            export.wait_log("export written", timeout=60)
            ours, reference, reads = one_change_at_a_time(admin, export, raw, args.changes)
            writes, took, last = burst(admin, export, dest, args.burst)
        finally:
            raw.stop()
            export.stop()
            admin.stop()
    print("| measurement (%d members, %d changes, one at a time) | p50 | p99 | target / reference |"
          % (args.members, args.changes))
    print("|---|---|---|---|")
    print("| one member set -> export file rewritten | %.1f ms | %.1f ms | p99 under 10 ms |"
          % (statistics.median(ours), percentile(ours, 99)))
    print("| raw kazoo DataWatch, the same sets | %.1f ms | %.1f ms | reference |"
          % (statistics.median(reference), percentile(reference, 99)))
    extra = [o - r for o, r in zip(ours, reference)]
    print("| export minus raw watch, per set | %.1f ms | %.1f ms | |"
          % (statistics.median(extra), percentile(extra, 99)))
    print("| ZooKeeper reads by the export per change | %d | %d | O(1) |" % (statistics.median(reads), max(reads)))
    print("| burst of %d sets in %.1f s -> writes | %d | | far fewer than %d; last state written: %s |"
          % (args.burst, took, writes, args.burst, "yes" if last else "NO"))


if __name__ == "__main__":
    main()
