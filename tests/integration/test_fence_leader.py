"""Promise 1 when the holder's ZooKeeper server is cut off from the leader: a follower answers its
clients' pings by itself for up to syncLimit*tickTime, while the leader counts the session down. The
fence must count from what the *leader* heard (core/session.py: syncs), not from the follower's
answers. Failed before the fix: the standby's child started 3.9 s after the cut while the holder's
still held the slot (tickTime 200 ms, syncLimit 20, session timeout 4 s). (While a sync waits for
the leader, the follower holds back the session's later requests, pings too, so kazoo may drop the
connection on its own; the fence must not count on that.)"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from tests.integration.test_containment import RUNNERS
from tests.support.faultproxy import FaultProxy
from tests.support.runner import Zkherd, exclusive_child, overlaps, starts, wait_starts
from tests.support.zkserver import LOOPBACK, ZooKeeperServer, free_port
from tests.support.zkutil import wait_for

# -- the quorum a follower cut off from the leader keeps the session alive locally ------------------------


class _Quorum:
    """Three members; member 1 reaches the others' quorum ports only through proxies, so that it
    can be cut off from the leader while it still answers its clients."""

    def __init__(self, base, tick=200, sync_limit=20):
        ports = {i: (free_port(), free_port()) for i in (1, 2, 3)}
        self.proxies = {i: FaultProxy("%s:%d" % (LOOPBACK, ports[i][0])) for i in (2, 3)}
        common = {"initLimit": 10, "syncLimit": sync_limit, "cnxTimeout": 1000}
        self.servers = []
        for me in (1, 2, 3):
            peers = {}
            for i in (1, 2, 3):
                quorum = self.proxies[i].port if me == 1 and i != 1 else ports[i][0]
                peers["server.%d" % i] = "%s:%d:%d" % (LOOPBACK, quorum, ports[i][1])
            self.servers.append(ZooKeeperServer(base / ("zk%d" % me), tick_time=tick, myid=me,
                                                extra_cfg={**common, **peers}))

    def start(self):
        for server in self.servers:
            server.launch()
        for server in self.servers:
            server.wait_ready(60)
        wait_for(lambda: all(s.mode() in ("leader", "follower") for s in self.servers), 60)
        return self

    def cut_member_1(self):
        for proxy in self.proxies.values():
            proxy.blackhole()

    def heal_member_1(self):
        for proxy in self.proxies.values():
            proxy.heal()  # the held bytes are delivered, as TCP does after a partition heals

    def close(self):
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        for proxy in self.proxies.values():
            proxy.close()


def test_a_holder_on_a_follower_cut_off_from_the_leader_is_fenced_in_time(tmp_path):
    """Promise 1 with a partition between ZooKeeper servers. The holder talks to member 1 only;
    member 1 is cut off from the leader (a switch port, a firewall rule between racks). Member 1
    keeps answering the holder's pings for syncLimit*tickTime (its read of the leader times out
    only then), so Session.last_heard keeps moving - but the leader no longer hears of the session
    and expires it one session timeout after the cut. The standby (on member 2) takes the lock
    while the holder's fence still counts from the follower's answers: two children."""
    quorum = _Quorum(tmp_path / "q").start()
    try:
        assert quorum.servers[0].mode() == "follower", "member 1 must not lead (the highest id leads)"

        def client(i):
            return "%s:%d" % (LOOPBACK, quorum.servers[i].port)

        work = tmp_path / "w"

        def runner(name, hosts):
            r = Zkherd(["run", "--zk", hosts, "--session-timeout", "4", "--stop-timeout", "0.3",
                        "--lock", "/cut-lock", "--", *exclusive_child(work, name=name)], tmp_path / ("%s.log" % name))
            RUNNERS.append(r)
            return r

        holder = runner("holder", client(0))
        wait_starts(work, 1, timeout=30)
        standby = runner("standby", client(1))
        standby.wait_log("queued for lock", timeout=30)
        quorum.cut_member_1()
        cut = time.monotonic()
        wait_for(lambda: len(starts(work)) >= 2 or overlaps(work) or holder.has("stopping the child before"),
                 30, message=lambda: "a handover:\n" + holder.log()[-2000:])
        wait_for(lambda: len(starts(work)) >= 2 or overlaps(work), 30)
        took = time.monotonic() - cut
        assert overlaps(work) == [], ("the standby's child started %.1fs after the cut while the holder's child "
                                      "still held the slot: %s\nholder log:\n%s"
                                      % (took, overlaps(work), holder.log()[-2500:]))
    finally:
        while RUNNERS:
            RUNNERS.pop().stop()
        quorum.close()


def test_after_a_short_cut_between_servers_the_holder_runs_its_child_again(tmp_path):
    """The cut heals before the leader expires the session: the holder was fenced (it could not
    prove the leader still heard of it), still holds the lock, and must run its child again once
    the leader answers its syncs. Failed before the fix: the runner found its proof stale at the
    start, waited for the lock's watch (which never fires: the lock is ours) and held the lock with
    no child for ever, every standby blocked."""
    quorum = _Quorum(tmp_path / "q").start()
    try:
        assert quorum.servers[0].mode() == "follower", "member 1 must not lead (the highest id leads)"
        work = tmp_path / "w"
        holder = Zkherd(["run", "--zk", "%s:%d" % (LOOPBACK, quorum.servers[0].port), "--session-timeout", "4",
                         "--stop-timeout", "0.3", "--lock", "/cut-lock", "--", *exclusive_child(work, name="holder")],
                        tmp_path / "holder.log")
        RUNNERS.append(holder)
        wait_starts(work, 1, timeout=30)
        quorum.cut_member_1()
        holder.wait_log("stopping the child before the session can expire", timeout=10)
        holder.wait_log("child exited", timeout=10)
        quorum.heal_member_1()  # 2-3 s after the cut: before the leader's 4 s and the follower's give-up
        wait_starts(work, 2, timeout=20)
        assert overlaps(work) == []
        assert "same_session=False" not in holder.log(), "the session was meant to survive:\n" + holder.log()
    finally:
        while RUNNERS:
            RUNNERS.pop().stop()
        quorum.close()


def test_after_a_stall_shorter_than_kazoos_patience_the_holder_runs_its_child_again(make_zk_server, tmp_path):
    """The server stalls (SIGSTOP: a GC pause, a stuck disk) long enough for the fence (with a long
    stop timeout it acts 0.6 T after the last proof) and not long enough for kazoo to give up on
    the connection (2/3 T without an answer): no reconnect, the session and the lock are still ours.
    The child must run again once syncs are answered. Failed before the fix: the runner found its
    proof stale at the start and then waited for a watch that never fires - the lock held, no child,
    for ever."""
    server = make_zk_server()
    work = tmp_path / "w"
    holder = Zkherd(["run", "--zk", server.hosts, "--session-timeout", "6", "--stop-timeout", "10",
                     "--lock", "/stall-lock", "--", *exclusive_child(work, name="holder")], tmp_path / "holder.log")
    RUNNERS.append(holder)
    try:
        wait_starts(work, 1, timeout=30)
        time.sleep(1.0)  # syncs flow
        os.kill(server.pid, signal.SIGSTOP)
        try:
            holder.wait_log("stopping the child before the session can expire", timeout=10)
            holder.wait_log("child exited", timeout=10)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        wait_starts(work, 2, timeout=20)
        assert overlaps(work) == []
    finally:
        while RUNNERS:
            RUNNERS.pop().stop()


def test_a_standby_whose_proof_lapsed_while_it_waited_starts_its_child_once_the_lock_is_its(
        zk_server, zk_base, tmp_path):
    """The standby's proof that the leader still knows its session lapses while it waits in line
    (its syncs answered too late: CPU starvation, here a SIGSTOP of 5 s with a 6 s session), but its
    TCP connection survives (kazoo is busy with the syncs, so no ping is outstanding) and so does
    its session (the server heard from it 5 s ago). A sync answered after the proof's end proves
    nothing (core/session.py), and only a new connection would refresh it - which kazoo never makes
    for a connection that answers. When the holder hands the lock over, the standby must get a fresh
    proof (a new session) and start its child, or let the lock go. Failed before the fix: it logged
    "waiting for the ZooKeeper leader to confirm our session ... fence_in=-1.3s" and then held the
    lock with no child for ever (seen under load with a 1 s session: zero children anywhere)."""
    work, lock = tmp_path / "w", zk_base + "/lapse-lock"

    def runner(name):
        r = Zkherd(["run", "--zk", zk_server.hosts, "--session-timeout", "6", "--stop-timeout", "0.3",
                    "--lock", lock, "--", *exclusive_child(work, name=name)], tmp_path / ("%s.log" % name))
        RUNNERS.append(r)
        return r

    holder = runner("holder")
    try:
        wait_starts(work, 1, timeout=30)
        standby = runner("standby")
        standby.wait_log("queued for lock", timeout=30)
        time.sleep(1.0)  # its syncs flow: a fresh proof
        standby.signal(signal.SIGSTOP)  # 5 s > 0.7 T (the proof lapses), < T (the server keeps the session)
        frozen = time.monotonic()
        try:
            time.sleep(5.0)
        finally:
            standby.signal(signal.SIGCONT)
        thawed = time.monotonic() - frozen
        assert thawed < 5.8, "the freeze lasted %.1fs: the server may have expired the session" % thawed
        time.sleep(1.0)  # its syncs are answered again, too late to prove anything
        assert not standby.has("session expired|Session has expired|Connection dropped"), (
            "the standby's session or connection was lost: the lapse was not reproduced\n" + standby.log())
        holder.stop()  # a clean handover: the lock is the standby's
        handed = time.monotonic()
        wait_for(lambda: len(starts(work)) >= 2, 20,
                 message=lambda: "the standby got the lock and never started its child:\n" + standby.log()[-2500:])
        took = time.monotonic() - handed
        assert overlaps(work) == []
        assert standby.has("the proof that the ZooKeeper leader knows our session lapsed"), standby.log()
        assert took < 5.0, "the standby's child started %.1fs after the handover" % took
    finally:
        while RUNNERS:
            RUNNERS.pop().stop()
