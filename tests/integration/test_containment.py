"""Promise 9, containment: nothing the child started outlives a stop of the child, and nothing
outlives a SIGKILLed runner by more than the guard needs (run/containment.py, docs/runner.md).

Each child is a wrapper that leaves a daemon behind, in one of four shapes (the wrapper does not
exec; the daemon called setsid; it double-forked, so the wrapper is not even its parent; it ignores
SIGTERM). The daemon holds a flock on one slot file while it lives, as exclusive_child does: a
second daemon that finds the slot taken records an OVERLAP and exits. Every scenario has a standby
runner on the same lock with the same kind of child, so "the old daemon was still alive when the
new holder's daemon started" is the kernel's verdict, not a clock comparison.
"""

from __future__ import annotations

import contextlib
import os
import signal

import pytest

from tests.support import procs
from tests.support.runner import Zkherd, overlaps, starts
from tests.support.zkutil import wait_for

# $1 workdir, $2 name, $3 "ignore" to ignore SIGTERM, "heavy" to hold 768 MiB (its exit takes a while).
# The pid file is written first (atomically), so the wrapper and the test know the daemon before it
# takes the slot.
DAEMON = r'''
w=$1; name=$2
HEAVY='import os, sys, time
memory = b"x" * (768 << 20)  # touched: its pages must be freed at exit
with open(sys.argv[1] + "/starts.log", "a") as log:
    log.write("%s %s %d\n" % (open("/proc/uptime").read().split()[0], sys.argv[2], os.getpid()))
time.sleep(1000)'
[ "$3" = ignore ] && trap "" TERM
echo $$ >"$w/$name.pid.tmp" && mv "$w/$name.pid.tmp" "$w/$name.pid"
exec 9>"$w/slot"
if flock -n 9; then
  [ "$3" = heavy ] && exec python3 -c "$HEAVY" "$w" "$name"
  echo "$(cut -d" " -f1 /proc/uptime) $name $$" >>"$w/starts.log"
  : >"$w/$name.up"
  while :; do sleep 0.05 9>&-; done
fi
echo "$(cut -d" " -f1 /proc/uptime) $name $$ OVERLAP" >>"$w/overlaps.log"
exit 99
'''

# How the wrapper starts the daemon ("$0" is daemon.sh, "$1" the workdir, "$2" the daemon's name).
SHAPES = {
    "no-exec": 'sh "$0" "$1" "$2" &',
    "setsid": 'setsid sh "$0" "$1" "$2" &',
    "double-fork": '(setsid sh "$0" "$1" "$2" &)',
    "ignores-term": 'setsid sh "$0" "$1" "$2" ignore &',
}
STAYS = 'wait; exec sleep 1000'  # a double-forked daemon is no job of the wrapper: wait returns at once
EXITS = 'while [ ! -e "$1/$2.up" ]; do sleep 0.01; done; exit 3'  # leaves its daemon behind, holding the slot


RUNNERS = []


def daemon_folder(tmp_path):
    """The daemons' folder. At the end the test's runners are stopped, then every daemon of this
    folder still alive is killed (a failed test, or a runner from before containment, leaves some)."""
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "daemon.sh").write_text(DAEMON)
    yield folder
    while RUNNERS:
        RUNNERS.pop().stop()
    script = str(folder / "daemon.sh")
    for entry in os.listdir("/proc"):
        if entry.isdigit() and script in procs.pid_cmdline(int(entry)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGKILL)


@pytest.fixture
def work(tmp_path):
    yield from daemon_folder(tmp_path)


def wrapper(work, name, shape, exits=False):
    script = SHAPES[shape] + "\n" + (EXITS if exits else STAYS)
    return ["sh", "-c", script, str(work / "daemon.sh"), str(work), name]


def start_runner(hosts, lock, work, name, shape, tmp_path, *, mode=None, timeout=2.0, stop_timeout=1.0,
                 exits=False, extra=()):
    args = ["run", "--zk", hosts, "--session-timeout", str(timeout), "--stop-timeout", str(stop_timeout),
            "--lock", lock]
    if mode is not None:
        args += ["--containment", mode]
    runner = Zkherd([*args, *extra, "--", *wrapper(work, name, shape, exits)], tmp_path / ("%s.log" % name))
    RUNNERS.append(runner)
    return runner


def daemon_of(work, name, timeout=15.0):
    """The pid of *name*'s daemon once it holds the slot."""
    wait_for(lambda: any(line.split()[1:3] == [name, (work / (name + ".pid")).read_text().strip()]
                         for line in starts(work)) if (work / (name + ".pid")).exists() else False,
             timeout, message=lambda: "%s's daemon in %s: %s %s" % (name, work, starts(work), overlaps(work)))
    return int((work / (name + ".pid")).read_text())


def alive(pid):
    return procs.pid_alive(pid)


def assert_gone(pid, timeout, what):
    wait_for(lambda: not alive(pid), timeout, interval=0.01, message=lambda: "%s (pid %d) to be gone" % (what, pid))


def cgroup_possible():
    try:
        from zkherd.run.cgroups import child_cgroup_parent
    except ImportError:  # a runner from before containment: run the tests to see it fail
        return True
    return child_cgroup_parent()[0] is not None


needs_cgroup = pytest.mark.skipif(not cgroup_possible(), reason="this process cannot make a cgroup v2 (not root?)")


def scenario(zk_server, zk, zk_base, work, tmp_path, shape, how, mode=None):
    """Start a holder and a standby, make the holder's child stop by *how*, and check that its
    daemon is gone before the standby's daemon starts."""
    lock = zk_base + "/l"
    holder = start_runner(zk_server.hosts, lock, work, "holder", shape, tmp_path, mode=mode, exits=how == "exits")
    old = daemon_of(work, "holder")
    standby = start_runner(zk_server.hosts, lock, work, "standby", shape, tmp_path, mode=mode)
    standby.wait_log("queued for lock")
    if how == "sigkill":
        holder.kill()
        # the guard kills the tree at once: well within the 2 s session timeout, whatever the shape
        assert_gone(old, 1.0, "the SIGKILLed holder's daemon")
    elif how == "term":
        holder.signal(signal.SIGTERM)
        code = holder.wait()
        assert not alive(old), "the holder exited, its daemon still runs"
        assert code in (143, 128 + signal.SIGKILL) or code == 0, code
    elif how == "lock-lost":
        node = holder.wait_log(r"lock acquired lock=\S+ node=(\S+)")
        zk.delete(node)
        # "lock lost" as a rule; under load a connection blip can come first (2 s sessions): then the
        # fence stops the child and the lock is found gone on reconnecting - the same stop of the tree
        holder.wait_log("lock lost|stopping the child before the session can expire")
    elif how == "exits":
        assert holder.wait() == 3  # the wrapper's own code; its daemon did not keep the runner
        assert not alive(old), "the runner exited, the daemon its child left still runs"
    new = daemon_of(work, "standby", timeout=20)
    assert overlaps(work) == [], "the old daemon was alive when the new holder's started"
    assert not alive(old)
    assert alive(new)
    if how == "lock-lost":  # back in line behind the standby, its tree swept
        holder.wait_log("queued for lock", count=2)
    standby.stop()
    assert not alive(new), "the standby exited after TERM, its daemon still runs"
    holder.stop()
    for runner in (holder, standby):
        if runner.has("child containment"):
            assert runner.has("child containment mode=%s" % (mode or "cgroup")), runner.log()
        assert "Traceback" not in runner.log(), runner.log()
    return holder


@needs_cgroup
@pytest.mark.parametrize("how", ["sigkill", "term", "lock-lost", "exits"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_cgroup_mode(zk_server, zk, zk_base, work, tmp_path, shape, how):
    holder = scenario(zk_server, zk, zk_base, work, tmp_path, shape, how)
    assert holder.has("child containment mode=cgroup"), holder.log()


@pytest.mark.parametrize("how", ["sigkill", "term", "lock-lost", "exits"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_subreaper_mode(zk_server, zk, zk_base, work, tmp_path, shape, how):
    holder = scenario(zk_server, zk, zk_base, work, tmp_path, shape, how, mode="subreaper")
    assert holder.has("child containment mode=subreaper"), holder.log()


@needs_cgroup
@pytest.mark.parametrize("shape", list(SHAPES))
def test_fence_stops_the_whole_tree(zk_server, zk_base, fault_proxy, work, tmp_path, shape):
    """The holder is cut off from ZooKeeper: the fence stops its tree before its session can expire,
    daemons included, so the standby's daemon finds the slot free."""
    lock, proxy = zk_base + "/l", fault_proxy()
    holder = start_runner(proxy.hosts, lock, work, "holder", shape, tmp_path, stop_timeout=0.3)
    old = daemon_of(work, "holder")
    standby = start_runner(zk_server.hosts, lock, work, "standby", shape, tmp_path)
    standby.wait_log("queued for lock")
    proxy.blackhole()
    holder.wait_log("stopping the child before the session can expire")
    daemon_of(work, "standby", timeout=20)
    assert overlaps(work) == [], "the fenced holder's daemon was alive when the standby's started"
    assert not alive(old)
    proxy.reset_all()
    proxy.heal()


@needs_cgroup
@pytest.mark.parametrize("shape", list(SHAPES))
def test_config_restart_stops_the_whole_tree(zk_server, zk, zk_base, work, tmp_path, shape):
    """New files restart the child: its daemon goes first, the new child's daemon finds the slot free."""
    znode, conf = zk_base + "/conf", tmp_path / "conf"
    zk.create(znode, b"one")
    runner = start_runner(zk_server.hosts, zk_base + "/l", work, "holder", shape, tmp_path,
                          extra=["--mirror", "%s=%s" % (conf, znode), "--change-delay", "0"])
    first = daemon_of(work, "holder")
    (work / "holder.pid").unlink()
    zk.set(znode, b"two")
    second = daemon_of(work, "holder")
    assert second != first and not alive(first)
    assert overlaps(work) == [], "the daemon of the child before the restart was alive when the new one started"
    assert conf.read_bytes() == b"two"
    runner.stop()
    assert not alive(second)


@needs_cgroup
@pytest.mark.parametrize("how", ["sigkill", "term"])
def test_no_cgroup_and_no_guard_left_behind(zk_server, zk_base, work, tmp_path, how):
    """The child's cgroup is removed and the guard ends, also when the runner was SIGKILLed."""
    runner = start_runner(zk_server.hosts, zk_base + "/l", work, "holder", "setsid", tmp_path)
    cgroup = runner.wait_log(r"containment mode=cgroup cgroup=(\S+)")
    old = daemon_of(work, "holder")
    assert os.path.isdir(cgroup)
    if how == "sigkill":
        runner.kill()
    else:
        runner.signal(signal.SIGTERM)
        runner.wait()
    assert_gone(old, 1.0, "the daemon")
    wait_for(lambda: not os.path.exists(cgroup), 5.0, message="the child's cgroup %s to be removed" % cgroup)
    wait_for(lambda: not [pid for pid in all_pids() if alive(pid) and cgroup in " ".join(procs.pid_cmdline(pid))],
             5.0, message="the guard to end")


def all_pids():
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def test_subreaper_leaves_the_runners_own_commands_alone(zk_server, tmp_path):
    """Under a child subreaper, health checks are the runner's own, not orphans of the child: their
    exit status is theirs to report (a failing check reaped as an orphan would read as passed)."""
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--containment", "subreaper", "--health", "sleep 0.05; exit 1",
                     "--health-delay", "0", "--health-interval", "0.05", "--health-fall", "1", "--health-rise", "1",
                     "--", "sleep", "1000"], tmp_path / "r.log")
    RUNNERS.append(runner)
    runner.wait_log("health check failed code=1", count=10)
    assert runner.has("child is unhealthy")
    assert not runner.has("child is healthy"), runner.log()
    runner.stop()


@needs_cgroup
def test_which_containment_is_logged_and_a_forced_cgroup_that_cannot_be_made(zk_server, tmp_path):
    args = ["run", "--zk", zk_server.hosts, "--", "true"]
    auto = Zkherd(args, tmp_path / "auto.log")
    assert auto.wait() == 0
    assert auto.has("child containment mode=cgroup cgroup=/"), auto.log()
    # A systemd unit without Delegate=yes: systemd owns the unit's cgroup, the runner makes none.
    unit = {"INVOCATION_ID": "0123456789abcdef0123456789abcdef"}
    fallback = Zkherd(args, tmp_path / "fallback.log", env=unit)
    assert fallback.wait() == 0
    assert fallback.has('child containment mode=subreaper .*why="a systemd unit without Delegate=yes'), fallback.log()
    forced = Zkherd(["run", "--zk", zk_server.hosts, "--containment", "cgroup", "--", "true"], tmp_path / "forced.log",
                    env=unit)
    assert forced.wait() == 64
    assert "--containment cgroup: no cgroup can be made" in forced.log()
    assert "Traceback" not in forced.log()


@needs_cgroup
def test_config_restart_waits_for_a_daemon_that_is_slow_to_die(zk_server, zk, zk_base, work, tmp_path):
    """A process killed is not gone yet: one that holds much memory takes a while to exit (its flock
    goes only then). The new child starts only once the old tree is gone."""
    znode, conf = zk_base + "/conf", tmp_path / "conf"
    zk.create(znode, b"0")
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--stop-timeout", "5", "--mirror", "%s=%s" % (conf, znode),
                     "--change-delay", "0", "--", "sh", "-c", 'setsid sh "$0" "$1" "$2" heavy &\n' + STAYS,
                     str(work / "daemon.sh"), str(work), "holder"], tmp_path / "r.log")
    RUNNERS.append(runner)
    for version in range(1, 4):
        daemon_of(work, "holder")
        (work / "holder.pid").unlink()
        zk.set(znode, str(version).encode())
    daemon_of(work, "holder")
    assert overlaps(work) == [], "a daemon was alive when the next child's started"


@pytest.mark.parametrize("mode", ["cgroup", "subreaper"])
def test_a_fenced_child_that_dies_of_the_stop_signal_at_once_is_fenced_not_its_own_exit(
        zk_server, zk_base, fault_proxy, work, tmp_path, mode):
    """Found by the chaos run (docs/reliability.md): the fence signals the tree from its own thread
    and then posts its event; a wrapper that dies of TERM at once (its setsid daemon ignores it) can
    be reaped by the loop before that event is read. The exit must still count as the fence's doing:
    the runner waits for ZooKeeper and the lock again, it does not exit with the child's 143."""
    if mode == "cgroup" and not cgroup_possible():
        pytest.skip("no cgroup v2 can be made here")
    lock, proxy = zk_base + "/l", fault_proxy()
    holder = start_runner(proxy.hosts, lock, work, "holder", "ignores-term", tmp_path, mode=mode, stop_timeout=0.5)
    for fences in range(1, 4):
        old = daemon_of(work, "holder")
        proxy.blackhole()
        holder.wait_log(r"child exited pid=", count=fences)
        assert_gone(old, 10, "the fenced holder's daemon")
        proxy.reset_all()
        proxy.heal()
        holder.wait_log(r"started child pid=", count=fences + 1, timeout=30)
        assert holder.proc.poll() is None, "the runner exited after a fence:\n" + holder.log()[-3000:]
        assert not holder.has("the child exited with code"), holder.log()[-3000:]
        assert holder.has("stopping the child before the session can expire")
