"""Tree reads batched as ZooKeeper multiRead requests (common.multiread) against a real server:
the same nodes as the pipelined reads, one snapshot, chroots, errors per sub-op, and the fallback
when the server does not know the request."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from kazoo.security import make_digest_acl

from zkherd.common import multiread, tree
from zkherd.common.connection import ZkError


def build(zk, root, folders=3, leaves=40):
    zk.create(root, b"root")
    for folder in range(folders):
        zk.create("%s/f%d" % (root, folder), b"folder %d" % folder)
        for index in range(leaves):
            zk.create("%s/f%d/k%02d" % (root, folder, index), bytes([index]) * index)
    zk.create(root + "/empty", b"")


def same(first, second):
    assert set(first) == set(second)
    for path in first:
        a, b = first[path], second[path]
        assert (a.data, a.stat, a.children) == (b.data, b.stat, b.children), path


def test_multi_read_equals_pipelined(zk, make_zk, zk_base):
    root = zk_base + "/m"
    build(zk, root)
    client = make_zk()
    batched = tree.read_tree(client, root)
    assert client._zkherd_multiread is True  # ZooKeeper 3.8 has it
    multiread.forget(client)
    pipelined = tree.read_tree(client, root)
    assert len(batched) == 1 + 3 * 41 + 1
    same(batched, pipelined)


def test_many_requests_and_a_chroot(zk, make_zk, zk_server, zk_base, monkeypatch):
    root = zk_base + "/c"
    build(zk, root, folders=2, leaves=30)
    monkeypatch.setattr(multiread, "MAX_OPS", 10)  # five znodes a request: many requests a level
    client = make_zk(zk_server.hosts + root)
    chrooted = tree.read_tree(client, "/")
    assert client._zkherd_multiread is True
    plain = tree.read_tree(make_zk(), root)
    assert {("/" + p[len(root):].lstrip("/")) for p in plain} == set(chrooted)
    assert chrooted["/f1/k29"].data == plain[root + "/f1/k29"].data


def test_fallback_when_the_server_does_not_know_the_request(zk, make_zk, zk_base, monkeypatch):
    """A server before 3.6 answers an unknown request type with UNIMPLEMENTED and closes the
    connection: played here by a request type this server does not know either."""
    root = zk_base + "/old"
    build(zk, root, folders=2, leaves=10)
    monkeypatch.setattr(multiread.MultiRead, "type", 99)
    client = make_zk()
    nodes = tree.read_tree(client, root)
    assert client._zkherd_multiread is False
    assert client.connected  # kazoo re-opened the connection, in the same session
    monkeypatch.undo()
    same(nodes, tree.read_tree(make_zk(), root))


def test_denied_znode_is_reported(zk, make_zk, zk_base):
    root = zk_base + "/acl"
    zk.create(root, b"")
    zk.create(root + "/secret", b"s", acl=[make_digest_acl("alice", "pw", all=True)])
    client = make_zk()
    with pytest.raises(ZkError) as caught:
        tree.read_tree(client, root)
    assert caught.value.kind == "auth" and root + "/secret" in caught.value.message
    assert client._zkherd_multiread is True


def test_the_multi_read_is_one_snapshot(zk_server, zk, zk_base, fault_proxy, make_zk):
    """As test_znode_tree_concurrency's, for the batched path: held after the root's level was
    read (the probe is the first multiRead, the root's level the second), the root and a leaf
    change; the read starts again and returns the new state."""
    root = zk_base + "/snap"
    zk.create(root, b"r1")
    zk.create(root + "/leaf", b"l1")
    proxy = fault_proxy()
    client = make_zk(proxy.hosts)
    proxy.after_reply("multi_read", nth=2, then="blackhole")
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(tree.read_tree, client, root)
        assert proxy.wait_fired(1, timeout=30)
        zk.set(root, b"r2")
        zk.set(root + "/leaf", b"l2")
        proxy.heal()
        nodes = future.result(timeout=60)
    assert (nodes[root].data, nodes[root + "/leaf"].data) == (b"r2", b"l2")
    assert client._zkherd_multiread is True


def test_a_watch_keeps_the_pipelined_reads(zk, make_zk, zk_base):
    """The runner's --mirror-dir asks for watches; kazoo registers them only for its own requests."""
    root = zk_base + "/w"
    build(zk, root, folders=1, leaves=3)
    client = make_zk()
    events = []
    nodes = tree.read_tree(client, root, watch=events.append)
    assert len(nodes) == 1 + 4 + 1 and not hasattr(client, "_zkherd_multiread")
    zk.set(root + "/f0/k01", b"new")
    zk.create(root + "/empty/child", b"")
    deadline = time.monotonic() + 30
    while len(events) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {event.path for event in events} >= {root + "/f0/k01", root + "/empty"}
