"""The processes this runner started on purpose - its child, the containment guard, health checks,
check commands, alerts, on-change commands - in one process-wide registry.

Under a child subreaper (run/containment.py) every other child of the runner is an orphan of the
wrapped command's tree, to be swept and reaped; these are not: their exit status belongs to whoever
started them (a failed health check reaped as an orphan would read as passed), and a stop of the
child must not kill them. A process is registered before any sweep can see it (the sweep takes the
same lock) and forgotten once its owner has reaped it (its pid may then be reused by an orphan).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading

_lock = threading.Lock()
_pids: set[int] = set()


def popen(argv, **kwargs):
    """subprocess.Popen(argv, **kwargs), registered as started on purpose."""
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
