"""Containment: everything the child starts is stopped with it - setsid and double-forked
descendants too - and dies at once if the runner dies, even by SIGKILL (promise 9).

Two modes, the best the runner can get (or the one --containment asks for), logged at start
as `child containment mode=cgroup|subreaper` (docs/runner.md, "Containment"):

- **cgroup**: the child runs in a cgroup v2 of its own, made below the runner's (as root outside
  systemd, or in a unit with Delegate=yes; see cgroups.py). The child enters it before it runs
  anything, so the kernel knows every descendant: a stop signals each process of the cgroup,
  `cgroup.kill` kills them all at once, and `cgroup.events` says when none is left. Nothing escapes.
- **subreaper**: the runner is a child subreaper, so orphaned descendants become its children: a
  stop signals the child's process group, its descendants and every orphan; the sweep kills what
  is left. A descendant that clears its environment and is orphaned while the runner is dead
  escapes it (see the guard); under systemd without delegation, KillMode=control-group covers that.

A guard process (a tiny `sh`, started once, in a session of its own) holds the read end of a pipe
whose write end only the runner has: when the runner dies, however it dies, the guard reads EOF and
kills the tree - in cgroup mode through `cgroup.kill`, then it removes the cgroup; in subreaper mode
the child's process group and every process whose environment carries this runner's mark
(ZKHERD_CONTAINMENT, set in the child's environment and inherited by its descendants). The guard
is the runner's own process (core/ownprocs.py), never swept; if it dies, the runner starts another.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from zkherd.core import ownprocs
from zkherd.run import cgroups, proctable

PR_SET_CHILD_SUBREAPER = 36
CGROUP, SUBREAPER, AUTO = "cgroup", "subreaper", "auto"
MARK = "ZKHERD_CONTAINMENT"

# The child enters its cgroup before it runs anything: writing 0 to cgroup.procs moves the writer.
# A cgroup the guard has removed (the runner died meanwhile) cannot be entered: the command never runs.
_ENTER_ONLY = 'echo 0 2>/dev/null >"$0" || { echo "zkherd: cannot enter the cgroup $0" >&2; exit 126; }; '
_ENTER = _ENTER_ONLY + 'exec "$@"'
# $0: the child's cgroup. Kill it until it is empty (cgroup.kill, or process by process before
# Linux 5.14), then remove it; give up after 10 s (a process stuck in the kernel).
_GUARD_CGROUP = r'''
trap "" HUP INT TERM
while read -r _; do :; done
n=0
while [ -d "$0" ]; do
  echo 1 2>/dev/null >"$0/cgroup.kill" ||
    while read -r pid; do kill -KILL "$pid" 2>/dev/null; done <"$0/cgroup.procs"
  rmdir "$0" 2>/dev/null && exit 0
  n=$((n + 1)); [ "$n" -lt 500 ] || exit 1
  sleep 0.02
done
'''
# $0: the mark. Each line on stdin is the child's process group ('' once the child was reaped).
_GUARD_SUBREAPER = r'''
trap "" HUP INT TERM
pg=
while read -r line; do pg=$line; done
[ -n "$pg" ] && kill -KILL -- "-$pg" 2>/dev/null
n=0
while [ "$n" -lt 50 ]; do
  pids=$(grep -lzxF -e "$0" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3)
  [ -n "$pids" ] || exit 0
  kill -KILL $pids 2>/dev/null
  n=$((n + 1)); sleep 0.02
done
'''

_requested = AUTO


def request_mode(mode):
    """The mode --containment asked for (auto, cgroup, subreaper): the default of every Containment."""
    global _requested
    _requested = mode


def _become_subreaper(log):
    import ctypes  # here: cgroup mode does without it (and its memory)

    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0):
        log.warning("cannot become a child subreaper: orphans of the command go to init, out of reach",
                    error=os.strerror(ctypes.get_errno()))


class Containment:
    """What the Child uses to start, signal and sweep the child's whole process tree."""

    def __init__(self, log, name, allow_cgroup=True, mode=None):
        self.log = log
        self.mark = "%s=%d.%s" % (MARK, os.getpid(), os.urandom(8).hex())
        self.cgroup = None
        self.pgid = None  # the child's process group, while its leader is not reaped
        wanted = mode or _requested
        if wanted == SUBREAPER or not allow_cgroup:
            why = "--containment subreaper" if wanted == SUBREAPER else "no cgroup wanted here"
        else:
            parent, why = cgroups.child_cgroup_parent()
            if parent is not None:
                self.cgroup, why = cgroups.make_child_cgroup(parent, "%s.%d" % (name, os.getpid()))
        self.mode = CGROUP if self.cgroup is not None else SUBREAPER
        if wanted == CGROUP and self.mode != CGROUP:
            log.warning("--containment cgroup: no cgroup could be made, using a child subreaper", why=why)
        if self.mode == SUBREAPER:
            _become_subreaper(log)
        self.guard = self.guard_pipe = None
        self._start_guard()
        log.info("child containment", mode=self.mode, cgroup=self.cgroup or "-",
                 guard=self.guard.pid if self.guard is not None else "-", why=why or "")

    # -- starting --------------------------------------------------------------------------------

    def wrap(self, argv):
        """The argv that runs *argv* inside the containment (cgroup mode: enters the cgroup first)."""
        if self.mode == CGROUP:
            return ["/bin/sh", "-c", _ENTER, cgroups.procs_file(self.cgroup), *argv]
        return list(argv)

    def wrap_waiting(self, script, args):
        """The argv of `sh -c script` with *args* as "$@", run inside the containment (see run/launcher.py)."""
        if self.mode == CGROUP:
            return ["/bin/sh", "-c", _ENTER_ONLY + script, cgroups.procs_file(self.cgroup), *args]
        return ["/bin/sh", "-c", script, "zkherd-launcher", *args]

    def environ(self, env):
        """The child's environment: with the mark the guard finds its descendants by (subreaper mode)."""
        if self.mode == CGROUP:
            return env
        name, _eq, value = self.mark.partition("=")
        return dict(env, **{name: value})

    def started(self, pid):
        """The child's main process (registered in ownprocs by whoever started it) leads its group."""
        self.pgid = pid
        if self.mode == SUBREAPER:
            self._tell_guard(pid)

    def reaped(self, pid):
        """The child's main process was reaped: its pid (and group id) may be reused from now on."""
        ownprocs.forget(pid)
        if self.pgid == pid:
            self.pgid = None
            if self.mode == SUBREAPER:
                self._tell_guard("")

    def _start_guard(self):
        script, arg = ((_GUARD_CGROUP, self.cgroup) if self.mode == CGROUP else (_GUARD_SUBREAPER, self.mark))
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            self.guard = ownprocs.spawn(["/bin/sh", "-c", script, arg], fds={read_end: 0}, devnull=(1, 2))
        except OSError as exc:
            os.close(write_end)
            self.log.warning("cannot start the guard process; a SIGKILLed runner may leave descendants",
                             error=exc.strerror)
            return
        finally:
            os.close(read_end)
        self.guard_pipe = write_end
        if self.pgid is not None and self.mode == SUBREAPER:
            self._tell_guard(self.pgid)

    def _tell_guard(self, what):
        if self.guard_pipe is not None:
            with contextlib.suppress(OSError):
                os.write(self.guard_pipe, b"%s\n" % str(what).encode())

    def _watch_guard(self):
        """A guard that died (killed by hand, OOM) is replaced: the runner may be SIGKILLed next."""
        if self.guard is None or self.guard.poll() is None:
            return
        self.log.warning("the guard process ended, starting another", pid=self.guard.pid, code=self.guard.returncode)
        ownprocs.forget(self.guard.pid)
        os.close(self.guard_pipe)
        self.guard = self.guard_pipe = None
        self._start_guard()

    # -- signalling and sweeping ---------------------------------------------------------------

    def pids(self):
        """Every live process of the child's tree that the runner can find."""
        if self.mode == CGROUP:
            try:
                with open(cgroups.procs_file(self.cgroup), encoding="ascii") as handle:
                    return {int(line) for line in handle if line.strip()}
            except OSError:
                return set()
        me, pgid = os.getpid(), self.pgid
        with ownprocs.frozen() as own:  # nothing the runner starts meanwhile is taken for an orphan
            table = proctable.scan()
        roots = {pid for pid, (_state, ppid, pgrp) in table.items()
                 if (ppid == me and pid not in own) or (pgid is not None and (pgrp == pgid or pid == pgid))}
        return {pid for pid in proctable.descendants(roots, table)
                if pid in table and not proctable.dead(table[pid][0])}

    def signal(self, signum):
        """Send *signum* to every process of the tree (a daemon that called setsid gets it too)."""
        pgid = self.pgid
        if pgid is not None:  # in cgroup mode, also a leader that has not entered its cgroup yet
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signum)
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    def kill(self):
        """SIGKILL the whole tree, now (safe from any thread)."""
        if self.mode == CGROUP:
            pgid = self.pgid
            if pgid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
            try:
                with open(cgroups.kill_file(self.cgroup), "w", encoding="ascii") as handle:
                    handle.write("1")
                return
            except OSError:  # before Linux 5.14: process by process
                pass
        self.signal(signal.SIGKILL)

    def empty(self):
        """True once nothing of the tree is left alive (a zombie is dead: it holds nothing)."""
        if self.mode == CGROUP:
            try:
                with open(os.path.join(self.cgroup, "cgroup.events"), encoding="ascii") as handle:
                    return "populated 0" in handle.read()
            except OSError:
                return True
        return not self.pids()

    def only(self, pid):
        """True if nothing of the tree is alive but *pid* (a prespawned launcher, run/launcher.py)."""
        return not (self.pids() - {pid})

    def reap_orphans(self):
        """Collect the exit status of orphans that became our children (subreaper mode), never of a
        process the runner started on purpose (core/ownprocs.py); look after the guard."""
        self._watch_guard()
        if self.mode != SUBREAPER:
            return
        try:  # anything to reap at all? (without reaping it: it may be a task's)
            if os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                return
        except ChildProcessError:
            return
        me = os.getpid()
        with ownprocs.frozen() as own:
            for pid, (state, ppid, _pgrp) in proctable.scan().items():
                if ppid == me and pid not in own and proctable.dead(state):
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)

    def sweep(self, timeout):
        """Kill the whole tree and wait up to *timeout* s until it is gone; True if it is."""
        now = time.monotonic()
        deadline, kill_at = now + timeout, now
        while True:
            if now >= kill_at:  # again now and then: what forked meanwhile
                self.kill()
                kill_at = now + 0.05
            self.reap_orphans()
            if self.empty():
                return True
            if now >= deadline:
                return False
            time.sleep(0.005)
            now = time.monotonic()

    def close(self):
        """The runner exits (the tree is swept already): the guard ends and removes the cgroup."""
        guard, self.guard = self.guard, None
        if self.guard_pipe is not None:
            os.close(self.guard_pipe)
            self.guard_pipe = None
        if guard is not None:
            guard.wait(timeout=1.0)
            ownprocs.forget(guard.pid)
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self.cgroup)
