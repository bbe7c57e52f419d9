from __future__ import annotations

from ansible_collections.zkherd.ops.plugins.module_utils.common import txn


def test_chunks_respect_budget_and_order():
    ops = [txn.Op("create", "/n%03d" % i, b"x" * 100) for i in range(10)]
    per_op = ops[0].size()
    batches = list(txn.chunks(ops, budget=per_op * 3))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert [op.path for b in batches for op in b] == [op.path for op in ops]


def test_chunks_respect_op_count():
    ops = [txn.Op("delete", "/n%d" % i) for i in range(2500)]
    assert [len(b) for b in txn.chunks(ops)] == [1000, 1000, 500]


def test_a_big_op_gets_its_own_transaction():
    big = txn.Op("set", "/big", b"x" * 950, version=1)
    small = txn.Op("set", "/small", b"y", version=1)
    assert [len(b) for b in txn.chunks([small, big, small], budget=1000)] == [1, 1, 1]


def test_undo():
    create = txn.Op("create", "/a", b"new").undo()
    assert (create.kind, create.path, create.version) == ("delete", "/a", 0)
    update = txn.Op("set", "/a", b"new", version=4, old=b"old").undo()
    assert (update.kind, update.data, update.version) == ("set", b"old", 5)
    delete = txn.Op("delete", "/a", version=2, old=b"old", acl=["acl"]).undo()
    assert (delete.kind, delete.data, delete.acl) == ("create", b"old", ["acl"])
