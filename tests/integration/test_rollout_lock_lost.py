"""A runner that loses its main lock while it waits for the rolling lock must not take the rolling
lock afterwards and keep it: its child is gone and another host runs the service, so no verdict on
the version can come from it and the rollout would stop for every host. Real ZooKeeper, real runners."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.test_drain import RUNNERS, runner
from tests.integration.test_drain_faults2 import LOOP, roll_holders
from tests.support.zkutil import wait_for


@pytest.fixture(autouse=True)
def stop_runners(zk_base):  # noqa: ARG001  # stopped before the base is deleted
    yield
    while RUNNERS:
        RUNNERS.pop().stop()


def node_of(zk, lock, ident):
    for name in zk.get_children(lock):
        if name.startswith("lock-") and json.loads(zk.get(lock + "/" + name)[0])["id"] == ident:
            return lock + "/" + name
    return None


def test_a_runner_that_lost_its_lock_while_waiting_never_keeps_the_rolling_lock(zk_server, zk, zk_base, tmp_path):
    """hc holds /roll applying version 2 (its health comes 4 s late); ha, holding /svc, waits for
    /roll. ha's /svc node is deleted: ha stops its child and hb takes /svc. Once hc releases /roll,
    ha must leave /roll's line (not take /roll and keep it), so that /roll is free for the others."""
    hosts = zk_server.hosts + zk_base
    znode = zk_base + "/conf"
    zk.create(znode, b"good 1")
    conf = {name: tmp_path / ("conf-" + name) for name in ("ha", "hb", "hc")}

    def health(name, delay):
        return ("--health", "grep -q good %s" % conf[name], "--health-delay", delay, "--health-interval", "0.1")

    hc = runner(tmp_path, hosts, "hc", "--lock", "/lock-hc", "--mirror", "%s=/conf" % conf["hc"], "--rolling-lock",
                "/roll", "--change-delay", "0.1", *health("hc", "4"), *LOOP)
    ha = runner(tmp_path, hosts, "ha", "--lock", "/svc", "--mirror", "%s=/conf" % conf["ha"], "--rolling-lock", "/roll",
                "--change-delay", "1", *health("ha", "0.3"), *LOOP)
    hc.wait_log("child is healthy", timeout=20)
    ha.wait_log("child is healthy", timeout=20)
    hb = runner(tmp_path, hosts, "hb", "--lock", "/svc", "--mirror", "%s=/conf" % conf["hb"], "--rolling-lock", "/roll",
                "--change-delay", "1", *health("hb", "0.3"), *LOOP)
    wait_for(lambda: node_of(zk, zk_base + "/svc", "hb") is not None, timeout=10)
    zk.set(znode, b"good 2")
    hc.wait_log("rolling lock acquired", timeout=10)
    ha.wait_log("waiting for the rolling lock", timeout=10)
    zk.delete(node_of(zk, zk_base + "/svc", "ha"))
    ha.wait_log("lock lost", timeout=10)
    hb.wait_log("child started", timeout=10)
    hc.wait_log("rolling lock released", timeout=15)
    time.sleep(1.5)  # ha's turn at /roll, had it stayed in the line
    assert "ha" not in roll_holders(hosts, "/roll"), ha.log()
    assert not ha.has("rolling lock acquired"), ha.log()
    in_line = {json.loads(zk.get(zk_base + "/roll/" + name)[0])["id"] for name in zk.get_children(zk_base + "/roll")}
    assert "ha" not in in_line, ha.log()
    # what the runners run: hb holds /svc with version 2, ha's files are version 2 too (installed without /roll)
    wait_for(lambda: conf["ha"].read_text() == "good 2", timeout=10)
    assert node_of(zk, zk_base + "/svc", "ha") is not None  # back in /svc's line, behind hb


def test_a_runner_that_lost_its_lock_mid_apply_records_the_version_and_releases(zk_server, zk, zk_base, tmp_path):
    """ha holds /roll and runs version 2 (restarted child, no verdict yet: health comes 3 s late).
    Its /svc node is deleted and hb takes /svc: ha can never judge the version. It records it as
    failed (an unproven version never rolls on) and releases /roll instead of keeping it."""
    hosts = zk_server.hosts + zk_base
    znode = zk_base + "/conf"
    zk.create(znode, b"good 1")
    conf = {name: tmp_path / ("conf-" + name) for name in ("ha", "hb")}
    runners = {}
    for name in ("ha", "hb"):
        runners[name] = runner(tmp_path, hosts, name, "--lock", "/svc", "--mirror", "%s=/conf" % conf[name],
                               "--rolling-lock", "/roll", "--change-delay", "0.1", "--health",
                               "grep -q good %s" % conf[name], "--health-delay", "3", "--health-interval", "0.1", *LOOP)
        if name == "ha":
            runners[name].wait_log("child is healthy", timeout=20)
    ha, hb = runners["ha"], runners["hb"]
    wait_for(lambda: node_of(zk, zk_base + "/svc", "hb") is not None, timeout=10)
    zk.set(znode, b"good 2")
    ha.wait_log("rolling lock acquired", timeout=10)
    ha.wait_log("child started", count=2, timeout=10)  # version 2 runs, its verdict 3 s away
    zk.delete(node_of(zk, zk_base + "/svc", "ha"))
    hb.wait_log("child started", timeout=10)
    ha.wait_log("the lock went elsewhere before configuration version .* was proven healthy: recorded as failed",
                timeout=10)
    wait_for(lambda: "ha" not in roll_holders(hosts, "/roll"), timeout=10)
    assert zk.exists(zk_base + "/roll/failed") is not None
