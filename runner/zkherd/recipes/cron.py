"""`zkherd cron --election PATH -- CMD`: run CMD now only if this host leads the pool, once per tick.

Put the same line in every host's crontab (`* * * * * zkherd cron --election /cron/pool -- job`)
and run `zkherd elect --election /cron/pool` on each host. Then, each time cron fires:

1. A second run of the same job on the same host while one runs is refused (exit 75), or waits for
   it with --if-running wait: a local flock (recipes/cronlock.py), so runs never pile up.
2. If ZooKeeper cannot be reached, or does not answer what the run asks within --timeout, exit 69:
   cron runs never hang (77 if it denies access). A request that fails on the way (a lost reply,
   a connection that drops and comes back) is asked again within that time.
3. A host that does not lead the pool exits 0 quietly.
4. The leader claims the tick's marker ELECTION/ticks/NAME/START (recipes/cronmarks.py; START: the
   tick's start in Unix seconds, the time rounded down to a multiple of --tick), and commits it
   right before the job starts (recipes/tickmark.py: one compare-and-set decides). A tick taken by
   another run (say, leadership moved during the minute): exit 0. So a tick runs at most once,
   even when the hosts' cron starts are seconds apart; a claim whose claimer lost the leadership
   before starting the job is taken over by the next leader.
   With --catch-up S, a host that does not lead waits, until S after the tick's start, for the
   leadership to come to it (the leader died, its session has to expire), and then claims the tick.
5. While the job runs (on the Loop, contained like `zkherd run`'s child: run/job.py), leadership is
   watched: if the leader's member node goes, or the `elect` member's session may expire (its lease,
   recipes/lease.py), or ZooKeeper has not heard from us for too long (the Loop's fence,
   core/fence.py), the job is stopped - stop signal, --stop-timeout, SIGKILL - and the exit code is
   76. Otherwise the job's own code, once the job and all it started are gone.
"""

from __future__ import annotations

import signal
import time

from kazoo.protocol.states import EventType, KazooState

from zkherd import telemetry
from zkherd.common import paths
from zkherd.common.connection import ZkError
from zkherd.common.errors import AUTH
from zkherd.core import clock, exits
from zkherd.core.fence import margin, stop_time
from zkherd.core.loop import TRANSIENT, Loop, Program, asking
from zkherd.core.shellcmd import command_env
from zkherd.recipes.cronlock import job_name, local_lock
from zkherd.recipes.cronmarks import Collector
from zkherd.recipes.election import pool
from zkherd.recipes.lease import LeaseReader, Liveness
from zkherd.recipes.tickmark import TickMark
from zkherd.run.job import ChildError, Job

REWATCH_RETRY = 0.2
CATCH_UP_LOOK = 1.0  # while waiting to lead (--catch-up): look at the pool again at least this often


def run(opts, settings, log):
    """opts: election, id, command, name, tick, catch_up, timeout, if_running, stop_signal, stop_timeout."""
    name = opts.name or job_name(opts.command)
    try:
        held = local_lock(opts.election, name, opts.if_running == "wait", log)
    except ZkError as exc:
        log.error(exc.message)
        return exits.USAGE_ERROR
    if held is None:
        telemetry.get().cron_run("busy")
        return exits.TEMPFAIL
    cron = Cron(opts, name, log)
    try:
        code = Loop(settings, log).run(cron)
    finally:
        held.close()
    telemetry.get().cron_run(outcome(code, cron.job is not None))
    return code


def outcome(code, ran):
    """The label of zkherd_cron_runs_total for a run that ended with *code* (docs/operations.md)."""
    if ran:
        return "ok" if code == 0 else "lost" if code == exits.LOST else "failed"
    return {0: "skipped", exits.TEMPFAIL: "busy", exits.UNAVAILABLE: "unavailable",
            exits.NOPERM: "denied"}.get(code, "error")


class Cron(Program):
    """Decide (lead? claim the tick, watch the leader), then run the job until it is gone."""

    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    quiet = True  # a run that has nothing to do says nothing

    def __init__(self, opts, name, log):
        self.opts = opts
        self.name = name
        self.log = log
        self.tick_start = int(time.time() // opts.tick * opts.tick)
        self.tick = str(self.tick_start)  # the marker's name
        self.ticks = paths.join(paths.join(opts.election, "ticks"), name)
        self.collector = Collector(paths.join(opts.election, "ticks"), name, opts.tick, log)
        self.catch_up_until = self.tick_start + opts.catch_up if opts.catch_up else None  # wall clock
        self.waiting = False  # --catch-up: not the leader yet, waiting for the leadership
        self.leader_node = None  # the leader's member node, once we know we lead
        self.lease = None  # the elect member's lease (recipes/lease.py), if it publishes one
        self.alive = None  # lease.Liveness of it, before the claim
        self.again_in = None  # seconds until decide() goes on (the lease has not moved yet)
        self.mark = None  # our part in the tick's marker (recipes/tickmark.py), once we lead
        self.claimed = False
        self.job = None
        self.watched = False  # the watch on the leader's node is set
        self.lost = None  # why leadership is lost
        self.fenced = False  # the fence sent the stop signal itself (no second one)
        self.give_up_at = None
        self.post = None

    def start(self, loop):
        self.post = loop.wakeup.post
        self.give_up_at = time.monotonic() + self.opts.timeout
        loop.fence  # noqa: B018  # its syncs keep the proof through the leader fresh before the job starts

    def on_event(self, kind, value):
        if kind == "signal":
            name = signal.Signals(value).name
            if self.job is None:
                self.log.info("received %s before the job started; not running it" % name)
                self.exit_code = 128 + value
            else:
                self.job.stop(self.opts.stop_timeout, "received %s" % name)
        elif kind == "pool":
            pass  # --catch-up: the next turn looks at the pool again
        elif kind == "leader":
            if value is None:  # kazoo dropped its watches with the connection: set it again
                self.watched = False
            else:
                self.lose("the leader's member node is gone")
        elif kind == "state":
            if value == KazooState.LOST:
                self.lose("the ZooKeeper session expired")
            elif value == KazooState.CONNECTED:
                self.watched = False
        elif kind == "fence":
            what, kill_at = value
            if what == "stop":
                self.fenced = True
                self.log.warning("no proof for too long that ZooKeeper hears from this run or from the leader's "
                                 "member; stopping the job before that session can expire",
                                 kill_in="%.3fs" % max(0.0, kill_at - clock.now()))
                self.lose("no contact with ZooKeeper for too long (this run's session or the member's lease)")
            else:
                self.log.warning("the job did not stop in time; killed before the session can expire")

    def _pool_changed(self, event):
        self.post("pool", event.path)

    def _leader_changed(self, event):
        self.post("leader", None if event.type == EventType.NONE else event.path)

    def lose(self, reason):
        if self.job is not None and self.lost is None:
            self.lost = reason

    # -- turns -----------------------------------------------------------------------------------

    def turn(self, loop):
        if self.job is not None:
            return self.supervise(loop)
        left = self.give_up_at - time.monotonic()
        if self.waiting and time.time() >= self.catch_up_until:
            self.log.debug("the leadership did not come to this host within --catch-up; nothing to do")
            self.exit_code = 0
            return None
        if left <= 0:
            self.log.error("ZooKeeper did not answer within %g s (--timeout); the job did not run" % self.opts.timeout)
            self.exit_code = exits.UNAVAILABLE
            return None
        if not loop.connected:
            return left
        loop.talk()
        self.decide(loop, lambda result: loop.get(result, timeout=max(0.05, min(loop.op_timeout(), left))))
        if self.again_in is not None:  # waiting for a beat of the member's lease: ZooKeeper did answer
            self.give_up_at = time.monotonic() + self.opts.timeout
            again, self.again_in = self.again_in, None
            return again
        if self.waiting and self.exit_code is None and self.job is None:
            self.give_up_at = time.monotonic() + self.opts.timeout  # ZooKeeper answered: --timeout starts again
            return max(0.0, min(CATCH_UP_LOOK, self.catch_up_until - time.time()))
        return None

    def on_error(self, loop, error):
        if self.job is None:  # before the job: say why it does not run
            self.log.error(error.message)
            self.exit_code = exits.NOPERM if error.kind == AUTH else exits.UNAVAILABLE
            return None
        self.log.warning(error.message)
        return 1.0

    def decide(self, loop, wait):
        """Each step is kept once done: a turn that failed half way goes on from there."""
        opts, client = self.opts, loop.client
        if self.leader_node is None:
            node = self.lead(client, wait) if self.lease is None else self.lease.node  # once ours: its lease
            if node is None:
                return
            verdict = self.liveness(node)
            if verdict == "dead":  # our member is dead or cut off: leave the tick to the next leader
                self.log.warning("this host leads the pool, but its member is not heard by ZooKeeper any more (its "
                                 "lease does not move, or runs out): not claiming the tick", node=node)
                self.exit_code = exits.LOST
                return
            if verdict != "ok":
                self.again_in = verdict  # look at the lease again in a moment (the commit checks the node again)
                return
            self.leader_node = node
        if not self.claimed:
            if self.mark is None:
                self.mark = TickMark(paths.join(self.ticks, self.tick), opts.id, opts.tick, self.leader_node)
            with asking("claim the tick at", self.mark.node):
                self.claimed = self.mark.claim(client, wait)
            if not self.claimed:
                self.log.info("this tick already ran", job=self.name, tick=self.tick)
                self.exit_code = 0
                return
            if self.mark.taken_from is not None:
                self.log.warning("the tick was claimed under a leadership that is gone, and its job never started; "
                                 "taking it over", job=self.name, tick=self.tick, claimed_by=self.mark.taken_from)
            self.collector.collect(client, wait, self.tick)
        with asking("watch the leader's node", self.leader_node):
            found = wait(client.exists_async(self.leader_node, watch=self._leader_changed))
        if found is None:
            self.log.warning("leadership moved while the job was starting; not running it")
            self.exit_code = exits.LOST
            return
        self.watched = True
        self.lease.own(found.ephemeralOwner)  # a lease of another session is not this node's
        with asking("commit the tick at", self.mark.node):
            committed = self.mark.commit(client, wait)
        if not committed:
            self.log.warning("another leader took this tick over before the job started; not running it",
                             job=self.name, tick=self.tick)
            self.exit_code = exits.LOST
            return
        self.log.info("this host leads the pool; running the job", job=self.name, tick=self.tick)
        self.start_job(loop)

    def lead(self, client, wait):
        """Our leader member node if this host leads the pool, else None (exit_code set, or waiting
        for the leadership with --catch-up)."""
        opts = self.opts
        with asking("read the pool", opts.election):
            if self.catch_up_until is not None:  # a change of the pool wakes us
                wait(client.get_children_async(opts.election, watch=self._pool_changed))
            members = pool(client, opts.election, wait)
        if not members or members[0][1] != opts.id:
            leader = members[0][1] if members else "-"
            if self.catch_up_until is not None and time.time() < self.catch_up_until:
                if not self.waiting:
                    self.log.debug("not the leader of the pool; waiting for the leadership (--catch-up)",
                                   election=opts.election, leader=leader)
                self.waiting = True
                return None
            self.log.debug("not the leader of the pool; nothing to do", election=opts.election, leader=leader)
            self.exit_code = 0
            return None
        if self.waiting:  # from now on the --catch-up deadline no longer applies: this run leads
            self.log.info("this host leads the pool now; catching up on the tick", job=self.name, tick=self.tick)
        self.waiting = False
        return paths.join(opts.election, members[0][0])

    def liveness(self, node):
        """What the lease of our member *node* says (lease.Liveness): "ok", "dead", or seconds to wait."""
        if self.lease is None or self.lease.node != node:
            self.lease = LeaseReader(node, self.opts.lease_dir, self.log)
            self.alive = Liveness(self.lease, self.needs)
            if self.lease.bound() is None:
                self.log.info("no leadership lease of this host's member: the job is stopped when its member node "
                              "is seen to go, not before (docs/cron.md)", node=node)
        return self.alive.verdict()

    def needs(self, timeout):
        """Seconds a job needs before its member's session may expire: the fence's margin and stop time."""
        return margin(timeout) + stop_time(self.opts.stop_timeout, timeout)

    def start_job(self, loop):
        opts = self.opts
        self.job = Job(opts.command, command_env(ZKHERD_CRON_JOB=self.name), self.log, "zkherd-cron", opts.stop_signal)
        try:
            self.job.start()
        except ChildError as exc:
            self.log.error(str(exc))
            self.exit_code = exits.NOT_FOUND
            return
        loop.fence.also(self.lease.bound)
        loop.fence.arm(self.job.child, opts.stop_timeout)

    def supervise(self, loop):
        if self.lost:  # SIGKILL after --stop-timeout even if contact comes back (the fence would then wait)
            self.job.stop(self.opts.stop_timeout, "leadership lost: " + self.lost, send=not self.fenced)
        code, wait = self.job.poll()  # after stop(): *wait* includes its SIGKILL deadline
        if code is not None:
            loop.fence.disarm()
            if self.lost:
                self.log.warning("job stopped: leadership was lost", reason=self.lost)
                self.exit_code = exits.LOST
            else:
                self.exit_code = code
            return None
        if not self.lost and not self.watched and loop.connected:
            retry = self.rewatch(loop)
            if retry is not None:
                wait = retry if wait is None else min(wait, retry)
        return wait

    def rewatch(self, loop):
        """Watch the leader's node again (after a connection loss); seconds until trying again if
        that could not be done now. The fence covers a connection that stays bad."""
        try:
            loop.talk()
            with asking("watch the leader's node", self.leader_node):
                found = loop.get(loop.client.exists_async(self.leader_node, watch=self._leader_changed))
        except TRANSIENT:
            return REWATCH_RETRY
        except ZkError as exc:
            self.log.warning("cannot watch the leader's node; trying again", error=exc.message)
            return 1.0
        self.watched = True
        if found is None:
            self.lose("the leader's member node is gone")
            return 0.0
        return None

    def close(self, loop):
        if self.job is not None:
            self.job.close()
