"""The wrapped command: started contained (run/containment.py) in its own session and process
group, tied to the runner's life, stopped as a whole tree - the stop signal to every process of it,
SIGKILL to all of them after the stop timeout - and reaped by the main loop.

The child is "gone" only when its main process is reaped *and* nothing it started is left: a lock
is released only then (promise 1), so a daemon that outlives its wrapper script never runs beside
the next holder's. When the main process ends, what is left of its tree is killed at once; a new
child starts only once the tree of the one before is gone (a killed process may take a while to
exit - freeing much memory, say - and holds its files and locks until then).

It is started anew (posix_spawn, core/ownprocs.py), or, after a wait for the lock, through the
launcher prespawned meanwhile (run/launcher.py): the handover then only execs the command.
"""

from __future__ import annotations

import os
import signal
import time

from zkherd.core import ownprocs
from zkherd.run.launcher import Launcher


def which(name, path=None):
    """The executable *name* as found in *path* (PATH's syntax; a name with a slash as it is), or
    None. (shutil.which, without shutil's import of three compression modules.)"""
    folders = (path or os.defpath).split(os.pathsep)
    candidates = [name] if "/" in name else [os.path.join(folder or ".", name) for folder in folders]
    return next((c for c in candidates if os.access(c, os.X_OK) and not os.path.isdir(c)), None)


# setpriv (util-linux) sets the parent-death signal and then execs the command, so the child dies
# with the runner even when the runner is SIGKILLed, without running Python between fork and exec.
# Without setpriv, prctl() is called between fork and exec instead (resolved here, beforehand).
SETPRIV = which("setpriv", os.environ.get("PATH"))
SETPRIV = os.path.abspath(SETPRIV) if SETPRIV else None
PDEATHSIG = [SETPRIV, "--pdeathsig", "KILL", "--"] if SETPRIV else []
_PR_SET_PDEATHSIG = 1
LEFTOVERS_TIMEOUT = 5.0  # how long a new child waits for the tree of the one before to be gone


def _die_with_parent():
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec():
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return preexec


def exit_code(status):
    """A waitpid status -> the runner's exit code: the child's code, or 128+N when killed by N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class ChildError(Exception):
    pass


class Child:
    def __init__(self, argv, env, log, containment, stop_signal=signal.SIGTERM):
        self.argv = argv
        self.env = env
        self.log = log
        self.containment = containment
        self.stop_signal = stop_signal
        self.proc = None
        self.started_at = None
        self.stop_deadline = None  # when SIGKILL follows the stop signal
        self.returncode = None

    @property
    def running(self):
        """The main process has not been reaped yet."""
        return self.proc is not None and self.returncode is None

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def findable(self):
        return which(self.argv[0], self.env.get("PATH", os.defpath)) is not None

    def prespawn(self):
        """A launcher for this command (run/launcher.py), started now, run by start() later; None
        without setpriv (the launcher is spawned without Python between fork and exec)."""
        return Launcher(self.argv, self.env, self.containment, PDEATHSIG) if SETPRIV else None

    def start(self, launcher=None):
        """Start the command: through *launcher* (prespawned, alive, and nothing else in the tree) if
        given, else anew. The launcher is used up either way."""
        if not self.findable():
            if launcher is not None:
                launcher.dismiss()
            raise ChildError("cannot start %s: command not found or not executable" % self.argv[0])
        if launcher is not None and not (launcher.alive() and self.containment.only(launcher.pid)):
            launcher.dismiss()
            launcher = None
        self.proc = launcher.go(self.env) if launcher is not None else None
        prespawned = self.proc is not None
        if not prespawned:
            self._spawn()
        self.started_at = time.monotonic()
        self.returncode = None
        self.stop_deadline = None
        self.log.info("started child", pid=self.proc.pid, command=" ".join(self.argv),
                      prespawned=prespawned)
        return self.proc.pid

    def _spawn(self):
        if not self.containment.empty() and not self.containment.sweep(LEFTOVERS_TIMEOUT):
            raise ChildError("cannot start %s: processes of the command before are still alive %.0f s after "
                             "SIGKILL" % (self.argv[0], LEFTOVERS_TIMEOUT))
        argv, env = self.containment.wrap(PDEATHSIG + list(self.argv)), self.containment.environ(self.env)
        try:
            if SETPRIV:  # argv[0] is setpriv or /bin/sh: a path
                self.proc = ownprocs.spawn(argv, env)
            else:
                self.proc = ownprocs.popen(argv, env=env, start_new_session=True, close_fds=True,
                                           preexec_fn=_die_with_parent())
        except OSError as exc:
            raise ChildError("cannot start %s: %s" % (self.argv[0], exc.strerror)) from None
        self.containment.started(self.proc.pid)

    def signal(self, signum):
        """Forward *signum* (HUP, USR1, USR2) to the child's process group, as a shell would."""
        if self.running:
            try:
                os.killpg(self.proc.pid, signum)
            except ProcessLookupError:
                pass

    # The fence calls these two from its own thread: they only send signals.
    def signal_stop(self):
        self.containment.signal(self.stop_signal)

    def kill(self):
        self.containment.kill()

    def stop(self, timeout, reason, deadline=None, send=True):
        """Begin stopping: the stop signal to the whole tree now, SIGKILL after *timeout* seconds or
        at *deadline* (monotonic) if that is sooner (see tick()). A later call only brings SIGKILL closer.
        send=False: the stop signal was sent already (by the fence); only SIGKILL is scheduled."""
        if not self.running:
            return
        kill_at = time.monotonic() + timeout
        if deadline is not None:
            kill_at = min(kill_at, deadline)
        if self.stop_deadline is None:
            self.log.info("stopping child", pid=self.proc.pid, reason=reason,
                          signal=signal.Signals(self.stop_signal).name, kill_in="%.3fs" % (kill_at - time.monotonic()))
            self.stop_deadline = kill_at
            if send:
                self.signal_stop()
        elif kill_at < self.stop_deadline:
            self.stop_deadline = kill_at

    def tick(self):
        """Escalate a stop past its deadline; returns seconds until the next thing to do."""
        if self.running and self.stop_deadline is not None:
            left = self.stop_deadline - time.monotonic()
            if left <= 0:
                self.log.warning("child did not stop in time, sending SIGKILL", pid=self.proc.pid)
                self.kill()
                self.stop_deadline = float("inf")
                return None
            return left
        return None

    def exited(self):
        """The main process has exited (not reaped yet: its pid stays reserved until reap())."""
        if not self.running:
            return False
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def reap(self):
        """Collect the exit status if the main process ended; then what is left of the tree is
        killed (a daemonized grandchild goes with it). Returns the exit code or None."""
        self.containment.reap_orphans()
        if not self.running:
            return None
        try:
            pid, status = os.waitpid(self.proc.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.proc.pid, 0
        if pid == 0:
            return None
        self.returncode = exit_code(status)
        self.proc.returncode = self.returncode  # keep Popen from reaping again
        self.containment.reaped(self.proc.pid)
        self.containment.kill()  # what it leaves behind goes with it
        self.log.info("child exited", pid=self.proc.pid, code=self.returncode,
                      ran_for="%.3fs" % (time.monotonic() - self.started_at))
        return self.returncode

    def gone(self):
        """Reaped, and nothing it started is left (the lock may be released)."""
        if self.running:
            return False
        self.containment.reap_orphans()
        return self.containment.empty()
