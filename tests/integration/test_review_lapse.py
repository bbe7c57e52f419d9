"""Adversarial review of the lapse fix (Session.renew(): a runner whose proof through the leader
lapsed while it had no child closes its session and makes a new one). Real ZooKeeper, real runners."""

from __future__ import annotations

import signal
import time

from tests.integration.test_containment import RUNNERS
from tests.support.faultproxy import FaultProxy
from tests.support.runner import Zkherd, exclusive_child, wait_starts
from tests.support.zkutil import wait_for


def _lapsed_standby(zk_server, lock, tmp_path, work, standby_hosts, extra=()):
    """A holder runs its child; a standby (through *standby_hosts*) is frozen 5 s with T = 6 s while
    it waits in line, so its proof lapses while its connection and session survive (the fix's own
    scenario, test_fence_leader.py). Returns (holder, standby)."""
    def runner(name, hosts, more=()):
        r = Zkherd(["run", "--zk", hosts, "--session-timeout", "6", "--stop-timeout", "0.3", *more,
                    "--lock", lock, "--", *exclusive_child(work, name=name)], tmp_path / ("%s.log" % name))
        RUNNERS.append(r)
        return r

    holder = runner("holder", zk_server.hosts)
    wait_starts(work, 1, timeout=30)
    standby = runner("standby", standby_hosts, extra)
    standby.wait_log("queued for lock", timeout=30)
    time.sleep(1.0)
    standby.signal(signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        time.sleep(5.0)
    finally:
        standby.signal(signal.SIGCONT)
    assert time.monotonic() - frozen < 5.8
    time.sleep(1.0)
    assert not standby.has("session expired|Session has expired|Connection dropped"), standby.log()
    return holder, standby


def test_a_renew_whose_close_gets_no_answer_blocks_the_loop_at_most_two_thirds_of_the_timeout(
        zk_server, zk_base, tmp_path):
    """renew() calls kazoo's stop(), which joins kazoo's connection thread: it returns only once the
    close request is answered or kazoo gives the connection up (read timeout, 2/3 T). A close that
    gets no answer (the very situations that make a proof lapse: a slow or stalled path to the
    leader) blocks the main loop for up to 2/3 T (documented: no child runs then, the fence's thread
    goes on); a SIGTERM meanwhile is looked at once it returns, never later. Here the close is held
    by the proxy (before_request close_session -> blackhole); T = 6 s."""
    work, lock = tmp_path / "w", zk_base + "/lapse-close"
    proxy = FaultProxy(zk_server.hosts)
    try:
        holder, standby = _lapsed_standby(zk_server, lock, tmp_path, work, proxy.hosts)
        proxy.before_request("close_session", then="blackhole")
        holder.stop()  # the lock is the standby's; its proof lapsed: renew()
        standby.wait_log("closing the ZooKeeper session and making a new one", timeout=20)
        assert proxy.wait_fired(1, timeout=5), "the standby's close request never came"
        standby.signal(signal.SIGTERM)
        sent = time.monotonic()
        wait_for(lambda: standby.has("received SIGTERM"), 20,
                 message=lambda: "SIGTERM never handled:\n" + standby.log()[-2500:])
        took = time.monotonic() - sent
        assert took < 2 / 3 * 6 + 1.5, ("the runner took %.1fs to look at a SIGTERM: its loop was blocked in "
                                        "kazoo's stop() longer than its read timeout\n%s"
                                        % (took, standby.log()[-2500:]))
    finally:
        proxy.heal()
        while RUNNERS:
            RUNNERS.pop().stop()
        proxy.close()


def test_a_renew_is_not_counted_as_a_session_expiry(zk_server, zk_base, tmp_path):
    """zkherd_session_expirations_total is documented as "ZooKeeper sessions that expired". A renew
    closes the session on purpose while the server still holds it (the test asserts it never
    expired); Loop._dispatch counts every LOST as an expiry (expired=value == LOST), so a renew
    storm shows up as expirations and nothing counts the renews themselves."""
    from tests.support.scrape import parse, value

    work, lock = tmp_path / "w", zk_base + "/lapse-metrics"
    prom = tmp_path / "standby.prom"
    holder, standby = _lapsed_standby(zk_server, lock, tmp_path, work, zk_server.hosts,
                                      extra=("--metrics-file", str(prom), "--state-dir", ""))
    try:
        holder.stop()
        wait_starts(work, 2, timeout=20)
        assert standby.has("closing the ZooKeeper session and making a new one"), standby.log()
        time.sleep(1.5)  # the metrics file is written on its tick
        samples = parse(prom.read_text())
        assert value(samples, "zkherd_session_expirations_total") == 0, (
            "a voluntary renew counted as a session expiry: %s" % value(samples, "zkherd_session_expirations_total"))
    finally:
        while RUNNERS:
            RUNNERS.pop().stop()


def test_an_elect_whose_proof_lapsed_leaves_every_later_tick_unrun(zk_server, zk_base, tmp_path):
    """The same lapse in `zkherd elect` (not fixed): its proof through the leader lapses (a freeze of
    5 s with T = 6 s) while its connection and session survive. Its lease then says `expires=` in the
    past for ever (no sync renews a lapsed proof, kazoo never reconnects), yet it still leads the pool:
    every `zkherd cron` on its host refuses the tick ("dead" member) and no other host leads. The job
    never runs again anywhere while the elect lives."""
    import subprocess
    import sys

    from tests.integration.test_cron14 import member, runs
    from tests.integration.test_cron_claims import env
    from tests.support.runner import REPO

    election = zk_base + "/cron"
    a = member(zk_server.hosts, election, "A", tmp_path, "--session-timeout", "6")
    a.wait_log("this member leads the pool")
    try:
        time.sleep(1.0)
        a.signal(signal.SIGSTOP)
        try:
            time.sleep(5.0)
        finally:
            a.signal(signal.SIGCONT)
        time.sleep(8.0)  # well past any lapse; syncs flow again
        assert not a.has("session expired|Session has expired|Connection dropped"), a.log()
        cmd = [sys.executable, "-m", "zkherd", "cron", "--zk", zk_server.hosts, "--election", election,
               "--id", "A", "--name", "job", "--", "sh", "-c", "echo A >> %s/runs" % tmp_path]
        result = subprocess.run(cmd, cwd=REPO, env=env(tmp_path), capture_output=True, text=True, timeout=60,
                                check=False)
        assert runs(tmp_path) == ["A"], ("the leading elect's lease lapsed for good: cron exited %d without "
                                         "running the job 8 s after the freeze\n%s\nelect:\n%s"
                                         % (result.returncode, result.stderr[-1500:], a.log()[-1500:]))
    finally:
        a.stop()
