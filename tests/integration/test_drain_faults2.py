"""Second adversarial review of planned maintenance (issue 16, review 16b): a restart always holds
the rolling lock, a drain mid-apply never lets an unproven version roll on, hostile ephemeral
folders under /zkherd/drain and /zkherd/drained, odd arguments, a lost reply on the flag recheck
before a start. Real ZooKeeper, real runners."""

from __future__ import annotations

import time

import pytest

from tests.integration.test_drain import RUNNERS, runner, zkherd
from tests.support.zkutil import wait_for

LOOP = ("--", "sh", "-c", "while :; do sleep 0.1; done")


@pytest.fixture(autouse=True)
def stop_runners(zk_base):  # noqa: ARG001  # stopped before the base is deleted
    yield
    while RUNNERS:
        RUNNERS.pop().stop()


def roll_holders(hosts, lock):
    from tests.integration.test_status import status_json

    return [h["id"] for h in status_json(hosts, lock)[0].get("holders", [])]


def test_undrain_during_a_check_never_restarts_without_the_rolling_lock(zk_server, zk, zk_base, tmp_path):
    """h0 is drained (no child) and checks version 2 without the rolling lock (--check-cmd, 3 s)
    while h1 holds /roll (--rolling-slots 1) applying it. Undrained during that check, h0 starts
    its child; the passed check must not restart it while h1 holds /roll (promise 6): h0 queues
    for /roll and restarts only once it holds it."""
    hosts = zk_server.hosts + zk_base
    znode, conf0, conf1 = zk_base + "/conf", tmp_path / "conf0", tmp_path / "conf1"
    zk.create(znode, b"good 1")
    h0 = runner(tmp_path, hosts, "h0", "--lock", "/lock-h0", "--mirror", "%s=/conf" % conf0, "--check-cmd", "sleep 3",
                "--rolling-lock", "/roll", "--change-delay", "0.1", "--health", "grep -q good %s" % conf0,
                "--health-delay", "0.3", "--health-interval", "0.1", *LOOP)
    h1 = runner(tmp_path, hosts, "h1", "--lock", "/lock-h1", "--mirror", "%s=/conf" % conf1, "--rolling-lock", "/roll",
                "--change-delay", "0.1", "--health", "grep -q good %s" % conf1, "--health-delay", "8",
                "--health-interval", "0.1", *LOOP)
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

    h0.wait_log("the child started during the check; waiting for the rolling lock", timeout=10)
    try:
        wait_for(h0_restarted, timeout=5, interval=0.05)
    except AssertionError:
        return  # no restart of h0 while h1 applies: right
    assert "h1" not in seen[0], "h0 restarted its child for version 2 while h1 held /roll: %s\n%s" % (seen, h0.log())


def test_a_drain_mid_apply_records_the_unproven_version_so_it_does_not_roll_on(zk_server, zk, zk_base, tmp_path):
    """h0 holds /roll and applies "bad 2" (restarted child, no verdict yet). Drained now, it can
    never judge the version: it records it as failed before it releases /roll, so h1 skips it."""
    hosts = zk_server.hosts + zk_base
    znode = zk_base + "/conf"
    zk.create(znode, b"good 1")
    confs, hs = {}, {}
    for name in ("h0", "h1"):
        confs[name] = tmp_path / ("conf-" + name)
        hs[name] = runner(tmp_path, hosts, name, "--lock", "/lock-" + name, "--mirror", "%s=/conf" % confs[name],
                          "--health", "grep -q good %s" % confs[name], "--change-delay", "0.1", "--rolling-lock",
                          "/roll", "--health-delay", "3", "--health-interval", "0.1", *LOOP)
    for one in hs.values():
        one.wait_log("child is healthy", timeout=20)
    zk.set(znode, b"bad 2")
    wait_for(lambda: any(one.has("rolling lock acquired") for one in hs.values()), timeout=15)
    first = next(name for name, one in hs.items() if one.has("rolling lock acquired"))
    second = "h1" if first == "h0" else "h0"
    code, _out, err = zkherd("--zk", hosts, "drain", "/lock-" + first, "--id", first, "--timeout", "10")
    assert code == 0, err
    hs[first].wait_log("was proven healthy: recorded as failed", timeout=10)
    hs[second].wait_log("the newest configuration is the version that failed", timeout=15)
    assert confs[second].read_bytes() != b"bad 2", hs[second].log()


def test_undrain_after_a_drain_mid_apply_is_a_plain_start(zk_server, zk, zk_base, tmp_path):
    """Drained mid-apply, the phase goes back to idle: the start after undrain is no verdict on the
    version (no failed record written without /roll, no "holding the rolling lock" claim)."""
    hosts = zk_server.hosts + zk_base
    znode, conf = zk_base + "/conf", tmp_path / "conf"
    zk.create(znode, b"good 1")
    h0 = runner(tmp_path, hosts, "h0", "--lock", "/lock-h0", "--mirror", "%s=/conf" % conf, "--health",
                "grep -q good %s" % conf, "--change-delay", "0.1", "--rolling-lock", "/roll", "--health-delay", "2",
                "--health-interval", "0.1", *LOOP)
    h0.wait_log("child is healthy", timeout=20)
    zk.set(znode, b"bad 2")
    h0.wait_log("rolling lock acquired", timeout=10)
    assert zkherd("--zk", hosts, "drain", "/lock-h0", "--id", "h0", "--timeout", "10")[0] == 0
    h0.wait_log("leaving the rolling lock", timeout=10)
    assert zkherd("--zk", hosts, "undrain", "/lock-h0", "--id", "h0")[0] == 0
    h0.wait_log("state drained -> queued", timeout=10)
    time.sleep(5)  # the verdict of an applied version would come 2 * --health-delay after the start
    assert not h0.has("holding the rolling lock until"), h0.log()


def test_an_ephemeral_node_planted_as_the_answers_folder(zk_server, zk, zk_base, tmp_path):
    """/zkherd/drained/%2Flock made EPHEMERAL by someone: the runner's answer gets
    NoChildrenForEphemerals - a warning, never fatal; `drain` times out (75)."""
    from tests.support.runner import exclusive_child, wait_starts

    hosts, work = zk_server.hosts + zk_base, tmp_path / "w"
    a = runner(tmp_path, hosts, "a", "--lock", "/lock", "--", *exclusive_child(work, name="a"))
    wait_starts(work, 1)
    zk.ensure_path(zk_base + "/zkherd/drained")
    zk.create(zk_base + "/zkherd/drained/%2Flock", b"", ephemeral=True)
    code, out, err = zkherd("--zk", hosts, "drain", "/lock", "--id", "a", "--timeout", "2")
    a.wait_log("cannot write our drain answer")
    assert a.proc.poll() is None, (a.proc.returncode, a.log())
    assert "Traceback" not in a.log(), a.log()
    assert code == 75, (code, out, err)


def test_an_ephemeral_node_planted_as_the_flags_folder(zk_server, zk, zk_base):
    """The same at /zkherd/drain/%2Flock: `zkherd drain` cannot make its flag: 65 and why."""
    hosts = zk_server.hosts + zk_base
    zk.ensure_path(zk_base + "/zkherd/drain")
    zk.create(zk_base + "/zkherd/drain/%2Flock", b"", ephemeral=True)
    code, out, err = zkherd("--zk", hosts, "drain", "/lock", "--id", "a", "--timeout", "4")
    assert code == 65 and "ephemeral" in err, (code, out, err)


@pytest.mark.parametrize("args", [
    ("drain", "/lock", "--id", ""), ("drain", "/", "--id", "a", "--no-wait"),
    ("drain", "/lock", "--id", "a/b", "--no-wait"), ("drain", "/lock", "--id", "..", "--no-wait"),
    ("drain", "/lock", "--id", "a", "--timeout", "0"), ("drain", "/lock", "--id", "a", "--timeout", "-1"),
    ("drain", "/lock", "--id", "x" * 5000, "--no-wait"), ("drain", "/zkherd/drain", "--id", "a", "--no-wait"),
    ("undrain", "/lock", "--id", ""), ("undrain", "/", "--id", "a"), ("drain", "/lock//x", "--id", "a", "--no-wait"),
    ("undrain", "/lock", "--id", "a" * 5000),
])
def test_odd_arguments_never_trace(zk_server, zk_base, args):
    code, out, err = zkherd("--zk", zk_server.hosts + zk_base, *args, timeout=60)
    assert code in (0, 64, 65, 69, 75, 77), (args, code, out, err)


def test_a_lost_reply_on_the_recheck_before_the_start(zk_server, zk, zk_base, tmp_path, fault_proxy):
    """a waits behind b; b stops; a holds and reads its flag again (exists) before its child starts:
    that reply is lost. a must neither start blind nor stall: it reconnects, reads again, starts."""
    from tests.support.runner import exclusive_child, overlaps, wait_starts

    proxy = fault_proxy()
    work = tmp_path / "w"
    b = runner(tmp_path, zk_server.hosts + zk_base, "b", "--lock", "/lock", "--", *exclusive_child(work, name="b"))
    wait_starts(work, 1)
    a = runner(tmp_path, proxy.hosts + zk_base, "a", "--lock", "/lock", "--", *exclusive_child(work, name="a"))
    a.wait_log("queued for lock")
    time.sleep(0.5)
    proxy.lose_reply("exists", nth=1)
    b.stop()
    wait_starts(work, 2, timeout=20)
    assert proxy.fired >= 1
    assert not overlaps(work) and "Traceback" not in a.log() and a.proc.poll() is None, a.log()
