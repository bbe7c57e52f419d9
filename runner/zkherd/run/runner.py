"""`zkherd run`: a command under a lock, registered for discovery, with mirrored configuration -
the supervised service, as a Program on the one loop (core/loop.py) and an explicit state machine
(run/states.py: every transition goes through Machine.to; docs/runner.md draws it).

Each turn: reap the child (its exit decides the next state once its whole tree is gone - only then
is the lock released or a child started again), escalate a stop, then, with a connection that
answers, do the ZooKeeper work of the current state (the lock's line, the registration, the
configuration), poll health checks and alerts, and name the state of a running child. The parts
report and return what they want done; only this class changes the state: run/childlife.py (the
child), run/holding.py (lock and registration), run/rollout.py (configuration), run/health.py. The
fence (core/fence.py) runs beside it in a thread of its own.

Under systemd (Type=notify, core/sdnotify.py) the runner reports READY=1 once it is connected and has
either started the child or queued for the lock, or waits for mirrored znodes (run/status.py); STATUS=
follows the state, STOPPING=1 comes when it has decided to exit.
"""

from __future__ import annotations

import signal
import time

from kazoo.protocol.states import KazooState

from zkherd import telemetry
from zkherd.core import clock, exits
from zkherd.core.loop import Loop, Program
from zkherd.core.sdnotify import Notifier
from zkherd.core.shellcmd import command_env
from zkherd.run import childlife as after
from zkherd.run import wants
from zkherd.run.alerts import Alerts
from zkherd.run.childlife import ChildLife
from zkherd.run.cycle import FENCE_WHY, Cycle
from zkherd.run.drain import LOCK, REGISTER, DrainFlags
from zkherd.run.health import HEALTHY, UNHEALTHY, Health
from zkherd.run.holding import HELD, Holding
from zkherd.run.states import Machine, child_up
from zkherd.run.states import State as S
from zkherd.run.status import status_line

FORWARDED = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
STOPPING = (signal.SIGTERM, signal.SIGINT)


class Runner(Program):
    signals = STOPPING + FORWARDED

    def __init__(self, opts, log):
        self.opts, self.log = opts, log
        self.notify = Notifier(log=log)
        self.machine = Machine(log)
        self.alerts = Alerts(opts.alert, log)
        self.life = ChildLife(opts, log)
        self.health = (Health(opts.health, opts.health_delay, opts.health_interval, opts.health_timeout,
                              opts.health_rise, opts.health_fall, command_env(), log) if opts.health else None)
        self.loop = self.holding = self.rollout = None
        self.cycle = None  # the child's cycle (run/cycle.py), once connected
        self.drain = None  # the drain flags it watches (run/drain.py), once connected
        self.session_id = None

    def start(self, loop):
        self.loop, self.session_id = loop, loop.session.session_id
        self.life.open(loop)
        if self.opts.lock:
            loop.fence  # noqa: B018  # its thread keeps the session's proof through the leader fresh from now
        self.holding = Holding(self.opts, loop, self.log, self.alerts)
        self.drain = DrainFlags(self.opts, loop.wakeup, self.log)
        if self.opts.mirror or self.opts.mirror_dir or self.opts.templates:
            from zkherd.run.rollout import Rollout  # only runners that mirror files pay for its imports

            self.rollout = Rollout(self.opts, loop, self.log, self.alerts)
            self.machine.to(S.WAITING_CONFIG, "connected; the mirrored files come first")
        else:
            self.machine.to(S.QUEUED, "connected")
        self.cycle = Cycle(self)

    # -- events ----------------------------------------------------------------------------------

    def on_event(self, kind, value):
        if kind == "signal":
            self.on_signal(value)
        elif kind == "state":
            self.on_state(value)
        elif kind == "lock":
            self.holding.dirty = True
        elif kind == "drain":
            pass  # the flag's watch marked it to be read on this turn
        elif kind == "fence":  # the fence thread acted; its deadline is on the boot clock
            self.cycle.fenced(time.monotonic() + (value[1] - clock.now()), FENCE_WHY)
        elif self.rollout is not None:
            self.rollout.on_event(kind)

    def on_signal(self, signum):
        name = signal.Signals(signum).name
        if signum in STOPPING:
            self.log.info("received %s, stopping" % name)
            self.cycle.finish(128 + signum, "received %s" % name, keep_child_code=True)
        elif self.life.running:
            self.log.info("forwarding %s to the child" % name, pid=self.life.pid)
            self.life.signal(signum)
        else:
            self.log.info("received %s with no child running, ignored" % name)

    def on_state(self, state):
        if state == KazooState.CONNECTED:
            current = self.loop.session.session_id
            self.log.info("contact with ZooKeeper is back", session="0x%x" % (current or 0),
                          same_session=current == self.session_id)
            self.session_id = current
            self.holding.reconnected()
            self.drain.reconnected()
            if self.rollout is not None:
                self.rollout.reconnected()
            if self.machine.state == S.CONNECTING:
                config_first = self.rollout is not None and not self.rollout.ready
                self.machine.to(S.WAITING_CONFIG if config_first else S.QUEUED, "a new session")
        elif state == KazooState.SUSPENDED:
            left = self.loop.fence.time_left() if self.opts.lock and self.life.running else None
            self.log.warning("lost contact with ZooKeeper, waiting for it to come back",
                             child_stops_in="%.3fs" % left if left is not None else "never")
        elif state == KazooState.LOST:
            self.log.warning("the ZooKeeper session was closed; a new one will be made" if self.loop.session.renewing
                             else "the ZooKeeper session expired; a new one will be made")
            self.life.dismiss()  # our place in the line went with the session
            self.holding.session_lost()
            self.drain.session_lost()
            if self.rollout is not None:
                self.rollout.session_lost()
            if self.opts.lock and self.life.running:  # the fence should have stopped it; if we were frozen, now
                self.cycle.fenced(time.monotonic(), "the session expired while the child held the lock")
            elif not self.life.present and self.machine.state not in (S.STOPPING, S.EXITING):
                self.machine.to(S.CONNECTING, "the session expired")

    # -- the turn --------------------------------------------------------------------------------

    def turn(self, loop):
        self.alerts.poll()
        due = [self.cycle.reap(), self.life.tick()]
        if self.machine.state != S.EXITING:
            if loop.connected and loop.session.may_talk():
                due.append(self.zookeeper_turn(loop))
            due += [self.poll_health(), self.cycle.check_wait_timeout()]  # health after: a new child's first check
        if self.machine.state != S.QUEUED or self.cycle.exit_with is not None:
            self.life.dismiss()  # a prespawned launcher waits only while the runner waits for the lock
        if self.machine.state == S.EXITING:
            self.exit_code = self.cycle.exit_with
            self.record_lock()  # the release on the way out: the last metrics file says so
            return None
        self.settle()
        self.record_lock()
        if self.notify.enabled and self.cycle.exit_with is None:
            self.notify.set_status(*status_line(self))
        pending = [d for d in due if d is not None]
        return max(0.0, min(pending)) if pending else None

    def record_lock(self):
        if self.holding.lock is not None:
            telemetry.get().lock(*self.holding.report())

    def zookeeper_turn(self, loop):
        due = None
        if self.rollout is not None:
            self.rollout.record_failure(loop)
        if self.rollout is not None and (self.machine.state == S.DRAINED or self.standing_by()):
            # a host whose child is not to run (drained, or the lock went elsewhere) never holds up
            # the farm's rollout: no verdict on a version can come from it
            self.rollout.step_aside(loop, "drained" if self.machine.state == S.DRAINED else "the lock went elsewhere")
        if self.rollout is not None and self.cycle.exit_with is None:  # exiting: no new render may hold the loop
            due, action = self.rollout.poll(loop, child_up(self.machine.state) and self.life.running,
                                            self.drain.lock_drained())
            self.act(action)
        self.drain.look(loop)
        telemetry.get().drained([kind for kind, drained in ((LOCK, self.drain.lock_drained()),
                                                            (REGISTER, self.drain.registration_drained()))
                                 if drained and kind in self.drain.paths])
        if self.cycle.exit_with is None:
            self.drained_turn(loop)
        if self.machine.state == S.QUEUED and self.cycle.exit_with is None:
            due = _sooner(due, self.queued(loop))
        elif child_up(self.machine.state) and not self.holding.still_ours(loop):
            self.cycle.stop(after.REQUEUE, "lock lost: one of our lock nodes is gone", S.STOPPING)
        if child_up(self.machine.state) and self.life.running:
            self.holding.keep_registration(loop, not self.drain.registration_drained() and (
                self.opts.register_when == "started" or self.health is not None and self.health.status == HEALTHY))
        elif self.machine.state != S.RESTARTING:
            self.holding.tidy(loop)
        self.answer_drains(loop)
        return due

    def standing_by(self):
        """Queued, and our last look at the lock's line found another holder ahead (we lost the
        lock, or never had it): no child of ours runs or is about to. A restart keeps the lock; a
        look or release whose answer was lost, or a new session, is no proof (holding.behind)."""
        return self.machine.state == S.QUEUED and self.holding.behind

    def drained_turn(self, loop):
        """Drained (`zkherd drain`, --standby-only): a child under the lock stops and the lock is
        released once it is gone (cycle.py), a waiter leaves the line; undrained: queue again."""
        state = self.machine.state
        if not self.drain.lock_drained():
            if state == S.DRAINED:
                self.drain.withdraw(loop, LOCK)
                self.holding.dirty = True
                self.machine.to(S.QUEUED, "undrained")
            return
        if self.life.present:
            if state not in (S.STOPPING, S.FENCED):  # those queue again first, and come back here
                self.cycle.stop(after.DRAIN, self.drain.why() + ": stopping the child, handing the lock over",
                                S.STOPPING)
        elif state in (S.QUEUED, S.PAUSED):
            self.life.dismiss()
            self.holding.release(loop)  # leave the line (nothing if not in it)
            self.machine.to(S.DRAINED, self.drain.why() + ": out of the line" + (
                "" if self.drain.why().startswith("--") else " until undrained"))
        elif state == S.DRAINED and self.holding.lock is not None and self.holding.lock.engaged:
            self.holding.release(loop)  # an earlier release got no answer

    def answer_drains(self, loop):
        """Tell `zkherd drain` that we hold nothing at a drained path (and take that back once undrained)."""
        lock, registration = self.holding.lock, self.holding.registration
        if lock is not None:
            if self.machine.state == S.DRAINED and not lock.engaged:
                self.drain.answer(loop, LOCK)
            self.drain.withdraw(loop, LOCK)
        if registration is not None:
            if registration.node is None and not registration.doubtful:
                self.drain.answer(loop, REGISTER)
            self.drain.withdraw(loop, REGISTER)

    def queued(self, loop):
        if self.rollout is not None and not self.rollout.ready:
            self.machine.to(S.WAITING_CONFIG, "the mirrored files are not in place")
            return None
        held, due = self.holding.take(loop)
        if held == HELD and self.opts.lock and self.drain.recheck_lock(loop):
            return 0.0  # drained between our last look and our place in the line: no child (next turn leaves)
        if held == HELD:
            due = _sooner(due, self.cycle.start(loop))
        elif self.opts.no_wait and self.holding.lock.place is not None:
            self.log.warning("lock is held elsewhere and --no-wait was given", lock=self.opts.lock)
            self.cycle.finish(exits.TEMPFAIL, "the lock is held elsewhere")
        elif self.holding.lock.place is not None:  # in the line: the handover only has to exec the command
            due = _sooner(due, self.life.prespawn())
        return due

    def act(self, action):
        """Carry out what the rollout asked for."""
        state = self.machine.state
        if action == wants.START and (state == S.WAITING_CONFIG or child_up(state) and not self.life.present):
            self.holding.dirty = True
            self.machine.to(S.QUEUED, "the mirrored files are in place")
        elif action == wants.RESTART and child_up(state):
            self.cycle.stop(after.RESTART, "the configuration changed", S.RESTARTING)
        elif action == wants.RELOAD and self.life.running:
            self.log.info("configuration changed, signalling the child", signal=self.opts.reload_signal.name)
            self.life.signal(self.opts.reload_signal)

    def settle(self):
        """Name the state of a child that is meant to run, from what the parts say."""
        if not child_up(self.machine.state) or not self.life.running:
            return
        if self.rollout is not None and self.rollout.phase == wants.PAUSED:
            self.machine.to(S.PAUSED, "a failed version: waiting for a newer one")
        elif self.rollout is not None and self.rollout.busy:
            self.machine.to(S.CHECKING, "new files")
        elif self.health is not None and not self.cycle.healthy_once:
            self.machine.to(S.STARTING, "not healthy yet")
        else:
            self.machine.to(S.RUNNING, "healthy" if self.health is not None else "started")

    # -- health, deadlines, errors ---------------------------------------------------------------

    def poll_health(self):
        if self.health is None or not self.life.running:
            return None
        left, changed = self.health.poll()
        applying = self.rollout is not None and self.rollout.phase == wants.APPLYING
        if changed == HEALTHY:
            self.cycle.healthy_once = True
            if self.rollout is not None:
                self.rollout.healthy()
        elif changed == UNHEALTHY and not self.health.in_delay and not applying:  # a failed version has its own
            self.alerts.fire("health", "the child failed its health checks")
        if applying and self.machine.state != S.RESTARTING:
            late, action = self.rollout.health_deadline(self.health)
            if action == wants.RESTART:
                self.cycle.stop(after.RESTART, "rolling back to the last good configuration", S.RESTARTING)
            left = _sooner(left, late)
        return left

    def on_error(self, loop, error):
        self.log.error(error.message)
        if error.kind in exits.FATAL_KINDS:  # denied access, bad usage: will not get better by trying again
            self.cycle.finish(exits.for_error(error), error.message)
            return 0.0
        self.holding.dirty = True
        if self.rollout is not None:
            self.rollout.sync.dirty = True
        return 1.0

    def close(self, loop):
        if self.rollout is not None:
            self.rollout.close()
        if self.health is not None:
            self.health.stop()
        self.life.close()
        self.notify.close()


def _sooner(a, b):
    return b if a is None else a if b is None else min(a, b)


def run(opts, settings, log):
    return Loop(settings, log).run(Runner(opts, log))
