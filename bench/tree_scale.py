"""Benchmark: trees of 10,000 and 50,000 znodes - `znode_tree` (whole playbook) and `zkherd tree
load` (whole command) apply and no-op rerun, and the in-process read + plan of the no-op rerun with
multi-read requests and with pipelined reads, beside raw kazoo pipelined reads of the same znodes
(get of every path, known beforehand), all against one local ZooKeeper in the same run.

Prints a markdown table (scripts/bench.sh puts it into docs/benchmarks.md).
    .venv/bin/python -m bench.tree_scale [--repeat 3] [--sizes 10000,50000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kazoo.client import KazooClient

from tests.support.playbook import run_playbook
from tests.support.runner import REPO
from tests.support.zkserver import ZooKeeperServer
from zkherd.common import multiread, tree, treeload

FILES_PER_FOLDER = 999  # folders of 999 files: 1,000 znodes each with the folder


def make_source(directory, size):
    paths = []
    for folder in range(size // (FILES_PER_FOLDER + 1)):
        path = directory / ("service%03d" % folder)
        path.mkdir(parents=True)
        for index in range(FILES_PER_FOLDER):
            (path / ("key%03d" % index)).write_text("value of key %d in service %d\n" % (index, folder))
            paths.append("service%03d/key%03d" % (folder, index))
    return paths


def timed(function, *args):
    start = time.monotonic()
    result = function(*args)
    return time.monotonic() - start, result


def playbook(hosts, root, source):
    run = run_playbook([{"name": "tree", "zkherd.ops.znode_tree": {"path": root, "src": str(source)}}], hosts=hosts)
    if run.rc != 0:
        sys.exit("playbook failed:\n" + run.output[-3000:])
    return run["tree"]["changed"]


def cli_load(hosts, root, source):
    run = subprocess.run([sys.executable, "-m", "zkherd", "tree", "load", str(source), root, "--zk", hosts],
                         cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    if run.returncode != 0:
        sys.exit("zkherd tree load failed: " + run.stderr[-3000:])
    return run.stdout.splitlines()[-1]


def raw_pipelined(client, root, leaves):
    pending = [client.get_async("%s/%s" % (root, leaf)) for leaf in leaves]
    return sum(len(result.get()[0]) for result in pending)


def in_process(client, root, desired, batched):
    setattr(client, multiread._ATTR, batched)  # noqa: SLF001 - pin the path measured
    current, plan = treeload.plan_load(client, root, desired)
    assert not plan.changed and len(current) == len(desired)
    return len(current)


def bench_size(hosts, tmp, size, repeat):
    source = Path(tmp) / ("src%d" % size)
    leaves = make_source(source, size)
    med = statistics.median
    figures = {}
    root = "/bench/scale%d" % size
    figures["apply"], changed = timed(playbook, hosts, root, source)
    assert changed
    figures["rerun"] = med([timed(playbook, hosts, root, source)[0] for _unused in range(repeat)])
    cli_root = "/bench/cli%d" % size
    figures["cli apply"], _line = timed(cli_load, hosts, cli_root, source)
    figures["cli rerun"] = med([timed(cli_load, hosts, cli_root, source)[0] for _unused in range(repeat)])
    client = KazooClient(hosts=hosts)
    client.start()
    try:
        desired = tree.desired_from_dir(str(source), root)
        for name, batched in (("multi", True), ("pipelined", False)):
            figures[name] = med([timed(in_process, client, root, desired, batched)[0] for _unused in range(repeat)])
        figures["raw"] = med([timed(raw_pipelined, client, root, leaves)[0] for _unused in range(repeat)])
    finally:
        client.stop()
        client.close()
    return len(desired), figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="10000,50000")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="zkherd-bench-") as tmp:
        server = ZooKeeperServer(Path(tmp) / "zk").start()
        try:
            for size in (int(s) for s in args.sizes.split(",")):
                results.append(bench_size(server.hosts, tmp, size, args.repeat))
        finally:
            server.stop()
    print("| znodes | measurement | result | target / reference |")
    print("|---|---|---|---|")
    for nodes, f in results:
        rows = [
            ("`znode_tree`, first apply (whole playbook)", f["apply"], ""),
            ("`znode_tree`, no-op rerun (whole playbook)", f["rerun"], "under 2.5 s at 50,000"),
            ("`zkherd tree load`, first apply (whole command)", f["cli apply"], ""),
            ("`zkherd tree load`, no-op rerun (whole command)", f["cli rerun"], ""),
            ("read + plan of the no-op rerun, multi-read (in-process)", f["multi"], "under 1 s at 10,000"),
            ("read + plan of the no-op rerun, pipelined reads (in-process)", f["pipelined"], "before multi-read"),
            ("raw kazoo: pipelined get of every leaf, paths known", f["raw"], "reference"),
        ]
        for name, seconds, target in rows:
            print("| %d | %s | %.2f s | %s |" % (nodes, name, seconds, target))
    print()
    print("Medians of %d runs (first applies: one run); multi-read / raw kazoo: %s." % (
        args.repeat, ", ".join("%.2f at %d" % (f["multi"] / f["raw"], n) for n, f in results)))


if __name__ == "__main__":
    main()
