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
    update = txn.Op("set", "/a", b"new", version=4, old=b"old", czxid=12).undo()
    assert (update.kind, update.data, update.version, update.czxid) == ("set", b"old", 5, 12)
    delete = txn.Op("delete", "/a", version=2, old=b"old", acl=["acl"]).undo()
    assert (delete.kind, delete.data, delete.acl) == ("create", b"old", ["acl"])


def test_guard_adds_a_compare_and_set_of_the_root():
    guard = txn.Guard("/r", b"root data", version=7, czxid=3)
    sent = guard.wrap([txn.Op("create", "/r/a", b"A")])
    assert [(op.kind, op.path, op.version) for op in sent] == [("create", "/r/a", -1), ("set", "/r", 7)]
    assert sent[1].data == b"root data"
    guard.committed(sent, zxid=99)
    assert guard.wrap([txn.Op("delete", "/r/a", version=0)])[1].version == 8


def test_guard_takes_the_root_own_update_or_delete_with_its_version():
    guard = txn.Guard("/r", b"old", version=7, czxid=3)
    update = txn.Op("set", "/r", b"new", version=7, old=b"old", czxid=3)
    first = guard.wrap([update])
    assert [(op.path, op.data, op.version) for op in first] == [("/r", b"new", 7)]
    guard.committed(first, zxid=99)
    assert guard.wrap([txn.Op("create", "/r/x")])[1].data == b"new"  # the root keeps its new data
    undo = guard.wrap([update.undo()])  # the undo is guarded by the version it has now
    assert [(op.data, op.version) for op in undo] == [(b"old", 8)]
    assert guard.wrap([txn.Op("delete", "/r", version=7)])[0].version == 8


def test_guard_of_a_root_the_first_transaction_creates():
    guard = txn.Guard("/r")
    first = guard.wrap([txn.Op("create", "/r", b"R"), txn.Op("create", "/r/a")])
    assert [op.kind for op in first] == ["create", "create"]  # the create is exclusive itself
    guard.committed(first, zxid=50)
    assert (guard.version, guard.czxid) == (0, 50)
    assert [(op.kind, op.version) for op in guard.wrap([txn.Op("create", "/r/b")])][1] == ("set", 0)


def test_batches_leave_room_for_the_guard():
    ops = [txn.Op("delete", "/r/n%d" % i) for i in range(2500)]
    assert [len(b) for b in txn._batches(ops, txn.Guard("/r", b"", 0))] == [999, 999, 502]
    assert [len(b) for b in txn._batches(ops, None)] == [1000, 1000, 500]
