"""Second adversarial review of planned maintenance (issue 16): the fixes of the first review
(the flag read again before a child starts, Rollout.step_aside). Real ZooKeeper, real runners."""

from __future__ import annotations

import time

import pytest

from tests.integration.test_drain import RUNNERS, runner, zkherd
from tests.support.zkutil import wait_for


@pytest.fixture(autouse=True)
def stop_runners(zk_base):  # noqa: ARG001  # stopped before the base is deleted
    yield
    while RUNNERS:
        RUNNERS.pop().stop()


def roll_holders(hosts, lock):
    from tests.integration.test_status import status_json

    return [h["id"] for h in status_json(hosts, lock)[0].get("holders", [])]


def test_undrain_during_a_check_restarts_without_the_rolling_lock(zk_server, zk, zk_base, tmp_path):
    """h0 is drained (no child). Version 2 is pushed: h1 takes /roll and applies it (its child is
    not healthy for a while: it holds /roll). h0 has no child up, so it checks version 2 without
    the rolling lock (--check-cmd takes 3 s). The operator undrains h0 during that check: h0 starts
    its child on version 1, then the check passes and install(child_up=True) restarts the child
    with `not self.held` - a rolling restart while h1 holds /roll with --rolling-slots 1: two hosts
    restart at once (promise 6)."""
    hosts = zk_server.hosts + zk_base
    znode, conf0, conf1 = zk_base + "/conf", tmp_path / "conf0", tmp_path / "conf1"
    zk.create(znode, b"good 1")
    loop = ("--", "sh", "-c", "while :; do sleep 0.1; done")
    h0 = runner(tmp_path, hosts, "h0", "--lock", "/lock-h0", "--mirror", "%s=/conf" % conf0, "--check-cmd", "sleep 3",
                "--rolling-lock", "/roll", "--change-delay", "0.1", "--health", "grep -q good %s" % conf0,
                "--health-delay", "0.3", "--health-interval", "0.1", *loop)
    h1 = runner(tmp_path, hosts, "h1", "--lock", "/lock-h1", "--mirror", "%s=/conf" % conf1, "--rolling-lock", "/roll",
                "--change-delay", "0.1", "--health", "grep -q good %s" % conf1, "--health-delay", "8",
                "--health-interval", "0.1", *loop)
    h0.wait_log("child is healthy", timeout=20)
    h1.wait_log("child is healthy", timeout=20)
    code, _out, err = zkherd("--zk", hosts, "drain", "/lock-h0", "--id", "h0", "--timeout", "10")
    assert code == 0, err
    h0.wait_log(r"-> drained")
    zk.set(znode, b"good 2")
    h1.wait_log("rolling lock acquired", timeout=10)
    time.sleep(0.8)  # h0's check of version 2 runs (3 s)
    assert zkherd("--zk", hosts, "undrain", "/lock-h0", "--id", "h0")[0] == 0
    h0.wait_log("child started", count=2, timeout=10)  # the first start after undrain
    seen = []

    def h0_restarted():
        if h0.has("the configuration changed"):
            seen.append(roll_holders(hosts, "/roll"))
            return True
        return False

    try:
        wait_for(h0_restarted, timeout=8, interval=0.05)
    except AssertionError:
        return  # no restart of h0 while h1 applies: fine
    assert "h1" not in seen[0], "h0 restarted its child for version 2 while h1 held /roll: %s\n%s" % (seen, h0.log())
