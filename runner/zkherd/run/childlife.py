"""The runner's child from its start to its end: started contained (run/containment.py, run/child.py),
fenced while it runs under the lock (core/fence.py), stopped for a reason that says what comes after -
a restart, a new wait for the lock, a pause, the runner's exit - and gone only when its whole tree is.
The runner's state machine decides; this keeps the child's side of it."""

from __future__ import annotations

import time

from zkherd.core.shellcmd import command_env
from zkherd.run import launcher
from zkherd.run.child import Child
from zkherd.run.containment import CGROUP, Containment

LAUNCHERS_EVERY = 1.0  # a launcher that ended is replaced after this: one that cannot live is not spun
LAUNCHER_TRIES = 3  # launchers that ended unused, or could not start, before the runner does without
EXIT, REQUEUE, RESTART, PAUSE, DRAIN = "exit", "requeue", "restart", "pause", "drain"  # once the child is gone


class ChildLife:
    def __init__(self, opts, log):
        self.opts = opts
        self.log = log
        self.loop = self.containment = self.child = None
        self.then = None  # what comes once the tree is gone; EXIT, once set, stays
        self.fence_acted = False  # the fence signalled the child now reaped (its event may come later)
        self.launcher = None  # prespawned while queued for the lock (run/launcher.py)
        self.next_launcher = 0.0  # monotonic: not before
        self.launcher_failures = 0  # in a row: launchers that ended unused, or could not be started

    def open(self, loop):
        self.loop = loop
        self.containment = Containment(self.log, "zkherd-child")

    @property
    def present(self):
        """A child was started and its tree is not known to be gone yet."""
        return self.child is not None

    @property
    def running(self):
        """Its main process has not been reaped yet."""
        return self.child is not None and self.child.running

    @property
    def pid(self):
        return self.child.pid if self.child is not None else None

    def start(self, env, fenced):
        """Start the child (ChildError if it cannot be); *fenced*: under the lock, so the fence guards it."""
        child = Child(self.opts.command, env, self.log, self.containment, self.opts.stop_signal)
        ready, self.launcher = self.launcher, None
        child.start(ready)
        if ready is not None and child.proc is ready.proc:
            self.launcher_failures = 0
        self.child, self.then, self.fence_acted = child, None, False
        if fenced:
            self.loop.fence.arm(child, self.opts.stop_timeout)
        return child.pid

    def prespawn(self):
        """While queued for the lock: keep a launcher ready, so that the handover only has to exec the
        command (run/launcher.py); one that ended is replaced. Returns seconds until a new one may be
        started, or None."""
        if self.child is not None:
            return None
        if self.launcher is not None:
            if self.launcher.alive():
                return None
            self.log.warning("the prespawned launcher ended, starting another", pid=self.launcher.pid,
                             code=self.launcher.proc.returncode)
            self.launcher = None
            self.launcher_failures += 1
            self.next_launcher = time.monotonic() + LAUNCHERS_EVERY
        if self.launcher_failures >= LAUNCHER_TRIES:
            if self.launcher_failures == LAUNCHER_TRIES:  # said once: the child then starts anew each time
                self.launcher_failures += 1
                self.log.warning("the prespawned launcher keeps ending; the child starts without it")
            return None
        left = self.next_launcher - time.monotonic()
        if left > 0:
            return left
        # Only in cgroup mode, where every start goes through /bin/sh anyway (the environment the
        # command sees is the same either way), and only for a command a line can carry.
        if self.containment.mode != CGROUP or not launcher.usable(self.opts.command):
            return None
        child = Child(self.opts.command, command_env(), self.log, self.containment, self.opts.stop_signal)
        if not child.findable():
            return None  # the start says why
        try:
            self.launcher = child.prespawn()
        except OSError as exc:
            self.log.warning("cannot prespawn the launcher; the child starts without it", error=exc.strerror)
            self.launcher_failures += 1
            self.next_launcher = time.monotonic() + LAUNCHERS_EVERY
            return LAUNCHERS_EVERY
        if self.launcher is not None:
            self.log.debug("launcher prespawned", pid=self.launcher.pid)
        return None

    def dismiss(self):
        """No longer waiting for the lock: the launcher goes, without having run anything."""
        if self.launcher is not None:
            self.launcher.dismiss()
            self.log.debug("launcher dismissed", pid=self.launcher.pid)
            self.launcher = None

    def stop(self, then, why, timeout=None, deadline=None):
        """Begin stopping the child; once its tree is gone, *then* comes (EXIT is never replaced)."""
        if self.child is None:
            return
        self.then = EXIT if EXIT in (self.then, then) else then
        if self.child.running:
            self.child.stop(self.opts.stop_timeout if timeout is None else timeout, why, deadline=deadline)

    def tick(self):
        return self.child.tick() if self.child is not None else None

    def signal(self, signum):
        if self.running:
            self.child.signal(signum)

    def reap(self):
        """The exit code if the main process just ended (reaped now), else None. The fence is
        disarmed before the reap: it never signals a pid that may be reused."""
        if not self.running or not self.child.exited():
            return None
        self.loop.fence.disarm()
        # read after disarm: nothing more can fire. The fence signals first and posts its event
        # after; a child that dies of the signal at once can be reaped before the event is read.
        self.fence_acted = bool(self.loop.fence.fired)
        return self.child.reap()

    def gone(self):
        """(code, then) once the reaped child's whole tree is gone - the child is forgotten then -
        else None."""
        child = self.child
        if child is None or child.running or not child.gone():
            return None
        self.child, then, self.then = None, self.then, None
        return child.returncode, then

    def close(self):
        self.dismiss()
        if self.containment is not None:
            self.containment.sweep(5.0)  # the loop ended with the child alive (an internal error): no orphan
            self.containment.close()
