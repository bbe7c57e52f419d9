"""Issue 14, "chaos that hunts": what the wide chaos model found, each reproduced alone against a
real ZooKeeper and real `zkherd` processes (docs/reliability.md, "What the chaos runs found").
Holes still open in the runner are marked xfail(strict=True): once fixed they XPASS and the mark
must go."""

from __future__ import annotations

import pytest

from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for

SESSION = 3.0
SLACK = 5.0  # the chaos run's presence invariant: back within the session timeout + slack


def registrations(zk, folder, data):
    found = []
    for name in zk.get_children(folder):
        try:
            if zk.get("%s/%s" % (folder, name))[0] == data:
                found.append(name)
        except Exception:  # gone meanwhile
            pass
    return found


@pytest.mark.xfail(strict=True, reason="issue 14 chaos: a registration node deleted by hand is never re-created "
                                       "while the session lives (chaos quick seed 12, roll-0)")
def test_a_registration_deleted_by_hand_comes_back(zk_server, zk, zk_base, tmp_path):
    folder = zk_base + "/reg"
    zk.ensure_path(folder)
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--session-timeout", "%g" % SESSION,
                     "--register", folder + "/svc-", "--data", "svc-a", "--", "sleep", "1000"],
                    tmp_path / "run.log")
    try:
        wait_for(lambda: registrations(zk, folder, b"svc-a"), 20, message="the first registration")
        (node,) = registrations(zk, folder, b"svc-a")
        zk.delete("%s/%s" % (folder, node))
        wait_for(lambda: registrations(zk, folder, b"svc-a"), SESSION + SLACK,
                 message="the registration to come back after its node was deleted by hand")
        assert runner.proc.poll() is None
        assert "Traceback" not in runner.log()
    finally:
        runner.stop()
