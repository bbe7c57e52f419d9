"""Real `zkherd` runner processes for tests, and an overlap checker for what they run.

    r = Zkherd(["run", "--zk", hosts, "--lock", "/l", "--", *exclusive_child(tmp)], tmp / "r1.log")
    r.wait_log("started child")
    r.signal(SIGTERM); assert r.wait() == 143

The overlap checker is the kernel's: exclusive_child() runs `flock -n` on one of the slot files,
which fails at once (exit 99, and a line in overlaps.log) if the slot is taken. A flock is only
released when the process holding it is dead, so a holder that is merely *told* to stop still
counts as running. Starts are appended to starts.log with a CLOCK_MONOTONIC stamp.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import procs
from .zkutil import wait_for

REPO = Path(__file__).resolve().parents[2]
OVERLAP_EXIT = 99


class Zkherd:
    def __init__(self, args, log_path, env=None, cwd=None, prefix=()):
        """*prefix*: a command that runs the runner, e.g. ["prlimit", "--as=1073741824"] (it must exec it)."""
        self.args = list(args)
        self.log_path = Path(log_path)
        full_env = dict(os.environ, PYTHONUNBUFFERED="1")
        full_env.update(env or {})
        self.proc = procs.spawn([*prefix, sys.executable, "-m", "zkherd", *self.args], self.log_path,
                                cwd=Path(cwd or REPO), env=full_env)
        self.pid = self.proc.pid

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, pattern, timeout=15.0, count=1):
        """Wait until *pattern* (a regex) appears *count* times in the log; returns the last match."""
        regex = re.compile(pattern)
        wait_for(lambda: len(regex.findall(self.log())) >= count, timeout,
                 message=lambda: "%r x%d in the log of zkherd %s:\n%s"
                 % (pattern, count, self.args, self.log()[-3000:]))
        return regex.findall(self.log())[-1]

    def has(self, pattern):
        return re.search(pattern, self.log()) is not None

    def signal(self, signum):
        if self.proc.poll() is None:
            os.kill(self.pid, signum)

    def kill(self):
        """SIGKILL the runner alone (not its child: that is the runner's business)."""
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def wait(self, timeout=20.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("zkherd %s still running after %ss; log:\n%s"
                                 % (self.args, timeout, self.log()[-3000:])) from None

    def stop(self):
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                procs.kill(self.proc)

    @property
    def child_pid(self):
        found = re.findall(r"started child pid=(\d+)", self.log())
        return int(found[-1]) if found else None


def exclusive_child(workdir, slots=1, name="child", stop_delay=0, interval=0.05, daemon=False, on_start=""):
    """argv of a command that holds one of *slots* slot locks while it runs, or records an
    overlap and exits 99 when all slots are taken. On SIGTERM it takes *stop_delay* seconds
    to exit (still holding its slot), like a service that shuts down slowly; it notices the
    signal within *interval* seconds (the period of its idle loop). *on_start*: shell run once
    the slot is taken (e.g. a record of the file the child started with).

    daemon=True: the command is a wrapper that does not exec. It starts the slot holder as a
    grandchild in a session of its own (setsid) that ignores SIGTERM, and waits for it; TERM ends
    the wrapper alone. Only containment (SIGKILL of the whole tree) ends the holder, and its flock
    says whether it did so before the next holder started; starts.log names the grandchild."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    on_term = 'trap "" TERM; ' if daemon else 'trap "sleep %s 9>&-; exit 0" TERM; ' % stop_delay
    script = (
        'for i in $(seq 0 %d); do '
        '  exec 9>"%s/slot$i"; '
        '  if flock -n 9; then '
        '    echo "$(cut -d" " -f1 /proc/uptime) %s $$ slot$i" >>"%s/starts.log"; %s'
        '    %swhile :; do sleep %s 9>&-; done; '
        '  fi; '
        'done; '
        'echo "$(cut -d" " -f1 /proc/uptime) %s $$ OVERLAP" >>"%s/overlaps.log"; exit %d'
    ) % (slots - 1, workdir, name, workdir, on_start + "; " if on_start else "", on_term, interval, name, workdir,
         OVERLAP_EXIT)
    if daemon:  # the holder is $0 of the wrapper; `wait` returns its exit code (99 on an overlap)
        return ["sh", "-c", 'setsid sh -c "$0" & wait $!', script]
    return ["sh", "-c", script]


def overlaps(workdir):
    path = Path(workdir) / "overlaps.log"
    return path.read_text().splitlines() if path.exists() else []


def starts(workdir):
    path = Path(workdir) / "starts.log"
    return path.read_text().splitlines() if path.exists() else []


def wait_starts(workdir, count, timeout=15.0):
    wait_for(lambda: len(starts(workdir)) >= count, timeout,
             message=lambda: "%d starts in %s, have: %s" % (count, workdir, starts(workdir)))
    return starts(workdir)


def monotonic_ms():
    return time.clock_gettime(time.CLOCK_MONOTONIC) * 1000.0
