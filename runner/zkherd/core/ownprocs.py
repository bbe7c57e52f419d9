"""The processes this runner started on purpose - its child, the containment guard, health checks,
check commands, alerts, on-change commands - in one process-wide registry, and how they are started.

Under a child subreaper (run/containment.py) every other child of the runner is an orphan of the
wrapped command's tree, to be swept and reaped; these are not: their exit status belongs to whoever
started them (a failed health check reaped as an orphan would read as passed), and a stop of the
child must not kill them. A process is registered before any sweep can see it (the sweep takes the
same lock) and forgotten once its owner has reaped it (its pid may then be reused by an orphan).

They are started with posix_spawn (spawn()), not subprocess: it places any fd in the child (the
launcher's pipe is fd 9, run/launcher.py), and the runner does without subprocess's memory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

_lock = threading.Lock()
_pids: set[int] = set()


class Spawned:
    """A process started by spawn(): what the runner uses of a Popen (pid, returncode, poll, wait)."""

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None  # as Popen's: the exit code, or -N if killed by signal N

    def poll(self):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = self.pid, 0
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout=None):
        """The exit code; None if it still runs after *timeout* seconds."""
        if timeout is None:
            while self.returncode is None:
                with contextlib.suppress(ChildProcessError):
                    _pid, status = os.waitpid(self.pid, 0)
                    self.returncode = os.waitstatus_to_exitcode(status)
                    continue
                self.returncode = 0  # reaped elsewhere
            return self.returncode
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        return self.returncode


def spawn(argv, env=None, fds=None, devnull=()):
    """Start *argv* (argv[0] a path) in a new session, registered as started on purpose, with the
    fds of *fds* ({fd here: fd in the child}; the caller keeps its own), /dev/null on those in
    *devnull*, 0, 1 and 2 as they are, and no other fd (as Popen's close_fds). OSError if it cannot."""
    fds = fds or {}
    dups = {fd: os.dup(fd) for fd, to in fds.items() if fd == to}  # dup2(9, 9) would leave it close-on-exec
    try:
        actions = [(os.POSIX_SPAWN_DUP2, dups.get(fd, fd), to) for fd, to in fds.items()]
        actions += [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in devnull]
        placed = set(fds.values()) | set(devnull)
        for name in os.listdir("/proc/self/fd"):  # what is not close-on-exec (a runner's inherited fds)
            fd = int(name)
            with contextlib.suppress(OSError):
                if fd > 2 and fd not in placed and os.get_inheritable(fd):
                    actions.append((os.POSIX_SPAWN_CLOSE, fd))
        with _lock:
            pid = os.posix_spawn(argv[0], argv, os.environ if env is None else env, file_actions=actions,
                                 setsid=True, setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))  # as Popen's restore_signals
            _pids.add(pid)
    finally:
        for fd in dups.values():
            os.close(fd)
    return Spawned(pid)


def popen(argv, **kwargs):
    """subprocess.Popen(argv, **kwargs), registered as started on purpose: only where spawn() cannot
    do (Python between fork and exec)."""
    import subprocess  # here: spawn() serves every other start

    with _lock:
        proc = subprocess.Popen(argv, **kwargs)
        _pids.add(proc.pid)
    return proc


def add(pid):
    with _lock:
        _pids.add(pid)


def forget(pid):
    """Its owner reaped it."""
    with _lock:
        _pids.discard(pid)


@contextlib.contextmanager
def frozen():
    """The registered pids, while no new process can be registered (for the length of a sweep)."""
    with _lock:
        yield frozenset(_pids)
