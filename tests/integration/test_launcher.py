"""The launcher prespawned while a runner waits for the lock (run/launcher.py): it never runs the
command before the lock is the runner's, it dies with the runner however the runner ends, one that
was killed is replaced, and at the handover the command gets the right lock node and fencing token
(shell-quoted: a lock path may hold quotes, spaces and `$`) and no fd of the launcher's pipe.
Both containment modes."""

from __future__ import annotations

import ast
import os
import re
import signal
import sys

import pytest

from tests.support import procs
from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for


def _cgroup_possible():
    from zkherd.run.cgroups import child_cgroup_parent

    return child_cgroup_parent()[0] is not None


# The launcher is used in cgroup mode only: there every start goes through /bin/sh anyway, so the
# command's environment is the same with it or without (in subreaper mode a variable whose name is
# not a shell identifier would be lost, and PWD added).
MODES = [pytest.param("cgroup", marks=pytest.mark.skipif(not _cgroup_possible(), reason="cannot make a cgroup v2"))]
# Writes what the command got, then stays. $1: the file.
REPORT = ('{ echo "lock=$ZKHERD_LOCK_PATH"; echo "token=$ZKHERD_FENCING_TOKEN"; '
          'echo "fd9=$([ -e /proc/self/fd/9 ] && echo open || echo closed)"; } >"$1.tmp" && mv "$1.tmp" "$1"; '
          'exec sleep 1000')


def runner(hosts, lock, path, log, mode):
    return Zkherd(["-v", "run", "--zk", hosts, "--containment", mode, "--lock", lock, "--",
                   "sh", "-c", REPORT, "report", str(path)], log)


def launcher_pid(runner, count=1):
    """The pid of the runner's *count*-th prespawned launcher (its debug line)."""
    runner.wait_log(r"launcher prespawned pid=\d+", count=count)
    return int(re.findall(r"launcher prespawned pid=(\d+)", runner.log())[count - 1])


def gone(pid, timeout=10.0):
    wait_for(lambda: not procs.pid_alive(pid), timeout=timeout, message="process %d to be gone" % pid)
    return True


@pytest.fixture
def holder(zk_server, zk_base, tmp_path):
    lock = zk_base + "/it's a $lock"
    first = Zkherd(["run", "--zk", zk_server.hosts, "--lock", lock, "--", "sleep", "1000"], tmp_path / "holder.log")
    first.wait_log("started child")
    yield lock, first
    first.stop()


@pytest.mark.parametrize("mode", MODES)
def test_handover_runs_the_prespawned_launcher_with_the_lock_in_its_env(zk_server, holder, tmp_path, mode):
    lock, first = holder
    report = tmp_path / "report"
    standby = runner(zk_server.hosts, lock, report, tmp_path / "standby.log", mode)
    pid = launcher_pid(standby)
    assert procs.pid_alive(pid) and not report.exists(), "the command ran before the lock was ours"
    # `pgrep -f COMMAND` (monitoring, the molecule check) must not take a standby's launcher for the
    # service: its command line does not name the command while it waits
    assert str(report) not in " ".join(procs.pid_cmdline(pid)), procs.pid_cmdline(pid)
    first.stop()
    wait_for(report.exists, timeout=15)
    lines = dict(line.split("=", 1) for line in report.read_text().splitlines())
    acquired = re.search(r"lock acquired .* node=(.*) fencing_token=(\d+)", standby.log())
    assert acquired, standby.log()
    assert lines["lock"].startswith(lock + "/lock-") and acquired.group(1).strip('"') == lines["lock"]
    assert lines["token"] == acquired.group(2)
    assert lines["fd9"] == "closed", "the launcher's pipe leaked into the command"
    assert standby.has("started child pid=%d .*prespawned=True" % pid), standby.log()
    assert standby.child_pid == pid
    standby.stop()
    assert gone(pid)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", ["term", "sigkill"])
def test_launcher_dies_with_a_queued_runner(zk_server, holder, tmp_path, mode, how):
    lock, first = holder
    report = tmp_path / "report"
    standby = runner(zk_server.hosts, lock, report, tmp_path / "standby.log", mode)
    pid = launcher_pid(standby)
    if how == "term":
        standby.signal(signal.SIGTERM)
        assert standby.wait() == 128 + signal.SIGTERM
    else:
        standby.kill()
    assert gone(pid)
    first.stop()  # the lock is free now: had anything of the standby survived, it would run the command
    assert not report.exists(), "the command of a runner that stopped waiting ran"


@pytest.mark.parametrize("mode", MODES)
def test_a_killed_launcher_is_replaced(zk_server, holder, tmp_path, mode):
    lock, first = holder
    report = tmp_path / "report"
    standby = runner(zk_server.hosts, lock, report, tmp_path / "standby.log", mode)
    pid = launcher_pid(standby)
    os.kill(pid, signal.SIGKILL)  # by someone else: OOM, a careless admin
    standby.wait_log("the prespawned launcher ended, starting another")
    replacement = launcher_pid(standby, count=2)
    assert replacement != pid and procs.pid_alive(replacement)
    assert not report.exists()
    first.stop()
    wait_for(report.exists, timeout=15)
    assert standby.has("started child pid=%d .*prespawned=True" % replacement), standby.log()
    standby.stop()
    assert gone(replacement)


def test_launcher_goes_with_the_session_and_comes_back_with_a_new_one(zk_server, zk, holder, fault_proxy, tmp_path):
    """A queued runner whose session expires loses its place in line: its launcher goes too (it
    would run the command under a place that no longer exists); a new one comes with the new place."""
    lock, first = holder
    report, proxy = tmp_path / "report", fault_proxy()
    standby = Zkherd(["-v", "run", "--zk", proxy.hosts, "--session-timeout", "1", "--lock", lock, "--",
                      "sh", "-c", REPORT, "report", str(report)], tmp_path / "standby.log")
    pid = launcher_pid(standby)
    place = re.search(r"queued for lock .* node=(.*)$", standby.log(), re.MULTILINE).group(1).strip('"')
    proxy.blackhole()
    wait_for(lambda: zk.exists(place) is None, timeout=10, message="the server to expire the session")
    proxy.reset_all()
    proxy.heal()
    standby.wait_log("the ZooKeeper session expired")
    assert gone(pid)
    replacement = launcher_pid(standby, count=2)
    assert replacement != pid and not report.exists()
    first.stop()
    wait_for(report.exists, timeout=15)
    assert standby.has("started child pid=%d .*prespawned=True" % replacement), standby.log()
    standby.stop()


@pytest.mark.parametrize("mode", ["subreaper", *MODES])
def test_without_a_launcher_the_command_starts_as_ever(zk_server, holder, tmp_path, mode):
    """Subreaper mode, and in cgroup mode a command the launcher's one short line cannot carry (a
    5,000-byte argument: the write would not be atomic, and a stopped launcher could block the
    runner): no launcher waits, the command is started anew at the handover; in subreaper mode
    with its environment untouched (a variable whose name is not a shell identifier kept)."""
    lock, first = holder
    report = tmp_path / "report"
    # not a shell (it would drop the variable itself): Python writes what it got
    script = ("import os, sys, time; open(sys.argv[1] + '.tmp', 'w').write(repr(dict(os.environ))); "
              "os.rename(sys.argv[1] + '.tmp', sys.argv[1]); time.sleep(1000)")  # whole once it exists
    argv = [sys.executable, "-c", script, str(report)] + (["x" * 5000] if mode == "cgroup" else [])
    standby = Zkherd(["-v", "run", "--zk", zk_server.hosts, "--containment", mode, "--lock", lock, "--", *argv],
                     tmp_path / "standby.log", env={"spring.profiles.active": "prod"})
    standby.wait_log("queued for lock")
    first.stop()
    wait_for(report.exists, timeout=15)
    assert not standby.has("launcher prespawned")
    assert standby.has("started child pid=\\d+ .*prespawned=False"), standby.log()
    env = ast.literal_eval(report.read_text())
    if mode == "subreaper":  # in cgroup mode /bin/sh enters the cgroup first: see docs/runner.md, Containment
        assert env.get("spring.profiles.active") == "prod", env
    standby.stop()
