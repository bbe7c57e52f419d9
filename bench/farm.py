"""Benchmark: `zkherd farm export` of a 1,000-member farm, one member changing, beside raw kazoo.

    .venv/bin/python -m bench.farm [--members 1000] [--changes 30]

- one member's data set -> DEST rewritten (the export's "export written" log line), p50/p99, and
  the ZooKeeper reads the export made per change (from its log);
- raw kazoo: a DataWatch on one member, set -> callback, in the same run.
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


def written_times(log_text):
    return [datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
            for line in log_text.splitlines() if "export written" in line]


def main():
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args()
    with scratch_server() as (server, work):
        admin = KazooClient(server.hosts)
        admin.start()
        txn = admin.transaction()
        admin.ensure_path("/farm")
        for i in range(args.members):
            txn.create("/farm/10.0.%d.%d" % (i // 256, i % 256), json.dumps({"enabled": "1", "n": i}).encode())
            if (i + 1) % 500 == 0:
                txn.commit()
                txn = admin.transaction()
        txn.commit()
        dest = work / "farm.json"
        export = Zkherd(["farm", "export", "/farm", str(dest), "--zk", server.hosts], work / "export.log")
        export.wait_log("export written", timeout=60)
        ours, reads = [], []
        for change in range(1, args.changes + 1):
            before = len(written_times(export.log()))
            reads_before = int(re.findall(r"reads=(\d+)", export.log())[-1])
            sent = time.time()
            admin.set("/farm/10.0.0.7", json.dumps({"enabled": "1", "n": 7, "change": change}).encode())
            export.wait_log("export written", count=before + 1, timeout=20)
            ours.append(1000 * (written_times(export.log())[-1] - sent))
            reads.append(int(re.findall(r"reads=(\d+)", export.log())[-1]) - reads_before)
            time.sleep(0.1)
        export.stop()

        watcher = KazooClient(server.hosts)
        watcher.start()
        seen, event = [], threading.Event()

        def record(data, stat):
            seen.append(time.time())
            event.set()

        watcher.DataWatch("/farm/10.0.0.8", record)
        raw = []
        for change in range(args.changes):
            event.clear()
            sent = time.time()
            admin.set("/farm/10.0.0.8", json.dumps({"change": change}).encode())
            wait_for(event.is_set, timeout=10)
            raw.append(1000 * (seen[-1] - sent))
        watcher.stop()
        admin.stop()
    print("| measurement (%d members, %d changes) | p50 | p99 | target / reference |" % (args.members, args.changes))
    print("|---|---|---|---|")
    print("| one member set -> export file rewritten | %.1f ms | %.1f ms | p99 under 100 ms |"
          % (statistics.median(ours), percentile(ours, 99)))
    print("| raw kazoo DataWatch on one member | %.1f ms | %.1f ms | reference |"
          % (statistics.median(raw), percentile(raw, 99)))
    print("| ZooKeeper reads by the export per change | %d | %d | O(1) |" % (statistics.median(reads), max(reads)))


if __name__ == "__main__":
    main()
