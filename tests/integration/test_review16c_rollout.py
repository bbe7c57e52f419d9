"""Adversarial review 16c of b89633e (a runner behind another holder of its lock steps aside from
the rolling lock): Runner.standing_by() takes "QUEUED, a place in the lock's line, holding.held
False" for "behind another holder". That is also the state of a runner whose look at the line got
no answer (a lost reply right after it queued again), whichever place it has. Real ZooKeeper,
real runners, tests/support/faultproxy.py."""

from __future__ import annotations

import time

from tests.integration.test_drain import runner
from tests.integration.test_drain_faults2 import LOOP
from tests.integration.test_rollout_lock_lost import node_of
from tests.integration.test_rollout_lock_lost import stop_runners as stop_runners_first  # autouse fixture

stop_runners = stop_runners_first  # runners stopped before the base is deleted


def ha_applying_version_2(zk, zk_base, tmp_path, proxy, health_delay):
    """ha alone on /svc through *proxy*, holding /roll and running version 2 (restarted child), its
    verdict *health_delay* s after that start: (ha, its /svc hosts)."""
    hosts = proxy.hosts + zk_base
    znode, conf = zk_base + "/conf", tmp_path / "conf-ha"
    zk.create(znode, b"good 1")
    ha = runner(tmp_path, hosts, "ha", "--lock", "/svc", "--mirror", "%s=/conf" % conf, "--rolling-lock", "/roll",
                "--change-delay", "0.1", "--health", "grep -q good %s" % conf, "--health-delay", health_delay,
                "--health-interval", "0.1", *LOOP)
    ha.wait_log("child is healthy", timeout=20)
    zk.set(znode, b"good 2")
    ha.wait_log("rolling lock acquired", timeout=10)
    ha.wait_log("child started", count=2, timeout=10)
    return ha, hosts


def test_a_lost_reply_on_the_requeue_is_not_the_lock_going_elsewhere(zk_server, zk, zk_base, tmp_path, fault_proxy):
    """ha is the only runner of /svc. It holds /roll and runs version 2 (restarted child, verdict
    3 s away). Its /svc node is deleted by hand: it stops the child and queues again - first in
    line, nobody else wants /svc - but the reply to its look at the line is lost. On the turn after
    the reconnect, before it looks again, standing_by() is True: ha must not call that "the lock
    went elsewhere" and record version 2 as failed (the rollout would stop on a version that
    nobody judged); it takes /svc back, runs version 2 and proves it, as without the lost reply."""
    proxy = fault_proxy()
    ha, hosts = ha_applying_version_2(zk, zk_base, tmp_path, proxy, "3")
    proxy.lose_reply("get_children2", nth=1)  # the look at /svc's line after queueing again
    zk.delete(node_of(zk, zk_base + "/svc", "ha"))
    assert proxy.wait_fired(1, timeout=10), ha.log()
    ha.wait_log("child started", count=3, timeout=15)  # /svc is ha's again: nobody else is in its line
    ha.wait_log("new configuration is running|recorded as failed", timeout=15)
    assert not ha.has("the lock went elsewhere"), ha.log()
    assert zk.exists(zk_base + "/roll/failed") is None, (zk.get(zk_base + "/roll/failed"), ha.log())


def test_a_lost_reply_on_the_requeue_keeps_the_place_in_the_rolling_lock_line(
        zk_server, zk, zk_base, tmp_path, fault_proxy):
    """hc holds /roll (--rolling-slots 1) applying version 2, its verdict 5 s away; ha, alone in
    /svc's line, waits for /roll with version 1 running. ha's /svc node is deleted by hand and the
    reply to its look at /svc's line after queueing again is lost. Without the lost reply ha takes
    /svc back at once and keeps its place in /roll's line; with it, standing_by() says "the lock
    went elsewhere" (nobody else is in /svc's line) and ha leaves /roll's line, to queue again at
    its end once its child is up (a wrong log line, and ha's turn goes to the hosts behind it)."""
    from tests.integration.test_drain_faults2 import roll_holders

    proxy = fault_proxy()
    direct, via = zk_server.hosts + zk_base, proxy.hosts + zk_base
    znode = zk_base + "/conf"
    zk.create(znode, b"good 1")
    conf = {name: tmp_path / ("conf-" + name) for name in ("ha", "hc")}

    def health(name, delay):
        return ("--health", "grep -q good %s" % conf[name], "--health-delay", delay, "--health-interval", "0.1")

    hc = runner(tmp_path, direct, "hc", "--lock", "/lock-hc", "--mirror", "%s=/conf" % conf["hc"], "--rolling-lock",
                "/roll", "--change-delay", "0.1", *health("hc", "5"), *LOOP)
    ha = runner(tmp_path, via, "ha", "--lock", "/svc", "--mirror", "%s=/conf" % conf["ha"], "--rolling-lock", "/roll",
                "--change-delay", "1", *health("ha", "0.3"), *LOOP)
    hc.wait_log("child is healthy", timeout=20)
    ha.wait_log("child is healthy", timeout=20)
    zk.set(znode, b"good 2")
    hc.wait_log("rolling lock acquired", timeout=10)
    ha.wait_log("queued for lock lock=/roll", timeout=10)
    time.sleep(0.5)  # ha's look at /roll's line is done: the next get_children2 is its look at /svc's
    proxy.lose_reply("get_children2", nth=1)
    zk.delete(node_of(zk, zk_base + "/svc", "ha"))
    assert proxy.wait_fired(1, timeout=10), ha.log()
    ha.wait_log("child started", count=2, timeout=10)
    assert "hc" in roll_holders(direct, "/roll")  # the window was real: hc still applies version 2
    assert not ha.has("the lock went elsewhere"), ha.log()


def test_a_partition_shorter_than_the_session_is_not_the_lock_going_elsewhere(
        zk_server, zk, zk_base, tmp_path, fault_proxy):
    """ha is the only runner of /svc; it holds /roll and runs version 2 (verdict 8 s away). A
    partition longer than the fence budget, shorter than the session: the fence stops the child,
    the release of /svc gets no answer (Holding.release sets held False and keeps the place), and
    on that same turn - kazoo has not noticed the partition yet - standing_by() is True: ha logs
    "the lock went elsewhere", records version 2 as failed and releases /roll although its /svc
    nodes were never gone and nobody else is in the line. After the partition it takes /svc back
    (its own nodes) and runs version 2, which stays recorded as failed: the rollout stops for every
    host on a version that no host found bad."""
    proxy = fault_proxy()
    ha, hosts = ha_applying_version_2(zk, zk_base, tmp_path, proxy, "8")
    proxy.blackhole()
    ha.wait_log("could not remove our nodes now", timeout=15)  # fenced, the release got no answer
    time.sleep(0.5)
    proxy.heal()  # about 7 s into a 10 s session: it lives on (held bytes delivered, same connection)
    ha.wait_log("child started", count=3, timeout=20)
    ha.wait_log("new configuration is running|recorded as failed", timeout=20)
    assert not ha.has("the lock went elsewhere"), ha.log()
    assert zk.exists(zk_base + "/roll/failed") is None, ha.log()
