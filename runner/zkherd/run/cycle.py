"""The child's cycle in `zkherd run`: start it (only through the lock), stop it for a reason that says
what comes after, and, once its exit is collected and its whole tree is gone, go where that leads -
exit, queue for the lock again, start again with new files, or pause on a failed version. The states
it moves through are the runner's (run/states.py); the parts it uses report and never decide."""

from __future__ import annotations

import time

from zkherd import telemetry
from zkherd.core import clock, exits
from zkherd.core.fence import stop_time
from zkherd.core.shellcmd import command_env
from zkherd.run import childlife as after
from zkherd.run import wants
from zkherd.run.child import ChildError
from zkherd.run.states import State as S

FENCE_WHY = "no contact with ZooKeeper for too long"  # why the fence thread stops a child


class Cycle:
    def __init__(self, runner):
        self.opts, self.log, self.machine = runner.opts, runner.log, runner.machine
        self.life, self.holding, self.rollout = runner.life, runner.holding, runner.rollout
        self.drain = runner.drain
        self.health, self.alerts, self.notify, self.loop = runner.health, runner.alerts, runner.notify, runner.loop
        self.exit_with = None  # the code decided, used once the child is gone
        self.keep_child_code = False  # exit with the child's own code (TERM: the child's answer to it)
        self.starts = 0
        self.healthy_once = False  # the child became healthy since it started
        self.waiting_for_leader = False  # logged once per wait
        self.wait_deadline = (time.monotonic() + self.opts.wait_timeout
                              if self.opts.lock and self.opts.wait_timeout is not None else None)

    def start(self, loop):
        """The one way the child starts (first start, restart, takeover): connected, lock held, and
        the leader known to have heard of us recently enough that the fence would not act at once.
        Returns seconds until it should be tried again, or None."""
        if self.opts.lock and not self.fence_far(loop):
            self.holding.dirty = True  # look at the lock again on the next try: it may go meanwhile
            return 0.05
        env = self.holding.child_env(loop, register=self.opts.register_when == "started"
                                     and not self.drain.registration_drained())
        if env is None:
            return None
        if self.opts.lock and not self.starts:
            self.log.info("lock acquired", lock=self.opts.lock, node=env["ZKHERD_LOCK_PATH"],
                          fencing_token=env["ZKHERD_FENCING_TOKEN"])
        try:
            pid = self.life.start(command_env(**env), fenced=bool(self.opts.lock))
        except ChildError as exc:
            self.log.error(str(exc))
            self.finish(exits.NOT_FOUND, str(exc))
            return
        telemetry.get().child(pid, "restart" if self.starts else "start")
        self.starts, self.healthy_once = self.starts + 1, False
        if self.health is not None:
            self.health.child_started()
        if self.rollout is not None:
            self.rollout.child_started(self.health)
        self.machine.to(S.STARTING if self.health is not None else S.RUNNING, "child started", pid=pid)
        return None

    def fence_far(self, loop):
        """The fence would not act within a tenth of the session timeout of a start now (after a
        lost proof through the leader it would: wait for the next sync rather than start and kill)."""
        left = loop.fence.deadlines(self.opts.stop_timeout)[0] - clock.now()
        if left > 0.1 * loop.session.timeout:
            self.waiting_for_leader = False
            return True
        if loop.session.lapsed() and not self.life.present:
            # no sync can bring the proof back (core/session.py), and kazoo never reconnects a
            # connection that answers: without a new session we would hold the lock with no child
            # for ever. Its lock node goes with it: the next in line takes over, or we do.
            self.waiting_for_leader = False
            loop.renew_session("before the child could start", lock=self.opts.lock)
        if not self.waiting_for_leader:
            self.waiting_for_leader = True
            self.log.warning("waiting for the ZooKeeper leader to confirm our session before starting the child",
                             fence_in="%.3fs" % left)
        return False

    def stop(self, then, why, state):
        self.life.stop(then, why)
        self.machine.to(state, why)

    def fenced(self, kill_at, why):
        """The fence signalled the child from its thread (or the session is gone): state and deadline follow."""
        if not self.life.running:
            return
        telemetry.get().fence()
        self.enter_fenced(why)
        self.life.stop(after.REQUEUE, "fencing: " + why, stop_time(self.opts.stop_timeout, self.loop.session.timeout),
                       deadline=kill_at)

    def enter_fenced(self, why):
        if self.machine.state not in (S.FENCED, S.STOPPING):
            self.log.warning("stopping the child before the session can expire", lock=self.opts.lock, why=why)
            self.machine.to(S.FENCED, why)

    def finish(self, code, why, keep_child_code=False):
        """Exit with *code* once the child's tree is gone (at once if there is none)."""
        if self.exit_with is not None:
            return
        self.exit_with, self.keep_child_code = code, keep_child_code
        self.notify.stopping()
        if self.life.present:
            self.stop(after.EXIT, why, S.STOPPING)
        else:
            self.holding.release(self.loop)
            self.machine.to(S.EXITING, why, code=code)

    def reap(self):
        """Collect the child's exit; once its whole tree is gone, go where its exit leads. Returns
        seconds until it should be looked at again (its tree is dying), or None."""
        code = self.life.reap()
        if code is not None:
            self.exited(code)
        gone = self.life.gone()
        if gone is None:
            return 0.01 if self.life.present and not self.life.running else None
        self.gone(*gone)
        return 0.0

    def exited(self, code):
        if self.health is not None:
            self.health.stop()
        if self.life.then is None and self.life.fence_acted:
            # the fence stopped it and it died of that before the loop read the fence's event (which
            # then finds no child): the fence's doing, not an exit of its own
            self.enter_fenced(FENCE_WHY)
            self.life.then = after.REQUEUE
        if self.life.then is not None:
            return  # we stopped it: a restart, a lost lock, the fence, or the runner's own exit
        why = "the child exited with code %d" % code
        if self.rollout is not None and self.rollout.child_failed(why + " after the new configuration"):
            self.life.then = after.RESTART if self.rollout.after_failure == wants.RESTART else after.PAUSE
            return
        if code != 0:
            self.alerts.fire("exited", why)
        self.finish(code, why)  # the command ended on its own: so does the runner, with its code

    def gone(self, code, then):
        telemetry.get().child(None)
        if then == after.EXIT:
            self.exit_with = code if self.keep_child_code else self.exit_with
            self.holding.release(self.loop)
            self.machine.to(S.EXITING, "the child is gone", code=self.exit_with)
        elif then == after.DRAIN:
            self.holding.release(self.loop)
            self.machine.to(S.DRAINED, "the child is gone; out of the line until undrained")
        elif then == after.PAUSE:
            self.machine.to(S.PAUSED, "a failed version: waiting for a newer one")
        else:
            if then == after.REQUEUE:
                self.log.info("child stopped, waiting for the lock again", why=self.machine.why)
                self.holding.release(self.loop)
            self.holding.dirty = True  # every start goes through the lock, a restart too
            self.machine.to(S.QUEUED, "the child is gone" if then == after.REQUEUE else "a restart")

    def check_wait_timeout(self):
        """--wait-timeout: exit 75 if the first wait for the lock takes too long."""
        if self.starts:
            self.wait_deadline = None
        if self.wait_deadline is None or self.exit_with is not None:
            return None
        left = self.wait_deadline - time.monotonic()
        if left > 0:
            return left
        self.log.warning("lock not obtained within --wait-timeout", lock=self.opts.lock,
                         wait_timeout=self.opts.wait_timeout)
        self.finish(exits.TEMPFAIL, "the lock was not obtained in time")
        return 0.0
