"""Child processes that cannot outlive the test session.

Two safety nets: an atexit hook kills every child still registered, and each
child gets PR_SET_PDEATHSIG=SIGKILL so the kernel kills it even when the
parent itself is SIGKILLed (atexit never runs then).

Caveat: Linux delivers the death signal when the *thread* that forked the
child exits, so spawn long-lived children from the main thread (pytest
fixtures do) or from a thread that lives at least as long as the child.
"""

import atexit
import ctypes
import os
import signal
import subprocess
from pathlib import Path

_PR_SET_PDEATHSIG = 1
# Resolved in the parent: the code between fork and exec should do as
# little as possible.
_prctl = ctypes.CDLL(None, use_errno=True).prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

_live: set[subprocess.Popen] = set()


def _die_with(parent_pid: int):
    def preexec() -> None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died before prctl took effect.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def spawn(argv: list[str], log_path: Path, *, cwd: Path, detach: bool = False,
          env: dict | None = None) -> subprocess.Popen:
    """Start argv in its own process group with stdout+stderr appended to log_path.

    detach=True: new session, no death signal, no atexit kill (for the CLI).
    """
    with open(log_path, "ab") as log:
        common = dict(cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        if detach:
            return subprocess.Popen(argv, start_new_session=True, **common)
        proc = subprocess.Popen(argv, process_group=0, preexec_fn=_die_with(os.getpid()), **common)
    _live.add(proc)
    return proc


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def terminate(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM the process group, SIGKILL it if still alive after timeout."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill(proc)
            return
    _live.discard(proc)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the process group and reap it."""
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()
    _live.discard(proc)


def pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie (PID 1 may not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # Field 3, after the parenthesised command name, is the state.
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def pid_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


@atexit.register
def _kill_all() -> None:
    for proc in list(_live):
        kill(proc)
