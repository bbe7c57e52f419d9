"""Issue 14: a registration node deleted by hand (an operator cleaning up, a script gone wrong) is
made again while the child runs, within a second, against a real ZooKeeper; the child keeps running."""

from __future__ import annotations

import time

from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for

CHILD = ["sh", "-c", "while :; do sleep 0.1; done"]


def test_a_registration_deleted_by_hand_is_made_again(zk_server, zk, zk_base, tmp_path):
    folder = zk_base + "/services/web"
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--register", folder + "/node-", "--data", "10.0.0.1:80",
                     "--", *CHILD], tmp_path / "r.log")
    try:
        runner.wait_log("started child")
        child = runner.child_pid
        wait_for(lambda: len(zk.get_children(folder)) == 1, 10)
        for _round in range(3):
            (first,) = zk.get_children(folder)
            zk.delete(folder + "/" + first)
            deleted = time.monotonic()
            wait_for(lambda: zk.get_children(folder) not in ([], [first]), 10,  # noqa: B023
                     message=lambda: runner.log()[-2000:])
            took = time.monotonic() - deleted
            assert took < 1.5, "registered again %.2f s after the delete" % took
            (again,) = zk.get_children(folder)
            assert zk.get(folder + "/" + again)[0] == b"10.0.0.1:80"
            assert zk.exists(folder + "/" + again).ephemeralOwner != 0
        assert runner.child_pid == child and runner.proc.poll() is None
        runner.wait_log("registration .* deleted", timeout=1)
    finally:
        runner.stop()
    assert "Traceback" not in runner.log()
    assert zk.get_children(folder) == []  # unregistered when the child stopped
