"""Short-lived commands the runner runs beside its child - health checks, --check-cmd, alerts - without
ever blocking the main loop: started, polled from the loop (SIGCHLD wakes it), killed when they
overrun their timeout (a hung check counts as failed). They are registered in core/ownprocs.py, so
that a child subreaper never takes them for orphans of the child."""

from __future__ import annotations

import os
import signal
import time

from zkherd.core import ownprocs


def command_env(**extra):
    """The environment of everything the runner starts: its own, without the runner's ZooKeeper
    credentials (not the commands' business) and without systemd's NOTIFY_SOCKET (readiness is the
    runner's to report: a child that also spoke there would be refused or, worse, believed), plus
    *extra*."""
    env = dict(os.environ)
    env.pop("ZKHERD_AUTH", None)
    env.pop("NOTIFY_SOCKET", None)
    env.update(extra)
    return env


class Task:
    """A shell command with a timeout; `done` is the exit code (None while it runs, -1 if it
    was killed for overrunning, 127 if it could not start)."""

    def __init__(self, name, command, env, timeout, log):
        self.name = name
        self.log = log
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        self.done = None
        self.timed_out = False
        try:
            self.proc = ownprocs.spawn(["/bin/sh", "-c", command], env, devnull=(0,))
        except OSError as exc:
            self.proc = None
            self.done = 127
            log.warning("%s could not start" % name, error=exc.strerror)

    def poll(self):
        """Reap or time out; returns seconds until the deadline while it runs, else None."""
        if self.done is not None:
            return None
        code = self.proc.poll()
        if code is not None:
            ownprocs.forget(self.proc.pid)
            self.done = 128 - code if code < 0 else code  # killed by N: 128+N, as a shell says
            return None
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.log.warning("%s timed out, killing it" % self.name, pid=self.proc.pid)
                self.kill()
                self.timed_out = True
                self.done = -1
                return None
            return left
        return None

    def kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        ownprocs.forget(self.proc.pid)

    @property
    def ok(self):
        return self.done == 0
