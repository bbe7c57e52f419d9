"""Benchmark: mirrored configuration and rolling restarts of `zkherd run`, beside raw kazoo.

    .venv/bin/python -m bench.config [--runners 20] [--pushes 10] [--rolling 10]

- propagation: one znode set -> the mirrored file rewritten by each of N runners (the time of
  their "configuration installed" log line, --change-delay 0), beside raw kazoo data watches of
  N clients seeing the same kind of change, in the same run;
- rolling restart of M runners whose health check passes at once: total time, and per step the
  overhead beyond the child's own restart and health check (from each runner's log).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import re
import statistics
import threading
import time

from kazoo.client import KazooClient

from bench.common import percentile, scratch_server
from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for


def log_times(text, pattern):
    """Wall-clock times (epoch seconds) of the log lines matching *pattern*."""
    return [datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
            for line in text.splitlines() if re.search(pattern, line)]


def propagation(hosts, work, runners, pushes):
    admin = KazooClient(hosts)
    admin.start()
    admin.ensure_path("/bench/cfg")
    admin.set("/bench/cfg", b"v0")
    procs = [Zkherd(["run", "--zk", hosts, "--change-delay", "0", "--on-change", "none",
                     "--mirror", "%s/f%d=/bench/cfg" % (work, i), "--", "sleep", "1000"], work / ("p%d.log" % i))
             for i in range(runners)]
    for proc in procs:
        proc.wait_log("started child", timeout=30)
    latencies = []
    for push in range(1, pushes + 1):
        sent = time.time()
        admin.set("/bench/cfg", b"v%d" % push)
        for i in range(len(procs)):
            wait_for(lambda i=i, push=push: (work / ("f%d" % i)).read_bytes() == b"v%d" % push, timeout=20)
        time.sleep(0.2)
        latencies += [1000 * (log_times(proc.log(), "configuration installed")[-1] - sent) for proc in procs]
    for proc in procs:
        proc.stop()
    admin.stop()
    return latencies


def raw_watches(hosts, clients, pushes):
    admin = KazooClient(hosts)
    admin.start()
    admin.ensure_path("/bench/raw")
    seen, lock = {}, threading.Lock()
    watchers = []
    for i in range(clients):
        client = KazooClient(hosts)
        client.start()
        watchers.append(client)

        def recorder(index):
            def record(data, stat):  # kazoo passes the event too if a third argument exists
                with lock:
                    seen[(index, data)] = time.time()
            return record

        client.DataWatch("/bench/raw", recorder(i))
    latencies = []
    for push in range(1, pushes + 1):
        value = b"v%d" % push
        sent = time.time()
        admin.set("/bench/raw", value)
        wait_for(lambda value=value: all((i, value) in seen for i in range(clients)), timeout=20)
        latencies += [1000 * (seen[(i, value)] - sent) for i in range(clients)]
    for client in watchers + [admin]:
        client.stop()
    return latencies


def rolling(hosts, work, count):
    admin = KazooClient(hosts)
    admin.start()
    admin.ensure_path("/bench/roll-cfg")
    admin.set("/bench/roll-cfg", b"v0")
    procs = [Zkherd(["run", "--zk", hosts, "--change-delay", "0", "--mirror", "%s/r%d=/bench/roll-cfg" % (work, i),
                     "--rolling-lock", "/bench/rolling", "--health", "true", "--health-delay", "0",
                     "--health-interval", "1", "--", "sleep", "1000"], work / ("r%d.log" % i))
             for i in range(count)]
    for proc in procs:
        proc.wait_log("child is healthy", timeout=30)
    sent = time.time()
    admin.set("/bench/roll-cfg", b"v1")
    for proc in procs:
        proc.wait_log("rolling lock released", timeout=60)
    steps = sorted((log_times(p.log(), "rolling lock acquired")[-1], log_times(p.log(), "rolling lock released")[-1],
                    log_times(p.log(), "stopping child")[-1], log_times(p.log(), "child is healthy")[-1])
                   for p in procs)
    total = steps[-1][1] - sent
    own = [step[3] - step[2] for step in steps]  # the child's own restart + health check
    durations = [step[1] - step[0] for step in steps]
    gaps = [nxt[0] - cur[1] for cur, nxt in zip(steps, steps[1:])]  # lock hand-over between hosts
    overhead = [1000 * (d - o) for d, o in zip(durations, own)] + [1000 * g for g in gaps]
    for proc in procs:
        proc.stop()
    admin.stop()
    return total, own, overhead, len(steps)


def main():
    logging.basicConfig(level=logging.ERROR)  # kazoo's reconnect chatter when the server stops
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", type=int, default=20)
    parser.add_argument("--pushes", type=int, default=10)
    parser.add_argument("--rolling", type=int, default=10)
    args = parser.parse_args()
    with scratch_server() as (server, work):
        ours = propagation(server.hosts, work, args.runners, args.pushes)
        raw = raw_watches(server.hosts, args.runners, args.pushes)
        total, own, overhead, steps = rolling(server.hosts, work, args.rolling)
    print("| measurement | p50 | p99 | target / reference |")
    print("|---|---|---|---|")
    print("| znode set -> mirrored file installed, %d runners x %d pushes | %.1f ms | %.1f ms | p99 under 50 ms |"
          % (args.runners, args.pushes, statistics.median(ours), percentile(ours, 99)))
    print("| raw kazoo DataWatch callback, %d clients x %d pushes | %.1f ms | %.1f ms | reference |"
          % (args.runners, args.pushes, statistics.median(raw), percentile(raw, 99)))
    print()
    print("| rolling restart of %d runners (health check `true`) | result | target |" % steps)
    print("|---|---|---|")
    print("| total, znode set -> last runner released the rolling lock | %.2f s | |" % total)
    print("| the child's own restart + health check, per step (median) | %.1f ms | reference |"
          % (1000 * statistics.median(own)))
    print("| overhead per step beyond that (median / max) | %.1f ms / %.1f ms | under 50 ms |"
          % (statistics.median(overhead), max(overhead)))


if __name__ == "__main__":
    main()
