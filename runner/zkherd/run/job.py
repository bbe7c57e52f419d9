"""A command run to its end on the Loop (core/loop.py), contained as `zkherd run`'s child is: the
job of `zkherd cron`, the command of `zkherd barrier`.

    job = Job(argv, env, log, "zkherd-cron")
    job.start()                      # ChildError if it cannot start (exit 127)
    code, wait = job.poll()          # each turn: the exit code once all of it is gone, else when to look again
    job.stop(timeout, reason)        # stop signal to the whole tree, SIGKILL after *timeout*
    job.close()                      # on the way out, whatever happened

The job is over only when its main process is reaped *and* nothing it started is left (run/child.py
Child.gone): a daemon that a job script leaves behind is killed, and the command that runs it waits
for that before it exits (cron: before another host may run the next tick).
"""

from __future__ import annotations

import signal

from zkherd.run.child import Child, ChildError
from zkherd.run.containment import Containment

__all__ = ["Job", "ChildError"]

GONE_POLL = 0.05  # how often to look whether the rest of the tree is gone (no SIGCHLD tells us)
SWEEP_AT_EXIT = 5.0


class Job:
    def __init__(self, argv, env, log, name, stop_signal=signal.SIGTERM):
        self.log = log
        self.containment = Containment(log, name)
        self.child = Child(argv, env, log, self.containment, stop_signal)
        self.code = None  # the main process's exit code, once reaped

    def start(self):
        return self.child.start()

    @property
    def pid(self):
        return self.child.pid

    def poll(self):
        """(exit code, None) once the job and all it started are gone; else (None, seconds until
        it must be looked at again, or None to wait for SIGCHLD or another event)."""
        if self.code is None:
            self.code = self.child.reap()
        if self.code is None:
            return None, self.child.tick()  # escalates a stop past its deadline to SIGKILL
        if self.child.gone():
            return self.code, None
        return None, GONE_POLL  # reaping killed the rest of the tree: wait until the kernel is done

    def stop(self, timeout, reason, send=True):
        """The stop signal to the whole tree now (send=False: it was sent already, by the fence),
        SIGKILL after *timeout* seconds; a later call only brings SIGKILL closer."""
        self.child.stop(timeout, reason, send=send)

    def close(self):
        """Nothing of the job outlives the command: what is left is killed and swept."""
        if self.child.running:
            self.child.kill()
            self.child.reap()
        if not self.containment.sweep(SWEEP_AT_EXIT):
            self.log.warning("processes of the job are still alive after SIGKILL")
        self.containment.close()
