"""core/session.py's lower bound of when the ZooKeeper *leader* last heard of us (pure logic: the
answers are fed by hand). The behaviour it exists for - a holder on a follower cut off from the
leader is fenced before the leader expires its session - is tested against a real 3-server
ensemble in tests/integration/test_fence_leader.py."""

from __future__ import annotations

import types

import pytest

from zkherd.core.session import PROOF_GAP, Session


def session(timeout=10.0):
    settings = types.SimpleNamespace(session_timeout=timeout)
    return Session(settings, wakeup=None, log=None)


def test_answers_of_our_server_prove_nothing_until_a_sync_does():
    s = session()
    s.new_connection(100.0)  # the connect request: the leader made or revalidated the session
    s.answered(101.0, 101.01)  # a read or a ping the follower answered alone
    s.answered(102.0, 102.01)
    assert s.last_heard == 100.0 and s.last_answer == 102.0
    s.answered(102.5, 102.6, sync=True)  # too soon after them: the leader may not have been told yet
    assert s.last_heard == 100.0
    s.answered(101.01 + PROOF_GAP * 10.0 + 0.001, 105.0, sync=True)  # sent over 0.3 T after 101.0 was answered
    assert s.last_heard == 101.0
    s.answered(110.0, 110.1, sync=True)  # proves all answered by 107.0: the newest sent is the sync of 104.011
    assert s.last_heard == pytest.approx(104.011)


def test_a_new_connection_forgets_what_the_server_before_answered():
    s = session()
    s.new_connection(100.0)
    s.answered(101.0, 101.01)
    s.new_connection(105.0)  # another server: what the first one answered may never reach the leader
    assert s.last_heard == 105.0
    s.answered(110.0, 110.1, sync=True)
    assert s.last_heard == 105.0


def test_the_bound_never_goes_back():
    s = session()
    s.new_connection(100.0)
    s.answered(103.5, 103.6, sync=True)
    s.answered(107.0, 107.1, sync=True)
    assert s.last_heard == 103.5
    s.new_connection(99.0)
    assert s.last_heard == 103.5


def test_a_sync_answered_too_late_proves_nothing():
    s = session()
    s.new_connection(100.0)
    s.answered(101.0, 101.01)
    s.answered(104.0, 110.5, sync=True)  # answered after 100 + T: the session may have been closing
    assert s.last_heard == 100.0
