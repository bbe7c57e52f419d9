"""Two zkherd.ops.znode_tree runs on one tree at the same time, each a real ansible-playbook:
exactly one fails (error_kind version) and the tree is wholly the other's source.

The interleavings are staged with one fault proxy per run (tests/support/faultproxy.py) instead
of being left to timing: a run is held right before its first transaction (both have read the
tree), or right after its first one of two (the other reads a half-written tree).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support import zkutil
from tests.support.playbook import run_playbook

FOLDERS, LEAVES = 11, 100  # 1,100 leaves: two transactions of at most 1,000 operations


def source(name, version=0):
    return {"d%02d" % d: {"k%03d" % i: "%s%d-%02d-%03d" % (name, version, d, i) for i in range(LEAVES)}
            for d in range(FOLDERS)}


def expected(root, name, version=0):
    tree = {root: b""}
    for folder, leaves in source(name, version).items():
        tree["%s/%s" % (root, folder)] = b""
        tree.update({"%s/%s/%s" % (root, folder, key): value.encode() for key, value in leaves.items()})
    return tree


def snapshot(zk, root):
    return {path: zk.get(path)[0] for path in [root, *zkutil.list_tree(zk, root)]}


def run(name, root, hosts, version=0):
    # a long session: a run may be held by its proxy while the other one works
    task = {"name": name, "ignore_errors": True, "zkherd.ops.znode_tree": dict(
        path=root, tree=source(name, version), session_timeout=40, connect_timeout=60)}
    result = run_playbook([task], hosts=hosts)
    return result[name], result.output


def both_read_then_commit(pool, proxies, root, version):
    """Both runs read the tree, are held before their first transaction, then go on together."""
    for proxy in proxies.values():
        proxy.before_request("multi", then="blackhole")
    futures = {name: pool.submit(run, name, root, proxy.hosts, version) for name, proxy in proxies.items()}
    for proxy in proxies.values():
        assert proxy.wait_fired(1, timeout=240), "a run never reached its first transaction"
    for proxy in proxies.values():
        proxy.heal()
    return {name: future.result(timeout=300) for name, future in futures.items()}


def assert_one_winner(results, tree, root, version=0):
    failed = [name for name, (result, _out) in results.items() if result["failed"]]
    assert len(failed) == 1, {name: (r.get("msg"), r.get("changed")) for name, (r, _o) in results.items()}
    loser = results[failed[0]][0]
    winner = next(name for name in results if name not in failed)
    assert results[winner][0]["changed"], results[winner][1]
    assert loser["error_kind"] == "version", loser
    assert "another writer" in loser["msg"], loser["msg"]
    assert tree == expected(root, winner, version), "the tree is not wholly %s's" % winner
    return winner, loser


def test_runs_that_read_the_same_tree(zk_server, zk, zk_base, fault_proxy):
    """Created, then updated, by two runs that read the same tree: the first transaction to
    commit wins, the other run changes nothing."""
    root = zk_base + "/race"
    with ThreadPoolExecutor(2) as pool:
        for version in range(3):  # new values each round: both runs have all to write
            proxies = {"A": fault_proxy(), "B": fault_proxy()}
            results = both_read_then_commit(pool, proxies, root, version)
            _winner, loser = assert_one_winner(results, snapshot(zk, root), root, version)
            assert not loser["changed"] and "nothing was changed" in loser["msg"], loser
            assert loser["created"] == loser["updated"] == loser["deleted"] == []


def test_a_run_that_reads_a_half_written_tree(zk_server, zk, zk_base, fault_proxy):
    """A commits its first transaction and is held; B reads that half-written tree. Where the
    tree already holds B's values B writes nothing, so only a check of the whole tree can stop
    A's second transaction from landing on B's tree (or B's from landing on A's)."""
    root = zk_base + "/half"
    with ThreadPoolExecutor(2) as pool:
        # 1. B runs through while A is held between its transactions: B wins, A fails
        assert not run("B", root, zk_server.hosts)[0]["failed"]
        proxy_a = fault_proxy()
        proxy_a.after_reply("multi", then="blackhole")
        future_a = pool.submit(run, "A", root, proxy_a.hosts)
        assert proxy_a.wait_fired(1, timeout=240), "A never committed its first transaction"
        result_b, out_b = run("B", root, zk_server.hosts)
        assert not result_b["failed"] and result_b["changed"], out_b
        proxy_a.heal()
        result_a = future_a.result(timeout=300)[0]
        assert result_a["failed"] and result_a["error_kind"] == "version", result_a
        assert result_a["changed"], "A did write its first transaction"
        assert snapshot(zk, root) == expected(root, "B")

        # 2. B reads the half-written tree and is held before committing; A finishes first
        assert not run("B", root, zk_server.hosts)[0]["failed"]
        proxy_a, proxy_b = fault_proxy(), fault_proxy()
        proxy_a.after_reply("multi", then="blackhole")
        proxy_b.before_request("multi", then="blackhole")
        future_a = pool.submit(run, "A", root, proxy_a.hosts)
        assert proxy_a.wait_fired(1, timeout=240)
        future_b = pool.submit(run, "B", root, proxy_b.hosts)
        assert proxy_b.wait_fired(1, timeout=240), "B never reached its first transaction"
        proxy_a.heal()
        result_a = future_a.result(timeout=300)[0]
        proxy_b.heal()
        result_b = future_b.result(timeout=300)[0]
        assert not result_a["failed"], result_a
        assert result_b["failed"] and result_b["error_kind"] == "version", result_b
        assert not result_b["changed"] and "nothing was changed" in result_b["msg"], result_b
        assert snapshot(zk, root) == expected(root, "A")


def test_the_read_is_one_snapshot(zk_server, zk, zk_base, fault_proxy, make_zk):
    """read_tree is held right after it read the root's data; meanwhile the root and a leaf not
    read yet change. Keeping the old root with the new leaf would be a tree that never existed:
    the read starts again and returns the new state. (The pipelined reads; test_tree_multiread.py
    holds the multi-read the same way.)"""
    from zkherd.common import multiread, tree

    root = zk_base + "/snap"
    zk.create(root, b"r1")
    zk.create(root + "/leaf", b"l1")
    proxy = fault_proxy()
    client = make_zk(proxy.hosts)
    multiread.forget(client)  # this server has multi-read: the pipelined reads are tested here
    proxy.after_reply("get_data", then="blackhole")
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(tree.read_tree, client, root)
        assert proxy.wait_fired(1, timeout=30)
        zk.set(root, b"r2")
        zk.set(root + "/leaf", b"l2")
        proxy.heal()
        nodes = future.result(timeout=30)
    assert (nodes[root].data, nodes[root + "/leaf"].data) == (b"r2", b"l2")
