"""Containment: everything the child starts is stopped with it - setsid and double-forked
descendants too - and dies soon after the runner if the runner is SIGKILLed (promise 9).

Two modes, the best the runner can get, logged at start:

- **cgroup**: the child runs in a cgroup v2 of its own, made below the runner's (as root outside
  systemd, or in a unit with Delegate=yes). The kernel knows every descendant: a stop signals each
  process of the cgroup, `cgroup.kill` kills them all at once, and `cgroup.events` says when none is
  left. Nothing can escape it.
- **subreaper**: no cgroup can be made (not root, or a systemd unit without delegation - systemd's
  KillMode=control-group then covers the runner's death). The runner is a child subreaper, so
  orphaned descendants become its children: a stop signals the child's process group and every
  orphan, and the sweep kills what is left of them. A descendant of a descendant that is still alive
  is found through /proc.

In both modes a guard process (a tiny `sh`, started once) holds the read end of a pipe whose write
end only the runner has: when the runner dies, however it dies, the guard reads EOF and kills the
cgroup (or the child's last process group). The child itself also gets the parent-death signal.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import subprocess
import time

PR_SET_CHILD_SUBREAPER = 36
CGROUP, SUBREAPER = "cgroup", "subreaper"
# The child enters its cgroup before it runs anything: `echo 0 > cgroup.procs` moves the writer.
_ENTER = 'echo 0 >"$0" && exec "$@"'
# The guard: wait for the runner to go (EOF on stdin), then kill what is left. In cgroup mode it is
# told the cgroup.kill file; in subreaper mode each new process group on its stdin.
_GUARD_CGROUP = 'while read -r _; do :; done; echo 1 >"$0" 2>/dev/null'
_GUARD_PGROUP = 'pg=; while read -r pg; do :; done; [ -n "$pg" ] && kill -KILL -- "-$pg" 2>/dev/null; exit 0'


def cgroup2_mount(mountinfo="/proc/self/mountinfo"):
    """Where cgroup v2 is mounted (never assumed to be /sys/fs/cgroup), or None."""
    try:
        with open(mountinfo, encoding="utf-8") as handle:
            for line in handle:
                fields = line.split()
                dash = fields.index("-")
                if fields[dash + 1] == "cgroup2":
                    return fields[4]
    except (OSError, ValueError, IndexError):
        pass
    return None


def own_cgroup(proc_cgroup="/proc/self/cgroup"):
    """This process's cgroup v2 path ('0::/a/b' -> '/a/b'), or None."""
    try:
        with open(proc_cgroup, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return None


def _delegated(path):
    """Whether systemd delegated this cgroup to us (Delegate=yes sets this xattr, systemd 251+)."""
    for name in ("trusted.delegate", "user.delegate"):
        try:
            if os.getxattr(path, name) == b"1":
                return True
        except OSError:
            continue
    return False


def child_cgroup_parent():
    """The cgroup v2 folder under which the child's cgroup may be made, with the reason if none."""
    mount, own = cgroup2_mount(), own_cgroup()
    if mount is None or own is None:
        return None, "no cgroup v2 hierarchy"
    folder = os.path.join(mount, own.lstrip("/"))
    if os.environ.get("INVOCATION_ID") and not _delegated(folder):
        return None, "a systemd unit without Delegate=yes (its KillMode=control-group covers the runner's death)"
    if not os.access(os.path.join(folder, "cgroup.procs"), os.W_OK) or not os.access(folder, os.W_OK):
        return None, "the runner's cgroup %s is not writable" % folder
    return folder, None


class Containment:
    """What the Child uses to start, signal and sweep the child's whole process tree."""

    def __init__(self, log, name, allow_cgroup=True):
        self.log = log
        self.mode = SUBREAPER
        self.cgroup = None
        self.pgid = None  # the child's process group (its pid)
        self.known = set()  # pids the runner started on purpose (child, tasks): never swept as orphans
        parent, why = child_cgroup_parent() if allow_cgroup else (None, "cgroups not wanted")
        if parent is not None:
            path = os.path.join(parent, "%s.%d" % (name, os.getpid()))
            try:
                os.mkdir(path, 0o755)
            except FileExistsError:
                pass
            except OSError as exc:
                why = "cannot make %s: %s" % (path, exc.strerror)
            else:
                self.mode, self.cgroup = CGROUP, path
        if self.mode == SUBREAPER:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.guard_pipe = None
        self.guard = self._start_guard()
        log.info("child containment", mode=self.mode, cgroup=self.cgroup or "-",
                 why="" if self.mode == CGROUP else why)

    # -- starting --------------------------------------------------------------------------------

    def wrap(self, argv):
        """The argv that runs *argv* inside the containment (cgroup mode: enters the cgroup first)."""
        if self.mode == CGROUP:
            return ["/bin/sh", "-c", _ENTER, os.path.join(self.cgroup, "cgroup.procs"), *argv]
        return list(argv)

    def started(self, pid):
        self.pgid = pid
        self.known.add(pid)
        if self.mode == SUBREAPER:
            self._tell_guard("%d\n" % pid)

    def _start_guard(self):
        script, arg = ((_GUARD_CGROUP, os.path.join(self.cgroup, "cgroup.kill")) if self.mode == CGROUP
                       else (_GUARD_PGROUP, "zkherd-guard"))
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", script, arg], stdin=read_end, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        except OSError as exc:
            os.close(write_end)
            self.log.warning("cannot start the guard process; a SIGKILLed runner may leave descendants",
                             error=exc.strerror)
            return None
        finally:
            os.close(read_end)
        self.guard_pipe = write_end
        self.known.add(proc.pid)
        return proc

    def _tell_guard(self, text):
        if self.guard_pipe is not None:
            with contextlib.suppress(OSError):
                os.write(self.guard_pipe, text.encode())

    # -- signalling and sweeping ---------------------------------------------------------------

    def pids(self):
        """Every live process of the child's tree that the runner can find."""
        if self.mode == CGROUP:
            try:
                with open(os.path.join(self.cgroup, "cgroup.procs"), encoding="ascii") as handle:
                    return {int(line) for line in handle if line.strip()}
            except OSError:
                return set()
        table = list(_processes())
        roots = {pid for pid, ppid in table if ppid == os.getpid() and pid not in self.known}  # orphans
        if self.pgid is not None:
            roots |= {self.pgid} | set(_group_members(self.pgid))
        return _descendants(roots, table)

    def signal(self, signum):
        """Send *signum* to every process of the tree (a daemon that called setsid gets it too)."""
        if self.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signum)
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    def kill(self):
        """SIGKILL the whole tree, now."""
        if self.mode == CGROUP:
            try:
                with open(os.path.join(self.cgroup, "cgroup.kill"), "w", encoding="ascii") as handle:
                    handle.write("1")
                return
            except OSError as exc:
                self.log.warning("cgroup.kill failed, killing process by process", error=exc.strerror)
        self.signal(signal.SIGKILL)

    def empty(self):
        """True once nothing of the tree is left (zombies of others' children do not count)."""
        if self.mode == CGROUP:
            try:
                with open(os.path.join(self.cgroup, "cgroup.events"), encoding="ascii") as handle:
                    return "populated 0" in handle.read()
            except OSError:
                return True
        return not {pid for pid in self.pids() if not _zombie(pid)}

    def reap_orphans(self):
        """Collect the exit status of orphans that became our children (subreaper mode); never a
        process the runner started on purpose, whose status belongs to its owner."""
        if self.mode != SUBREAPER:
            return
        for pid, ppid in _processes():
            if ppid == os.getpid() and pid not in self.known and _zombie(pid):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)

    def sweep(self, timeout):
        """Kill the whole tree and wait up to *timeout* s until it is gone; True if it is."""
        deadline = time.monotonic() + timeout
        self.kill()
        while not self.empty():
            self.reap_orphans()
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        self.reap_orphans()
        return True

    def close(self):
        """The runner exits: the tree is already swept; end the guard and remove the cgroup."""
        if self.guard_pipe is not None:
            os.close(self.guard_pipe)
            self.guard_pipe = None
        if self.guard is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.guard.wait(timeout=1.0)
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self.cgroup)


def _processes():
    """(pid, ppid) of every process, from /proc."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                yield int(entry), stat[1]


def _stat(pid):
    """(state, ppid, pgrp) of *pid*, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[1]), int(fields[2])


def _zombie(pid):
    stat = _stat(pid)
    return stat is None or stat[0] in ("Z", "X")


def _group_members(pgid):
    return [pid for pid in (int(e) for e in os.listdir("/proc") if e.isdigit())
            if (_stat(pid) or (None, None, None))[2] == pgid]


def _descendants(roots, table):
    """*roots* and all their descendants, from a (pid, ppid) table."""
    found, children = set(roots), {}
    for pid, ppid in table:
        children.setdefault(ppid, []).append(pid)
    pending = list(roots)
    while pending:
        for child in children.get(pending.pop(), ()):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def errno_name(exc):
    return errno.errorcode.get(exc.errno, str(exc.errno))
