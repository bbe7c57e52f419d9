from __future__ import annotations

import collections

from ansible_collections.zkherd.ops.plugins.module_utils.common import outcome, txn

Stat = collections.namedtuple("Stat", "czxid mzxid version")
BEFORE = 100  # the last zxid the client had seen when it sent the transaction


def test_applied_when_every_op_shows_its_effect_with_one_zxid():
    ops = [txn.Op("create", "/a", b"A"), txn.Op("set", "/r", b"R", version=3, czxid=7), txn.Op("delete", "/d", czxid=9)]
    answers = [(ops[0], (b"A", Stat(120, 120, 0))), (ops[1], (b"R", Stat(7, 120, 4))), (ops[2], None)]
    assert outcome.decide(answers, BEFORE) == (outcome.APPLIED, "")


def test_not_applied_for_sure_when_a_set_still_finds_its_version():
    ops = [txn.Op("create", "/a", b"A"), txn.Op("set", "/r", b"R", version=3, czxid=7)]
    # /a was made by someone else after we sent it: not ours, the set shows we did not apply
    answers = [(ops[0], (b"A", Stat(120, 120, 0))), (ops[1], (b"old", Stat(7, 50, 3)))]
    assert outcome.decide(answers, BEFORE)[0] == outcome.NOT_APPLIED


def test_not_applied_when_a_create_finds_a_znode_made_before():
    op = txn.Op("create", "/a", b"A")
    assert outcome.decide([(op, (b"A", Stat(90, 90, 0)))], BEFORE)[0] == outcome.NOT_APPLIED


def test_a_delete_finds_its_znode_still_there():
    op = txn.Op("delete", "/d", version=0, czxid=9)
    assert outcome.decide([(op, Stat(9, 9, 0))], BEFORE)[0] == outcome.NOT_APPLIED
    assert outcome.decide([(op, Stat(150, 150, 0))], BEFORE)[0] == outcome.APPLIED  # gone, and made again


def test_nothing_done_at_all_is_not_applied():
    ops = [txn.Op("create", "/a", b"A"), txn.Op("create", "/a/b", b"B")]
    assert outcome.decide([(ops[0], None), (ops[1], None)], BEFORE)[0] == outcome.NOT_APPLIED


def test_unknown_when_the_effects_come_from_two_transactions_or_others_wrote():
    ops = [txn.Op("create", "/a", b"A"), txn.Op("create", "/b", b"B")]
    two = [(ops[0], (b"A", Stat(120, 120, 0))), (ops[1], (b"B", Stat(121, 121, 0)))]
    assert outcome.decide(two, BEFORE)[0] == outcome.UNKNOWN
    mixed = [(ops[0], (b"A", Stat(120, 120, 0))), (ops[1], None)]
    assert outcome.decide(mixed, BEFORE)[0] == outcome.UNKNOWN
    changed = [(txn.Op("set", "/r", b"R", version=3, czxid=7), (b"other", Stat(7, 130, 5)))]
    assert outcome.decide(changed, BEFORE)[0] == outcome.UNKNOWN
