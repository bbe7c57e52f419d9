"""`zkherd run`: the main loop that runs a command under a lock, registered for discovery.

Everything happens in the main thread: kazoo threads and signal handlers only post events (see
wakeup.py); the loop reacts to them, reaps the child, and sleeps until the next deadline. The
child is started from the main thread, which its parent-death signal is tied to.

Fencing rule (promise 1): while we are cut off from ZooKeeper, the server may expire our session
no earlier than last_heard + session_timeout (session.py). The child is sent the stop signal at
that moment minus --stop-timeout minus a safety margin, and SIGKILL at that moment minus the
margin, so it is dead before anyone else can be given the lock. A disconnect that ends before then,
with the same session, leaves the child alone.

Under systemd (Type=notify, see sdnotify.py) the runner reports READY=1 once it is connected and
has either started the child or queued for the lock (a standby is a started service: `systemctl
start` must not wait for the lock), or waits for mirrored znodes that do not exist yet; STATUS=
follows what it does, and STOPPING=1 comes when it has decided to exit.
"""

from __future__ import annotations

import signal
import time

from kazoo.exceptions import ConnectionLoss, SessionExpiredError
from kazoo.protocol.states import KazooState

from zkherd.common.connection import ZkError
from zkherd.common.errors import AUTH, CONNECT, USAGE
from zkherd.core import clock
from zkherd.core.fence import margin as fence_margin
from zkherd.core.fence import stop_time
from zkherd.core.sdnotify import Notifier
from zkherd.core.session import Session, session_id
from zkherd.core.shellcmd import command_env
from zkherd.core.wakeup import Wakeup
from zkherd.recipes.lock import Lock, LockLost
from zkherd.recipes.registration import Registration
from zkherd.run.child import Child, ChildError
from zkherd.run.containment import Containment
from zkherd.run.rollout import Rollout

EX_USAGE, EX_UNAVAILABLE, EX_TEMPFAIL, EX_NOPERM = 64, 69, 75, 77
FORWARDED = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
STOPPING = (signal.SIGTERM, signal.SIGINT)


class Runner:
    def __init__(self, opts, settings, log):
        self.opts = opts
        self.log = log
        self.wakeup = Wakeup()
        self.session = Session(settings, self.wakeup, log)
        self.child = None
        self.lock = None
        self.registration = None
        self.connected = False
        self.dirty = True  # the lock needs looking at
        self.retry_at = 0.0
        self.exit_code = None  # set when we have decided to exit
        self.keep_child_code = False  # exit with the child's code once it is reaped
        self.stop_reason = None  # why the child is being stopped (None: it is not)
        self.wait_deadline = None
        self.session_id = None
        self.op_timeout = None
        self.rollout = None  # --mirror, --health, --rolling-lock, --alert
        self.lock_waiting = False  # queued for the lock, not holding it
        self.notify = Notifier(log=log)
        self.containment = None

    # -- setup -------------------------------------------------------------------------------

    def main(self):
        try:
            self.session.connect()  # TERM/INT still have their default effect here: no child yet
        except ZkError as exc:
            self.log.error(exc.message)
            return EX_UNAVAILABLE if exc.kind == CONNECT else EX_USAGE
        self.wakeup.install_signals(STOPPING + FORWARDED)
        self.containment = Containment(self.log, "zkherd-child")
        self.connected = True
        self.session_id = session_id(self.session.client)
        opts = self.opts
        self.op_timeout = max(0.2, min(2.0, self.session.timeout / 3.0))
        if opts.lock:
            self.lock = Lock(opts.lock, opts.slots, opts.id, self.wakeup, self.log, self.op_timeout,
                             on_foreign=self.foreign_lock_nodes)
            if opts.wait_timeout is not None:
                self.wait_deadline = time.monotonic() + opts.wait_timeout
        if opts.register:
            self.registration = Registration(opts.register, opts.data, self.log)
        if opts.mirror or opts.mirror_dir or opts.health or opts.rolling_lock or opts.alert:
            self.rollout = Rollout(self)
        try:
            return self.loop()
        finally:
            if self.rollout is not None:
                self.rollout.close()
            self.session.close()
            self.wakeup.close()
            self.notify.close()
            if self.containment is not None:
                self.containment.sweep(5.0)
                self.containment.close()

    # -- the loop ----------------------------------------------------------------------------

    def loop(self):
        while True:
            while self.wakeup.signals:
                self.on_signal(self.wakeup.signals.popleft())
            for kind, value in self.wakeup.events():
                if kind == "state":
                    self.on_state(value)
                elif kind == "lock":
                    self.log.debug("lock: a watched node changed", node=value)
                    self.dirty = True
                elif self.rollout is not None:
                    self.rollout.on_event(kind)
            if self.child is not None:
                code = self.child.reap()
                if code is not None:
                    self.on_child_exit(code)
            if self.exit_code is not None and not self.child_running:
                self.cleanup()
                return self.exit_code
            timeouts = [self.child.tick() if self.child else None, self.fence()]
            if self.rollout is not None and self.exit_code is None:  # first: it may make the lock dirty
                timeouts.append(self.rollout.poll(self.session.client, self.connected))
            if self.connected and self.exit_code is None and self.stop_reason is None:
                timeouts.append(self.advance())
            if self.exit_code is None:
                timeouts.append(self.check_wait_timeout())
            if self.exit_code is not None and not self.child_running:
                continue  # decided to exit just now: clean up without sleeping first
            self.report()
            pending = [t for t in timeouts if t is not None]
            self.wakeup.wait(max(0.0, min(pending)) if pending else None)

    @property
    def child_running(self):
        return self.child is not None and self.child.running

    def advance(self):
        """Connected and not stopping: something changed (self.dirty), so look at the lock, start
        the child when it may run, register again after a new session. Returns seconds until a
        retry, or None."""
        now = time.monotonic()
        if not self.dirty or now < self.retry_at:
            return self.retry_at - now if self.dirty else None
        self.dirty = False
        client = self.session.client
        try:
            if self.lock is not None and self.child_running:
                if not self.lock.still_held(client):
                    self.lose_lock("the lock node was deleted")
                    return None
            elif self.lock is not None and not self.step_lock(client):
                if self.opts.no_wait:
                    self.log.warning("lock is held elsewhere and --no-wait was given", lock=self.opts.lock)
                    self.finish(EX_TEMPFAIL)
                return None
            if not self.child_running:
                if self.rollout is None or self.rollout.may_start():
                    self.start_child(client)
            elif self.registration is not None and self.registration.node is None and self.register_now:
                self.registration.ensure(client, self.op_timeout)  # a new session: register again
        except LockLost as exc:
            self.log.warning("lost our place in the lock", lock=self.opts.lock, reason=str(exc))
            self.dirty = True
            if self.child_running:
                self.lose_lock(str(exc))
            else:  # leave what is left of our place and queue again soon, without waiting for an event
                delay = 0.1 if self.lock.leave(client) else 0.2  # not left: the next step finds it lost again
                self.retry_at = time.monotonic() + delay
                return delay
        except ZkError as exc:
            self.log.error(exc.message)
            if exc.kind in (AUTH, USAGE):  # will not get better by trying again
                self.finish(EX_NOPERM if exc.kind == AUTH else EX_USAGE)
                self.stop_child(exc.message)
                return None
            self.dirty = True
            self.retry_at = time.monotonic() + 1.0
            return 1.0
        except (ConnectionLoss, SessionExpiredError, client.handler.timeout_exception) as exc:
            self.log.debug("ZooKeeper request did not complete, trying again", error=type(exc).__name__)
            self.dirty = True
            self.retry_at = time.monotonic() + 0.2
            return 0.2
        return None

    def foreign_lock_nodes(self, message):
        if self.rollout is not None:  # it runs the --alert command
            self.rollout.alert("foreign-lock-node", message)

    def step_lock(self, client):
        held = self.lock.step(client)
        self.lock_waiting = not held
        return held

    def report(self):
        """Tell the service manager (if any) what we do: STATUS= on a change, READY=1 once settled."""
        if not self.notify.enabled or self.exit_code is not None:
            return
        lock = " (lock %s)" % self.opts.lock if self.lock is not None else ""
        sync = self.rollout.sync if self.rollout is not None else None
        if self.child_running:
            if self.stop_reason is not None:
                status = "stopping pid %d: %s" % (self.child.proc.pid, self.stop_reason)
            else:
                status = "running pid %d%s" % (self.child.proc.pid, lock)
        elif self.lock_waiting and self.lock.place is not None:
            status = "waiting for lock %s" % self.opts.lock
        elif sync is not None and sync.version is None and sync.waiting:
            status = sync.waiting
        elif not self.connected:
            self.notify.set_status("no contact with ZooKeeper, waiting for it to come back")
            return
        else:
            return  # on the way to one of those: nothing to say yet
        if not self.connected:
            status += ", no contact with ZooKeeper"
        self.notify.set_status(status, ready=True)

    def start_child(self, client, restart=False):
        env = command_env()
        if self.lock is not None:
            env["ZKHERD_LOCK_PATH"] = self.lock.node
            env["ZKHERD_FENCING_TOKEN"] = str(self.lock.token)
            if not restart:
                self.log.info("lock acquired", lock=self.opts.lock, node=self.lock.node,
                              fencing_token=self.lock.token)
        if self.registration is not None and self.opts.register_when == "started":
            env["ZKHERD_REGISTERED_PATH"] = self.registration.ensure(client, self.op_timeout)
        self.child = Child(self.opts.command, env, self.log, self.containment, self.opts.stop_signal)
        self.wait_deadline = None  # --wait-timeout is about the first wait only
        try:
            self.child.start()
        except ChildError as exc:
            self.log.error(str(exc))
            self.finish(127)
            return
        if self.rollout is not None:
            self.rollout.child_started()
            self.wakeup.poke()  # one more turn of the loop, to schedule the health checks

    @property
    def register_now(self):
        """Registered while running, or with --register-when healthy while healthy."""
        if self.opts.register_when == "started":
            return True
        health = self.rollout.health if self.rollout else None
        return health is not None and health.status == "healthy"

    def restart_child(self):
        """Start the child again with new files, keeping the lock and the registration."""
        if self.connected:
            self.start_child(self.session.client, restart=True)
        else:
            self.dirty = True

    def lose_lock(self, reason):
        self.stop_child("lock lost: " + reason)

    def stop_child(self, reason, deadline=None):
        if self.child_running:
            self.stop_reason = reason
            self.child.stop(self.opts.stop_timeout, reason, deadline=deadline)

    def fence(self):
        """Stop the child in time if it runs under a lock and the server has not heard from us for
        too long - whatever kazoo thinks of the connection (a partition can go unnoticed by it for
        a while). Returns seconds until the fence must be looked at again."""
        if self.lock is None or not self.child_running:
            return None
        margin = fence_margin(self.session.timeout)
        kill_at = self.session.expires_no_earlier_than() - margin
        stop_at = kill_at - self.fence_stop_timeout
        now = clock.now()
        kill_at = time.monotonic() + (kill_at - now)  # the child's deadlines are monotonic
        stop_at, now = time.monotonic() + (stop_at - now), time.monotonic()
        if now >= stop_at:
            if self.stop_reason is None:
                self.log.warning("no contact with ZooKeeper for too long; stopping the child before the session "
                                 "can expire", lock=self.opts.lock, kill_in="%.3fs" % max(0.0, kill_at - now))
            self.stop_child("fencing: the session may expire", deadline=kill_at)
            return None
        return stop_at - now

    def check_wait_timeout(self):
        if self.wait_deadline is None or self.child_running:
            return None
        left = self.wait_deadline - time.monotonic()
        if left <= 0:
            self.log.warning("lock not obtained within --wait-timeout", lock=self.opts.lock,
                             wait_timeout=self.opts.wait_timeout)
            self.finish(EX_TEMPFAIL)
            return 0.0
        return left

    # -- events ------------------------------------------------------------------------------

    def on_signal(self, signum):
        name = signal.Signals(signum).name
        if signum in STOPPING:
            self.log.info("received %s, stopping" % name)
            if self.child_running:
                self.stop_child("received %s" % name)
            self.finish(128 + signum, keep_child_code=True)
        elif self.child_running:
            self.log.info("forwarding %s to the child" % name, pid=self.child.proc.pid)
            self.child.signal(signum)
        else:
            self.log.info("received %s with no child running, ignored" % name)

    def on_state(self, state):
        if state == KazooState.CONNECTED:
            self.connected = True
            self.dirty = True
            current = session_id(self.session.client) or self.session_id  # None if gone again already
            self.log.info("contact with ZooKeeper is back", session="0x%x" % (current or 0),
                          same_session=current == self.session_id)
            self.session_id = current
        elif state == KazooState.SUSPENDED:
            self.connected = False
            fenced = self.lock is not None and self.child_running
            self.log.warning("lost contact with ZooKeeper, waiting for it to come back",
                             child_stops_in=("%.3fs" % self._fence_in()) if fenced else "never")
        elif state == KazooState.LOST:
            self.connected = False
            self.log.warning("the ZooKeeper session expired; a new one will be made")
            if self.lock is not None:
                # fencing should have stopped it already; if the runner was frozen, it goes now
                self.stop_child("the session expired while the child held the lock", deadline=time.monotonic())
                self.lock.forget_session()
            if self.registration is not None:
                self.registration.forget_session()  # made again on the new session (see advance)
            if self.rollout is not None:
                self.rollout.session_lost()
            self.dirty = True

    def _fence_in(self):
        margin = fence_margin(self.session.timeout)
        return self.session.expires_no_earlier_than() - margin - self.fence_stop_timeout - clock.now()

    @property
    def fence_stop_timeout(self):
        """The time a fenced child gets between the stop signal and SIGKILL: --stop-timeout, but
        never so long that the fence would fire between two of kazoo's pings (every timeout/3)."""
        return stop_time(self.opts.stop_timeout, self.session.timeout)

    def on_child_exit(self, code):
        reason, self.stop_reason = self.stop_reason, None
        if self.rollout is not None and self.exit_code is None and self.rollout.child_exited(code, reason):
            return  # a restart for new files, or a failed version: the runner goes on
        client = self.session.client
        if not self.containment.sweep(5.0):  # interim: the state machine waits for it without blocking
            self.log.warning("processes of the child are still alive after SIGKILL")
        if self.connected:
            self.release(client)
        if self.exit_code is not None:
            if self.keep_child_code:
                self.exit_code = code
            return
        if reason is None:  # the command ended on its own: so does the runner, with its code
            self.finish(code)
        else:
            self.log.info("child stopped, waiting for the lock again", reason=reason)
            self.dirty = True

    def release(self, client):
        try:
            if self.registration is not None:
                self.registration.remove(client, self.op_timeout)
            if self.lock is not None:
                self.lock.release(client)
        except Exception as exc:  # the nodes are ephemeral: they go with the session anyway
            self.log.warning("could not remove our nodes now; they go when the session ends", error=str(exc))

    def finish(self, code, keep_child_code=False):
        if self.exit_code is None:
            self.exit_code = code
            self.keep_child_code = keep_child_code
            self.notify.stopping()

    def cleanup(self):
        if self.connected:
            self.release(self.session.client)


def run(opts, settings, log):
    return Runner(opts, settings, log).main()
