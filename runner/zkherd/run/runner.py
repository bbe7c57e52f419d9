"""`zkherd run`: a command under a lock, registered for discovery, with mirrored configuration -
the supervised service, as a Program on the one loop (core/loop.py) and an explicit state machine
(run/states.py: every transition in Machine.to).

Each turn: reap the child (its exit decides the next state once its whole tree is gone - only then
is the lock released), escalate a stop, poll health checks and alerts, then, with a connection that
answers, do the ZooKeeper work of the current state (the lock's line, the registration, the
configuration) and settle the state of a running child. The fence (core/fence.py) runs beside it in
a thread of its own: no ZooKeeper request, slow disk or long render can delay it.

Under systemd (Type=notify, core/sdnotify.py) the runner reports READY=1 once it is connected and has
either started the child or queued for the lock, or waits for mirrored znodes; STATUS= follows the
state, and STOPPING=1 comes when it has decided to exit.
"""

from __future__ import annotations

import signal
import time

from kazoo.protocol.states import KazooState

from zkherd.common.errors import AUTH, USAGE
from zkherd.core import clock, exits
from zkherd.core.fence import stop_time
from zkherd.core.loop import Program
from zkherd.core.sdnotify import Notifier
from zkherd.core.shellcmd import command_env
from zkherd.recipes.lock import Lock, LockLost
from zkherd.recipes.registration import Registration
from zkherd.run import rollout as wants
from zkherd.run.alerts import Alerts
from zkherd.run.child import Child, ChildError
from zkherd.run.containment import Containment
from zkherd.run.health import HEALTHY, UNHEALTHY, Health
from zkherd.run.rollout import Rollout
from zkherd.run.states import Machine, child_up
from zkherd.run.states import State as S
from zkherd.run.status import status_line

FORWARDED = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
STOPPING = (signal.SIGTERM, signal.SIGINT)
EXIT, REQUEUE, RESTART, PAUSE = "exit", "requeue", "restart", "pause"  # what to do once the child is gone


class Runner(Program):
    signals = STOPPING + FORWARDED

    def __init__(self, opts, log):
        self.opts, self.log = opts, log
        self.notify = Notifier(log=log)
        self.machine = Machine(log)
        self.alerts = Alerts(opts.alert, log)
        self.health = (Health(opts.health, opts.health_delay, opts.health_interval, opts.health_timeout,
                              opts.health_rise, opts.health_fall, command_env(), log) if opts.health else None)
        self.loop = self.containment = self.child = self.lock = self.registration = self.rollout = None
        self.lock_dirty = True  # look at the lock: a watch fired, or the connection is new
        self.after_gone = None  # what to do once the child's tree is gone (EXIT, REQUEUE, RESTART, PAUSE)
        self.exit_with = None  # the code decided, once the child is gone
        self.keep_child_code = False  # exit with the child's own code (TERM: the child's answer to it)
        self.healthy_once = False  # the child became healthy since it started
        self.restarts = 0
        self.wait_deadline = None
        self.session_id = None

    # -- setup -----------------------------------------------------------------------------------

    def start(self, loop):
        opts, self.loop = self.opts, loop
        self.session_id = loop.session.session_id
        self.containment = Containment(self.log, "zkherd-child")
        if opts.lock:
            self.lock = Lock(opts.lock, opts.slots, opts.id, loop.wakeup, self.log, loop.op_timeout,
                             on_foreign=lambda message: self.alerts.fire("foreign-lock-node", message))
            if opts.wait_timeout is not None:
                self.wait_deadline = time.monotonic() + opts.wait_timeout
        if opts.register:
            self.registration = Registration(opts.register, opts.data, self.log)
        if opts.mirror or opts.mirror_dir:
            self.rollout = Rollout(opts, loop, self.log, self.alerts)
            self.machine.to(S.WAITING_CONFIG, "connected; the mirrored files come first")
        else:
            self.machine.to(S.QUEUED, "connected")

    # -- events ----------------------------------------------------------------------------------

    def on_event(self, kind, value):
        if kind == "signal":
            self.on_signal(value)
        elif kind == "state":
            self.on_state(value)
        elif kind == "lock":
            self.lock_dirty = True
        elif kind == "fence":  # the fence thread acted; its deadline is on the boot clock
            self.fenced(time.monotonic() + (value[1] - clock.now()))
        elif self.rollout is not None:
            self.rollout.on_event(kind)

    def on_signal(self, signum):
        name = signal.Signals(signum).name
        if signum in STOPPING:
            self.log.info("received %s, stopping" % name)
            self.finish(128 + signum, "received %s" % name, keep_child_code=True)
        elif self.child is not None and self.child.running:
            self.log.info("forwarding %s to the child" % name, pid=self.child.pid)
            self.child.signal(signum)
        else:
            self.log.info("received %s with no child running, ignored" % name)

    def on_state(self, state):
        if state == KazooState.CONNECTED:
            current = self.loop.session.session_id
            self.log.info("contact with ZooKeeper is back", session="0x%x" % (current or 0),
                          same_session=current == self.session_id)
            self.session_id = current
            self.lock_dirty = True  # kazoo drops watches with the connection: look (and watch) again
            if self.rollout is not None:
                self.rollout.reconnected()
            if self.machine.state == S.CONNECTING:
                self.machine.to(S.WAITING_CONFIG if self.rollout and not self.rollout.ready else S.QUEUED,
                                "a new session")
        elif state == KazooState.SUSPENDED:
            fenced = self.lock is not None and self.child is not None and self.child.running
            left = self.loop.fence.time_left() if fenced else None
            self.log.warning("lost contact with ZooKeeper, waiting for it to come back",
                             child_stops_in="%.3fs" % left if left is not None else "never")
        elif state == KazooState.LOST:
            self.log.warning("the ZooKeeper session expired; a new one will be made")
            if self.lock is not None:
                self.lock.forget_session()
            if self.registration is not None:
                self.registration.forget_session()  # made again on the new session
            if self.rollout is not None:
                self.rollout.session_lost()
            if self.lock is not None and self.child is not None and self.child.running:
                self.fenced(time.monotonic(), "the session expired while the child held the lock")
            elif not child_up(self.machine.state) and self.machine.state not in (S.STOPPING, S.EXITING):
                self.machine.to(S.CONNECTING, "the session expired")

    def fenced(self, kill_at, why="no contact with ZooKeeper for too long: the session may expire"):
        """The fence signalled the child (from its thread); here the state and the kill deadline follow."""
        if self.child is None or not self.child.running:
            return
        self.after_gone = self.after_gone or REQUEUE
        if self.machine.state not in (S.FENCED, S.EXITING):
            self.log.warning("stopping the child before the session can expire", lock=self.opts.lock, why=why)
            if self.machine.state != S.STOPPING:
                self.machine.to(S.FENCED, why)
        self.child.stop(stop_time(self.opts.stop_timeout, self.loop.session.timeout), "fencing: " + why,
                        deadline=kill_at)

    # -- the turn --------------------------------------------------------------------------------

    def turn(self, loop):
        self.alerts.poll()
        due = [self.reap()]
        if self.child is not None:
            due.append(self.child.tick())
        if self.machine.state == S.EXITING:
            self.exit_code = self.exit_with
            return None
        if loop.connected and loop.session.may_talk():
            due.append(self.zookeeper_turn(loop))
        due.append(self.poll_health())  # after: a child just started has its first check scheduled
        due.append(self.check_wait_timeout())
        if self.machine.state == S.EXITING:
            self.exit_code = self.exit_with
            return None
        self.settle()
        self.report()
        pending = [d for d in due if d is not None]
        return max(0.0, min(pending)) if pending else None

    def zookeeper_turn(self, loop):
        state, due = self.machine.state, None
        if self.rollout is not None:
            self.rollout.record_failure(loop)
            due, action = self.rollout.poll(loop, child_up(state) and self.child is not None and self.child.running)
            self.act(action)
        state = self.machine.state
        if state == S.QUEUED and self.exit_with is None:
            again = self.queued(loop)
            due = again if due is None or again is not None and again < due else due
        elif child_up(state) and self.lock is not None and self.lock_dirty:
            self.lock_dirty = False
            try:
                held = self.lock.still_held(loop.client)
            except BaseException:
                self.lock_dirty = True
                raise
            if not held:
                self.stop_child(REQUEUE, "lock lost: one of our lock nodes is gone", S.STOPPING)
        if self.registration is not None:
            if child_up(self.machine.state) and self.child is not None and self.child.running:
                self.keep_registration(loop)
            elif self.registration.doubtful:  # a delete whose answer was lost: make sure it is gone
                self.registration.remove(loop.client, loop.op_timeout())
        return due

    def queued(self, loop):
        """Queued: look at the lock's line; start the child once it is ours. Returns seconds until
        a look is due again, or None (a watch will tell)."""
        if self.rollout is not None and not self.rollout.ready:
            self.machine.to(S.WAITING_CONFIG, "the mirrored files are not in place")
            return None
        if self.lock is not None:
            if not self.lock_dirty and self.lock.place is not None:
                return None
            self.lock_dirty = False
            try:
                held = self.lock.step(loop.client)
            except LockLost as exc:
                self.log.warning("lost our place in the lock", lock=self.opts.lock, reason=str(exc))
                self.lock_dirty = True
                return 0.0 if self.lock.leave(loop.client) else 0.2  # queue again at once
            except BaseException:
                self.lock_dirty = True  # look again on the next turn
                raise
            if not held:
                if self.opts.no_wait:
                    self.log.warning("lock is held elsewhere and --no-wait was given", lock=self.opts.lock)
                    self.finish(exits.TEMPFAIL, "the lock is held elsewhere")
                return None
        self.start_child(loop)
        return None

    def act(self, action):
        """Carry out what the rollout asked for."""
        state = self.machine.state
        if action == wants.START:
            self.lock_dirty = True
        if action == wants.START and state == S.WAITING_CONFIG:
            self.machine.to(S.QUEUED, "the mirrored files are in place")
        elif action == wants.START and child_up(state) and (self.child is None or not self.child.running):
            self.machine.to(S.QUEUED, "a new configuration to start with")
        elif action == wants.RESTART and child_up(state):
            self.stop_child(RESTART, "the configuration changed", S.RESTARTING)
        elif action == wants.RELOAD and self.child is not None:
            self.log.info("configuration changed, signalling the child", signal=self.opts.reload_signal.name)
            self.child.signal(self.opts.reload_signal)

    def settle(self):
        """Name the state of a child that is meant to run, from what the components say."""
        if not child_up(self.machine.state) or self.child is None or not self.child.running:
            return
        rollout = self.rollout
        if rollout is not None and rollout.phase == wants.PAUSED:
            self.machine.to(S.PAUSED, "a failed version: waiting for a newer one")
        elif rollout is not None and rollout.busy:
            self.machine.to(S.CHECKING, "new files")
        elif self.health is not None and not self.healthy_once:
            self.machine.to(S.STARTING, "not healthy yet")
        else:
            self.machine.to(S.RUNNING, "healthy" if self.health is not None else "started")

    # -- the child -------------------------------------------------------------------------------

    def start_child(self, loop):
        """The one way the child starts (first start, restart, takeover): connected, lock held."""
        env = command_env()
        if self.lock is not None:
            if self.lock.node is None:  # never a child under a lock we do not hold
                self.lock_dirty = True
                return
            env["ZKHERD_LOCK_PATH"], env["ZKHERD_FENCING_TOKEN"] = self.lock.node, str(self.lock.token)
            if not self.restarts:
                self.log.info("lock acquired", lock=self.opts.lock, node=self.lock.node,
                              fencing_token=self.lock.token)
        if self.registration is not None and self.opts.register_when == "started":
            env["ZKHERD_REGISTERED_PATH"] = self.registration.ensure(loop.client, loop.op_timeout())
        self.child = Child(self.opts.command, env, self.log, self.containment, self.opts.stop_signal)
        self.wait_deadline = None  # --wait-timeout is about the first wait only
        try:
            self.child.start()
        except ChildError as exc:
            self.log.error(str(exc))
            self.child = None
            self.finish(exits.NOT_FOUND, str(exc))
            return
        if self.lock is not None:
            loop.fence.arm(self.child, self.opts.stop_timeout)
        self.healthy_once = False
        if self.health is not None:
            self.health.child_started()
        if self.rollout is not None:
            self.rollout.child_started(self.health)
        self.machine.to(S.STARTING if self.health is not None else S.RUNNING, "child started", pid=self.child.pid)

    def stop_child(self, then, why, state):
        if self.child is not None and self.child.running:
            self.after_gone = then if self.after_gone != EXIT else EXIT
            self.child.stop(self.opts.stop_timeout, why)
        self.machine.to(state, why)

    def reap(self):
        """Collect the child's exit; once its whole tree is gone, go where its exit leads."""
        child = self.child
        if child is None:
            return None
        if child.running:
            if not child.exited():
                return None
            self.loop.fence.disarm()  # before the reap: the fence never signals a pid that may be reused
            self.on_child_exit(child.reap())
        if not child.gone():
            return 0.01  # SIGKILL went to the tree: its processes are dying
        self.child = None
        self.child_gone(child.returncode)
        return 0.0

    def on_child_exit(self, code):
        if self.health is not None:
            self.health.stop()
        if self.after_gone is not None:
            return  # we stopped it: a restart, a lost lock, the fence, or the runner's own exit
        why = "the child exited with code %d" % code
        if self.rollout is not None and self.rollout.child_failed(why + " after the new configuration"):
            self.after_gone = RESTART if self.rollout.after_failure == wants.RESTART else PAUSE
            return
        if code != 0:
            self.alerts.fire("exited", why)
        self.finish(code, why)  # the command ended on its own: so does the runner, with its code

    def child_gone(self, code):
        then, self.after_gone = self.after_gone, None
        if then == EXIT:
            if self.keep_child_code:
                self.exit_with = code
            self.release()
            self.machine.to(S.EXITING, "the child is gone", code=self.exit_with)
        elif then == RESTART:
            self.restarts += 1
            self.lock_dirty = True  # the restart goes through the lock as any start does
            self.machine.to(S.QUEUED, "starting the child again with the new configuration")
        elif then == PAUSE:
            self.machine.to(S.PAUSED, "a failed version: waiting for a newer one")
        else:
            self.log.info("child stopped, waiting for the lock again", why=self.machine.why)
            self.release()
            self.lock_dirty = True
            self.machine.to(S.QUEUED, "the child is gone")

    def finish(self, code, why, keep_child_code=False):
        """Exit with *code* once the child's tree is gone (at once if none runs)."""
        if self.exit_with is not None:
            return
        self.exit_with, self.keep_child_code = code, keep_child_code
        self.notify.stopping()
        if self.child is not None:
            self.after_gone = EXIT
            if self.child.running:
                self.child.stop(self.opts.stop_timeout, why)
            self.machine.to(S.STOPPING, why)
        else:
            self.release()
            self.machine.to(S.EXITING, why, code=code)

    # -- ZooKeeper bookkeeping -------------------------------------------------------------------

    def keep_registration(self, loop):
        """Registered while running (or, with --register-when healthy, while healthy); made again
        on a new session."""
        wanted = self.opts.register_when == "started" or self.health is not None and self.health.status == HEALTHY
        if wanted:
            self.registration.ensure(loop.client, loop.op_timeout())
        elif self.registration.node is not None:
            self.registration.remove(loop.client, loop.op_timeout())

    def release(self):
        """Remove our nodes (the child is gone); best effort: they are ephemeral and go with the
        session anyway."""
        loop = self.loop
        if not loop.connected:
            return
        try:
            if self.registration is not None:
                self.registration.remove(loop.client, loop.op_timeout())
            if self.lock is not None:
                self.lock.release(loop.client)
        except Exception as exc:
            self.log.warning("could not remove our nodes now; they go when the session ends", error=str(exc))
            self.lock_dirty = True

    def poll_health(self):
        if self.health is None or self.child is None or not self.child.running:
            return None
        left, changed = self.health.poll()
        if changed == HEALTHY:
            self.healthy_once = True
            if self.rollout is not None:
                self.rollout.healthy()
        rollout = self.rollout
        applying = rollout is not None and rollout.phase == wants.APPLYING
        if changed == UNHEALTHY and not self.health.in_delay and not applying:  # a failed version has its own
            self.alerts.fire("health", "the child failed its health checks")
        if applying and self.health.status != HEALTHY and self.machine.state != S.RESTARTING:
            late = time.monotonic() - self.health.healthy_by
            if late >= 0 and rollout.child_failed("the child was not healthy in time after the new configuration"):
                if rollout.after_failure == wants.RESTART:
                    self.stop_child(RESTART, "rolling back to the last good configuration", S.RESTARTING)
                return None
            left = min(left, -late) if left is not None else -late
        return left

    def check_wait_timeout(self):
        if self.wait_deadline is None or self.exit_with is not None:
            return None
        left = self.wait_deadline - time.monotonic()
        if left <= 0:
            self.log.warning("lock not obtained within --wait-timeout", lock=self.opts.lock,
                             wait_timeout=self.opts.wait_timeout)
            self.finish(exits.TEMPFAIL, "the lock was not obtained in time")
            return 0.0
        return left

    def on_error(self, loop, error):
        if error.kind in (AUTH, USAGE):  # will not get better by trying again
            self.log.error(error.message)
            self.finish(exits.for_error(error), error.message)
            return 0.0
        self.log.error(error.message)
        self.lock_dirty = True
        if self.rollout is not None:
            self.rollout.sync.dirty = True
        return 1.0

    def report(self):
        if self.notify.enabled and self.exit_with is None:
            status, ready = status_line(self)
            if status is not None:
                self.notify.set_status(status, ready=ready)

    def close(self, loop):
        if self.rollout is not None:
            self.rollout.close()
        if self.health is not None:
            self.health.stop()
        if self.containment is not None:
            self.containment.sweep(5.0)  # the loop ended without the child gone (an internal error): no orphan
            self.containment.close()
        self.notify.close()


def run(opts, settings, log):
    from zkherd.core.loop import Loop

    return Loop(settings, log).run(Runner(opts, log))
