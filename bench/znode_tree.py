"""Benchmark: zkherd.ops.znode_tree and the zkherd.ops.znode lookup, beside a loop of
community.general.znode, all against one local ZooKeeper server in the same run.

Prints a markdown table (scripts/bench.sh puts it into docs/benchmarks.md). Every figure is the
wall time of a whole `ansible-playbook` run, the way a user meets it.
    .venv/bin/python -m bench.znode_tree [--repeat 3] [--cg-collections DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.support.playbook import run_playbook
from tests.support.zkserver import ZooKeeperServer

TREE_FOLDERS, TREE_FILES = 10, 99  # 10 folders of 99 files: 1,000 znodes under the root
CG_NODES = 200
LOOKUP_NODES = 200


def timed(tasks, **kwargs):
    start = time.monotonic()
    run = run_playbook(tasks, **kwargs)
    elapsed = time.monotonic() - start
    if run.rc != 0:
        sys.exit("playbook failed:\n" + run.output[-3000:])
    return elapsed, run


def make_source(directory):
    for folder in range(TREE_FOLDERS):
        path = directory / ("service%02d" % folder)
        path.mkdir(parents=True)
        for index in range(TREE_FILES):
            (path / ("key%03d" % index)).write_text("value of key %d in service %d\n" % (index, folder))


def bench_tree(hosts, source, repeat):
    firsts, reruns = [], []
    for attempt in range(repeat):
        root = "/bench/tree%d" % attempt
        task = {"name": "tree", "zkherd.ops.znode_tree": {"path": root, "src": str(source)}}
        elapsed, run = timed([task], hosts=hosts)
        created = [p for p in run["tree"]["created"] if p == root or p.startswith(root + "/")]
        assert len(created) == 1 + TREE_FOLDERS * (1 + TREE_FILES), created[:3]
        firsts.append(elapsed)
        elapsed, run = timed([task], hosts=hosts)
        assert not run["tree"]["changed"], "the rerun changed something"
        reruns.append(elapsed)
    return firsts, reruns


def bench_community_general(hosts, cg_path):
    env = {"ANSIBLE_COLLECTIONS_PATH": os.pathsep.join([str(Path(".cache/collections").resolve()), cg_path])}
    task = {
        "name": "cg",
        "community.general.znode": {"hosts": hosts, "name": "/bench/cg/n{{ item }}", "value": "v{{ item }}",
                                    "state": "present"},
        "loop": "{{ range(%d) | list }}" % CG_NODES,
    }
    parent = {"name": "parent",
              "community.general.znode": {"hosts": hosts, "name": "/bench/cg", "value": "", "state": "present"}}
    timed([parent], env=env)
    first, run = timed([task], env=env)
    rerun, rerun_run = timed([task], env=env)
    changed_on_rerun = sum(1 for item in rerun_run["cg"]["results"] if item.get("changed"))
    return first, rerun, changed_on_rerun


def bench_lookup(hosts, repeat):
    with_lookup = {"name": "facts", "ansible.builtin.set_fact": {
        "values": "{{ query('zkherd.ops.znode', *paths) }}"}}
    without = {"name": "facts", "ansible.builtin.set_fact": {"values": "{{ paths }}"}}
    play_vars = {"zkherd_hosts": hosts, "paths": ["/bench/lookup/n%03d" % i for i in range(LOOKUP_NODES)]}
    timed([{"name": "load", "zkherd.ops.znode_tree": {
        "path": "/bench/lookup", "tree": {"n%03d" % i: "value %d" % i for i in range(LOOKUP_NODES)}}}], hosts=hosts)
    times = {"with": [], "without": []}
    for _unused in range(repeat):
        for kind, task in (("without", without), ("with", with_lookup)):
            elapsed, run = timed([task], play_vars=play_vars)
            if kind == "with":
                assert run["facts"]["ansible_facts"]["values"][7] == "value 7"
            times[kind].append(elapsed)
    return times


def baseline(repeat):
    return [timed([{"name": "nothing", "ansible.builtin.debug": {"msg": "hi"}}])[0] for _unused in range(repeat)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cg-collections", help="a collections path holding community.general (skip if absent)")
    args = parser.parse_args()
    med = statistics.median
    with tempfile.TemporaryDirectory(prefix="zkherd-bench-") as tmp:
        server = ZooKeeperServer(Path(tmp) / "zk").start()
        try:
            source = Path(tmp) / "src"
            make_source(source)
            empty = baseline(args.repeat)
            firsts, reruns = bench_tree(server.hosts, source, args.repeat)
            lookup = bench_lookup(server.hosts, max(args.repeat, 5))
            cg = bench_community_general(server.hosts, args.cg_collections) if args.cg_collections else None
        finally:
            server.stop()

    nodes = 1 + TREE_FOLDERS * (1 + TREE_FILES)
    rows = [
        ("ansible-playbook with one debug task (overhead of any run)", "%.2f s" % med(empty), "reference"),
        ("`znode_tree`, %d znodes, first apply (whole playbook)" % nodes, "%.2f s" % med(firsts), "under 3 s"),
        ("`znode_tree`, %d znodes, no-op rerun, changed=false" % nodes, "%.2f s" % med(reruns), "under 2 s"),
        ("`znode_tree`, per znode, first apply", "%.2f ms" % (1000 * med(firsts) / nodes), ""),
    ]
    if cg:
        first, rerun, changed = cg
        per_node = first / CG_NODES
        rows += [
            ("loop of `community.general.znode`, %d znodes, first run" % CG_NODES, "%.2f s" % first, "reference"),
            ("loop of `community.general.znode`, per znode", "%.3f s" % per_node, "about 0.22 s"),
            ("loop of `community.general.znode`, rerun: items reported changed",
             "%d of %d (%.2f s)" % (changed, CG_NODES, rerun), "not idempotent"),
            ("per-znode cost, community.general.znode / znode_tree",
             "%.0f times" % (per_node / (med(firsts) / nodes)), "over 50 times"),
        ]
    extra = med(lookup["with"]) - med(lookup["without"])
    rows += [
        ("playbook with a `set_fact` of %d paths, no lookup" % LOOKUP_NODES, "%.2f s" % med(lookup["without"]),
         "reference"),
        ("the same with `query('zkherd.ops.znode', ...)` of the %d znodes" % LOOKUP_NODES,
         "%.2f s" % med(lookup["with"]), ""),
        ("extra cost of the lookup of %d znodes" % LOOKUP_NODES, "%.3f s" % extra, "under 0.2 s"),
    ]
    print("| measurement | result | target / reference |")
    print("|---|---|---|")
    for row in rows:
        print("| %s | %s | %s |" % row)
    print()
    print("Medians of %d runs (lookup: %d); first-apply runs: %s s; reruns: %s s."
          % (args.repeat, max(args.repeat, 5), ", ".join("%.2f" % t for t in firsts),
             ", ".join("%.2f" % t for t in reruns)))


if __name__ == "__main__":
    main()
