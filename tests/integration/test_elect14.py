"""Issue 14, `elect`: a deleted member rejoins within a second, leadership converges whatever is
deleted by hand (a member, every member, the pool's folder itself), and what each member's log says
agrees with `is-leader` - against a real ZooKeeper and real `zkherd elect` processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from tests.support.runner import REPO, Zkherd
from tests.support.zkutil import wait_for

REJOIN = 1.0  # seconds: the bound for a deleted member to be back in the pool


def is_leader(hosts, election, ident):
    return subprocess.run([sys.executable, "-m", "zkherd", "is-leader", "--zk", hosts, "--election", election,
                           "--id", ident], cwd=REPO, capture_output=True, text=True, timeout=30, check=False,
                          env=dict(os.environ)).returncode


def last_word(member):
    """What the member's log said last about leadership: True (leads), False (does not), None."""
    said = re.findall(r"this member (leads|does not lead) the pool", member.log())
    return None if not said else said[-1] == "leads"


def members_by_id(zk, election):
    return {zk.get(election + "/" + name)[0].decode(): name for name in zk.get_children(election)}


@pytest.fixture
def pool(zk_server, zk_base, tmp_path):
    election = zk_base + "/pool"
    started = []

    def member(ident):
        runner = Zkherd(["elect", "--zk", zk_server.hosts, "--election", election, "--id", ident],
                        tmp_path / ("%s.log" % ident))
        started.append(runner)
        runner.wait_log("joined the pool")
        return runner

    yield election, member
    for runner in started:
        runner.stop()
    for runner in started:
        assert "Traceback" not in runner.log(), runner.log()[-3000:]


def delete_folder(zk, path):
    """The folder and its members in one multi (a recursive delete loses the race against members
    joining again meanwhile)."""
    for _attempt in range(20):
        txn = zk.transaction()
        for name in zk.get_children(path):
            txn.delete(path + "/" + name)
        txn.delete(path)
        if not any(isinstance(result, Exception) for result in txn.commit()):
            return
    raise AssertionError("could not delete %s" % path)


def agreed(zk_server, election, members):
    """Exactly one member says it leads, and is-leader agrees with every member's log."""
    words = {ident: last_word(runner) for ident, runner in members.items()}
    if sorted(words.values(), key=str) != sorted([True] + [False] * (len(members) - 1), key=str):
        return False
    return all(is_leader(zk_server.hosts, election, ident) == (0 if leads else 1) for ident, leads in words.items())


@pytest.mark.parametrize("which", ["leader", "follower"])
def test_a_deleted_member_rejoins_within_a_second(zk_server, zk, pool, which):
    election, member = pool
    members = {"A": member("A")}
    members["A"].wait_log("this member leads the pool")
    members["B"] = member("B")
    members["B"].wait_log("this member does not lead the pool")
    victim = "A" if which == "leader" else "B"
    joins = members[victim].log().count("joined the pool")
    zk.delete(election + "/" + members_by_id(zk, election)[victim])
    deleted = time.monotonic()
    wait_for(lambda: members[victim].log().count("joined the pool") > joins and victim in members_by_id(zk, election),
             10, message=lambda: members[victim].log()[-2000:])
    took = time.monotonic() - deleted
    assert took < REJOIN + 0.5, "rejoined %.2f s after the delete" % took  # 0.5 s: polling and a loaded box
    wait_for(lambda: agreed(zk_server, election, members), 10,
             message=lambda: {i: m.log()[-1500:] for i, m in members.items()})


def test_leadership_converges_when_every_member_and_the_folder_are_deleted(zk_server, zk, pool):
    election, member = pool
    members = {ident: member(ident) for ident in ("A", "B", "C")}
    wait_for(lambda: agreed(zk_server, election, members), 10)
    for round_ in range(3):
        joins = {ident: runner.log().count("joined the pool") for ident, runner in members.items()}
        if round_ == 2:
            delete_folder(zk, election)  # the pool's folder itself, members and all
        else:
            for name in zk.get_children(election):
                zk.delete(election + "/" + name)
        wait_for(lambda: all(r.log().count("joined the pool") > joins[i] for i, r in members.items())  # noqa: B023
                 and len(zk.get_children(election)) == 3, 10,
                 message=lambda: {i: m.log()[-1500:] for i, m in members.items()})
        wait_for(lambda: agreed(zk_server, election, members), 10,
                 message=lambda: {i: m.log()[-1500:] for i, m in members.items()})
    for runner in members.values():
        assert runner.proc.poll() is None, runner.log()[-2000:]
