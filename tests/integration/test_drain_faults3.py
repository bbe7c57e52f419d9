"""The last read of planned maintenance (issue 16): the shared lock-line parser takes only ASCII
sequence numbers (a planted `lock-²²²²²²²²²²` made every drain of that lock exit 70), and a
ZooKeeper error the shared flag code lets through (access denied on the flags) is exit 77, not 70."""

from __future__ import annotations

import time

from kazoo.security import make_acl

from tests.integration.test_drain import zkherd


def test_a_planted_lock_node_with_unicode_digits_does_not_break_drain(zk, zk_base, zk_server):
    zk.create(zk_base + "/lock/lock-" + "\u00b2" * 10, b"x", makepath=True)  # persistent, foreign
    zk.create(zk_base + "/lock/lock-0000000007", b'{"id": "b"}')
    code, out, err = zkherd("drain", "/lock", "--id", "a", "--timeout", "1", "--zk", zk_server.hosts + zk_base)
    assert code == 0 and "no node of it" in out, (code, out, err)


def test_access_denied_on_the_flags_is_77(zk, zk_base, zk_server):
    zk.create(zk_base + "/zkherd", makepath=True)
    zk.create(zk_base + "/zkherd/drain", acl=[make_acl("world", "anyone", read=True)])
    code, out, err = zkherd("drain", "/lock", "--id", "a", "--no-wait", "--zk", zk_server.hosts + zk_base)
    assert code == 77 and "denied" in err, (code, out, err)
    code, out, err = zkherd("undrain", "/lock", "--id", "a", "--zk", zk_server.hosts + zk_base)
    assert code in (0, 77) and "bug" not in err, (code, out, err)


def test_a_host_drained_while_it_waits_for_the_rolling_lock_never_takes_it_while_its_child_stops(
        zk_server, zk, zk_base, tmp_path):
    """h1 holds /roll for version 2 (its verdict comes 2 s after its restart); h0 waits for /roll.
    h0 is drained: its child takes 4 s to stop, and /roll comes free meanwhile. h0 must not take it:
    no child would run version 2 there, and the drain then recorded version 2 as failed farm-wide."""
    from tests.integration.test_drain import RUNNERS, runner

    hosts = zk_server.hosts + zk_base
    znode, conf0, conf1 = zk_base + "/conf", tmp_path / "conf0", tmp_path / "conf1"
    zk.create(znode, b"good 1")
    slow_stop = ("--", "sh", "-c", "trap 'sleep 4; exit 0' TERM; while :; do sleep 0.1; done")
    try:
        h0 = runner(tmp_path, hosts, "h0", "--lock", "/lock-h0", "--mirror", "%s=/conf" % conf0, "--rolling-lock",
                    "/roll", "--change-delay", "0.1", "--stop-timeout", "10", "--health", "grep -q good %s" % conf0,
                    "--health-delay", "0.3", "--health-interval", "0.1", *slow_stop)
        h1 = runner(tmp_path, hosts, "h1", "--lock", "/lock-h1", "--mirror", "%s=/conf" % conf1, "--rolling-lock",
                    "/roll", "--change-delay", "0.1", "--health", "grep -q good %s" % conf1, "--health-delay", "2",
                    "--health-interval", "0.1", "--", "sh", "-c", "while :; do sleep 0.1; done")
        h0.wait_log("child is healthy", timeout=20)
        h1.wait_log("child is healthy", timeout=20)
        zk.set(znode, b"good 2")
        h0.wait_log("waiting for the rolling lock", timeout=10)
        code, _out, err = zkherd("--zk", hosts, "drain", "/lock-h0", "--id", "h0", "--timeout", "20")
        assert code == 0, err
        h0.wait_log(r"-> drained", timeout=20)
        h1.wait_log("rolling lock released", timeout=10)  # /roll came free while h0's child stopped
        time.sleep(0.5)
        assert not h0.has("drained before configuration version"), h0.log()[-3000:]
        assert zk.exists(zk_base + "/roll/failed") is None, zk.get(zk_base + "/roll/failed")[0]
    finally:
        while RUNNERS:
            RUNNERS.pop().stop()


def test_a_server_that_stops_answering_is_69_not_70(zk_base, fault_proxy):
    proxy = fault_proxy()
    proxy.before_request("create", nth=1, then="blackhole")
    code, out, err = zkherd("drain", "/lock", "--id", "a", "--no-wait", "--connect-timeout", "0.5",
                            "--session-timeout", "2", "--zk", proxy.hosts + zk_base, timeout=60)
    assert code == 69, (code, out, err)
    assert "bug" not in err, (code, out, err)
