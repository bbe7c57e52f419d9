"""The launcher started ahead: while the runner waits in the lock's line, the child's first process
is already made - in its own session, tied to the runner's life (setpriv --pdeathsig KILL, which
survives the exec), inside the child's containment (in cgroup mode it has entered the child's cgroup,
the slow part of a start: see docs/benchmarks.md) - and waits on a pipe. At the handover, once the
lock is ours, the runner writes one line: the `export`s of what is only known then (the lock node,
the fencing token, the registered node) and the command, which the launcher execs. EOF on the pipe (the
runner dismissed it, or died) ends it without running anything.

It counts as the child's tree for the containment (run/containment.py): its process group is the
child's, the guard knows it, a sweep kills it. It never forks, so it is the only process of that tree
until the command runs. The runner dismisses it as soon as it stops waiting for the lock (run/runner.py)
and starts another if it ends on its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal

from zkherd.core import ownprocs

PIPE_FD = 9  # the highest a POSIX shell's redirections take
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# The pipe is fd 9 (setpriv's parent-death signal is set already). The line it reads ends with the
# `exec` of the command: while it waits, its command line does not name the command, so that
# `pgrep -f COMMAND` and monitoring do not count a standby's launcher as a running service.
_WAIT = 'IFS= read -r _zkherd_line <&9 || exit 0; exec 9<&-; eval "$_zkherd_line"; exit 126'


def quote(value):
    """*value* as one shell word."""
    return "'" + value.replace("'", "'\\''") + "'"


def usable(argv):
    """A launcher can run *argv*: no argument holds a newline (the line would not be one line), and
    the command leaves room in the line for the environment (see command_line)."""
    words = " ".join(map(quote, argv)).encode("utf-8", "surrogateescape")
    return b"\n" not in words and len(words) <= select.PIPE_BUF // 2


def command_line(before, after, argv):
    """The line the launcher evals: the environment *before* turned into *after*, then the exec of
    *argv* (newline-terminated); None if that cannot be said safely in one short line: a name that is
    not a shell identifier (sh would fail on it, or drop it), a newline, or a line longer than
    PIPE_BUF (one write that never blocks, even on a launcher that was stopped)."""
    names = [name for name in set(before) | set(after) if before.get(name) != after.get(name)]
    if not all(_IDENTIFIER.match(name) for name in names) or not usable(argv):
        return None
    line = "%s || exit 126; unset _zkherd_line; exec %s\n" % (env_line(before, after)[:-1], " ".join(map(quote, argv)))
    data = line.encode("utf-8", "surrogateescape")
    return data if b"\n" not in data[:-1] and len(data) <= select.PIPE_BUF else None


def env_line(before, after):
    """The shell line that turns environment *before* into *after* (newline-terminated)."""
    changed = ["%s=%s" % (name, quote(value)) for name, value in after.items() if before.get(name) != value]
    gone = [name for name in before if name not in after]
    parts = (["export " + " ".join(changed)] if changed else []) + (["unset " + " ".join(gone)] if gone else [])
    return ("; ".join(parts) or ":") + "\n"


class Launcher:
    def __init__(self, argv, env, containment, pdeathsig_argv):
        """*argv*: the command; *env*: its environment but for what the handover adds;
        *pdeathsig_argv*: setpriv's, that ties the launcher to the runner's life."""
        self.env, self.argv = containment.environ(env), list(argv)
        self.containment = containment
        read_end, self.pipe = os.pipe2(os.O_CLOEXEC)
        try:
            self.proc = ownprocs.spawn([*pdeathsig_argv, *containment.wrap_waiting(_WAIT, [])], self.env,
                                       {read_end: PIPE_FD})
        except BaseException:
            os.close(self.pipe)
            raise
        finally:
            os.close(read_end)
        containment.started(self.proc.pid)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        """Not ended (an ended launcher is reaped and forgotten here)."""
        if self.proc.poll() is None:
            return True
        self._forget()
        return False

    def go(self, env):
        """Run the command with environment *env* (its own, without the containment's mark); returns
        the Popen of the command's process, or None if the launcher ended before it could be told."""
        line = command_line(self.env, self.containment.environ(env), self.argv)
        if line is None:  # not said safely in one short line: the command starts anew
            self.dismiss()
            return None
        try:
            os.write(self.pipe, line)  # at most PIPE_BUF into an empty pipe: whole, and never blocks
        except OSError:  # EPIPE: it ended meanwhile
            self.dismiss()
            return None
        os.close(self.pipe)
        self.pipe = None
        return self.proc

    def dismiss(self):
        """End it (EOF first, SIGKILL to be sure) and reap it; nothing of the command ever ran."""
        if self.pipe is not None:
            os.close(self.pipe)
            self.pipe = None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=1.0)
        self._forget()

    def _forget(self):
        if self.pipe is not None:
            os.close(self.pipe)
            self.pipe = None
        ownprocs.forget(self.proc.pid)
        self.containment.reaped(self.proc.pid)
