"""Benchmark: lock handover of `zkherd run`, beside raw kazoo in the same run, and the runner's memory.

    .venv/bin/python -m bench.runner [--trials 50] [--crash-trials 5]

- clean handover: the holder's command exits; time until the standby's command runs (both stamp
  CLOCK_REALTIME with `date +%s.%N`, so the figure includes two process starts);
- raw kazoo: Lock.release() in one client -> Lock.acquire() returns in another;
- crash handover: SIGKILL of the holder's runner -> the standby's command runs, beside the
  negotiated session timeout (the server must expire the session first);
- resident memory of a runner wrapping `sleep`, beside a bare Python that imported kazoo.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from kazoo.client import KazooClient

from bench.common import percentile, scratch_server
from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for


def child(work, name):
    """Stamps its start, waits for its trigger file, stamps its exit and exits."""
    return ["sh", "-c", 'date +%%s.%%N > %s/%s.start; while [ ! -e %s/%s.go ]; do sleep 0.005; done; '
                        'date +%%s.%%N > %s/%s.exit' % (work, name, work, name, work, name)]


def stamp(path):
    wait_for(lambda: path.exists() and path.read_text().strip(), timeout=20)
    return float(path.read_text())


def clean_handovers(hosts, work, trials, session_timeout=10):
    args = ["run", "--zk", hosts, "--session-timeout", str(session_timeout), "--lock", "/bench/clean", "--"]
    runners = [Zkherd(args + child(work, "r0"), work / "r0.log")]
    stamp(work / "r0.start")
    results = []
    for i in range(1, trials + 1):
        runners.append(Zkherd(args + child(work, "r%d" % i), work / ("r%d.log" % i)))
        runners[-1].wait_log("queued for lock")
        (work / ("r%d.go" % (i - 1))).touch()
        results.append(stamp(work / ("r%d.start" % i)) - stamp(work / ("r%d.exit" % (i - 1))))
        runners[-2].wait()
    (work / ("r%d.go" % trials)).touch()
    runners[-1].wait()
    return [1000 * r for r in results]


def raw_kazoo(hosts, trials):
    holder, waiter = KazooClient(hosts), KazooClient(hosts)
    holder.start()
    waiter.start()
    results = []
    try:
        for i in range(trials):
            lock_a, lock_b = holder.Lock("/bench/raw%d" % i), waiter.Lock("/bench/raw%d" % i)
            lock_a.acquire()
            acquired = []

            def take(lock, acquired):
                lock.acquire()
                acquired.append(time.monotonic())

            thread = threading.Thread(target=take, args=(lock_b, acquired))
            thread.start()
            wait_for(lambda lock=lock_b: lock.contenders() and len(lock.contenders()) == 2 or lock.is_acquired)
            time.sleep(0.02)
            released = time.monotonic()
            lock_a.release()
            thread.join(10)
            results.append(1000 * (acquired[0] - released))
            lock_b.release()
    finally:
        for client in (holder, waiter):
            client.stop()
            client.close()
    return results


def crash_handovers(hosts, work, trials, session_timeout=2.0):
    results = []
    for i in range(trials):
        args = ["run", "--zk", hosts, "--session-timeout", str(session_timeout), "--lock", "/bench/crash%d" % i, "--"]
        holder = Zkherd(args + child(work, "h%d" % i), work / ("h%d.log" % i))
        stamp(work / ("h%d.start" % i))
        standby = Zkherd(args + child(work, "s%d" % i), work / ("s%d.log" % i))
        standby.wait_log("queued for lock")
        killed = time.time()
        holder.kill()
        results.append(stamp(work / ("s%d.start" % i)) - killed)
        (work / ("s%d.go" % i)).touch()
        standby.wait()
    return results


def rss_kib(pid):
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def memory(hosts, work):
    runner = Zkherd(["run", "--zk", hosts, "--lock", "/bench/mem", "--", "sleep", "1000"], work / "mem.log")
    runner.wait_log("started child")
    time.sleep(1.0)
    ours = rss_kib(runner.pid)
    runner.stop()
    bare = subprocess.Popen([sys.executable, "-c", "import kazoo.client, time; time.sleep(1000)"])
    time.sleep(1.5)
    theirs = rss_kib(bare.pid)
    bare.kill()
    bare.wait()
    return ours, theirs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--crash-trials", type=int, default=5)
    args = parser.parse_args()
    with scratch_server() as (server, work):
        clean = clean_handovers(server.hosts, work, args.trials)
        raw = raw_kazoo(server.hosts, args.trials)
        crash = crash_handovers(server.hosts, work, args.crash_trials)
        ours, theirs = memory(server.hosts, work)
    print("| measurement | p50 | p99 | max | target / reference |")
    print("|---|---|---|---|---|")
    print("| clean handover, holder's command exits -> standby's command runs (%d trials) | %.1f ms | %.1f ms | "
          "%.1f ms | p50 under 20 ms, p99 under 100 ms |"
          % (len(clean), statistics.median(clean), percentile(clean, 99), max(clean)))
    print("| raw kazoo `Lock.release()` -> `Lock.acquire()` returns in another client (%d trials) | %.1f ms | "
          "%.1f ms | %.1f ms | reference |" % (len(raw), statistics.median(raw), percentile(raw, 99), max(raw)))
    print("| crash handover, SIGKILL of the holder's runner -> standby's command runs (%d trials) | %.2f s | "
          "%.2f s | %.2f s | session timeout 2.00 s; within 2.50 s |"
          % (len(crash), statistics.median(crash), percentile(crash, 99), max(crash)))
    print()
    print("| resident memory | KiB |")
    print("|---|---|")
    print("| `zkherd run --lock ... -- sleep 1000` (the runner process) | %d |" % ours)
    print("| bare Python that imported kazoo.client | %d |" % theirs)


if __name__ == "__main__":
    main()
