"""Containment's documented limits (docs/runner.md, "Containment", "What it does not cover"):
each test shows the limit is real, as an expected failure - if one starts to pass, the limit is
gone and the docs must say so (strict xfail)."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest

from tests.integration.test_containment import DAEMON, RUNNERS, cgroup_possible, daemon_folder, daemon_of
from tests.support import procs
from tests.support.runner import Zkherd, overlaps
from tests.support.zkutil import wait_for

# -- a descendant that moves itself out of the child's cgroup (root may write any cgroup.procs) --

# "$0" daemon.sh, "$1" workdir, "$2" name, "$3" the cgroup.procs file to move into.
ESCAPE = 'setsid sh -c \'echo $$ >"$3" && exec sh "$0" "$1" "$2"\' "$0" "$1" "$2" "$3" &\nwait; exec sleep 1000'


@pytest.fixture
def escape_work(tmp_path):
    yield from daemon_folder(tmp_path)


@pytest.mark.skipif(not cgroup_possible(), reason="no cgroup mode here")
@pytest.mark.xfail(strict=True, reason="a root descendant may leave the cgroup on purpose (documented limit)")
def test_a_root_descendant_that_moves_itself_to_another_cgroup_is_not_followed(zk_server, zk_base, escape_work,
                                                                               tmp_path):
    """docs/runner.md says of cgroup mode "nothing escapes". A descendant running as root (the
    runner's own user) writes itself into the runner's cgroup.procs (systemd-run --scope, cgexec,
    a container runtime do the same): it is no longer in the child's cgroup, cgroup.events says
    'populated 0', the lock is released, and the standby's daemon finds the slot taken."""
    from zkherd.run.cgroups import own_cgroup_folder

    target = os.path.join(own_cgroup_folder(), "cgroup.procs")  # the runner's cgroup: ours too
    work, lock = escape_work, zk_base + "/l"

    def start(name):
        argv = ["sh", "-c", ESCAPE, str(work / "daemon.sh"), str(work), name, target]
        runner = Zkherd(["run", "--zk", zk_server.hosts, "--session-timeout", "4", "--stop-timeout", "1",
                         "--lock", lock, "--", *argv], tmp_path / ("%s.log" % name))
        RUNNERS.append(runner)
        return runner

    holder = start("holder")
    holder.wait_log("child containment mode=cgroup")
    old = daemon_of(work, "holder")
    standby = start("standby")
    standby.wait_log("queued for lock")
    holder.signal(signal.SIGTERM)
    holder.wait()
    wait_for(lambda: standby.has("started child") or overlaps(work), 15,
             message=lambda: "the standby to start:\n" + standby.log()[-2000:])
    time.sleep(0.5)
    alive = procs.pid_alive(old)
    assert not alive and overlaps(work) == [], (
        "the holder's daemon (pid %d) outlived the stop of its child: alive=%s, overlaps=%s"
        % (old, alive, overlaps(work)))


# -- the guard and the runner killed together ------------------------------------------------


@pytest.mark.skipif(not cgroup_possible(), reason="no cgroup mode here")
@pytest.mark.xfail(strict=True, reason="guard and runner killed at once: a double fault (documented limit)")
def test_the_guard_and_the_runner_killed_together_leave_the_tree(zk_server, zk_base, tmp_path):
    """run/containment.py replaces a dead guard only in reap_orphans(), which runs from reap(),
    i.e. on the loop's next turn after a SIGCHLD. An operator's `kill -9 -- -PGID` of the runner's
    process group does not reach the guard (own session) - but `pkill -9 -s SID`, an OOM kill of
    the guard, or a kill of the guard and the runner together leaves the child with no guard: the
    pdeathsig of setpriv covers the main process only, a setsid daemon survives in its cgroup."""
    work = tmp_path / "w"
    work.mkdir()
    (work / "daemon.sh").write_text(DAEMON)
    argv = ["sh", "-c", 'setsid sh "$0" "$1" "$2" &\nwait; exec sleep 1000', str(work / "daemon.sh"), str(work),
            "holder"]
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--session-timeout", "4", "--lock", zk_base + "/l", "--",
                     *argv], tmp_path / "holder.log")
    try:
        guard = int(runner.wait_log(r"child containment mode=cgroup cgroup=\S+ guard=(\d+)"))
        old = daemon_of(work, "holder")
        os.kill(guard, signal.SIGKILL)
        os.kill(runner.pid, signal.SIGKILL)  # together, as an OOM kill of both or `kill -9 GUARD RUNNER` does
        runner.proc.wait(10)
        time.sleep(1.0)
        alive = procs.pid_alive(old)
    finally:
        runner.stop()
        for entry in os.listdir("/proc"):
            if entry.isdigit() and str(work / "daemon.sh") in procs.pid_cmdline(int(entry)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry), signal.SIGKILL)
    assert not alive, "the daemon (pid %d) outlived the SIGKILLed runner whose guard was killed first" % old
