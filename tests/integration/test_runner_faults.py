"""Promise 1 and 2 under faults: never two children under one lock, takeover when the holder is
gone, and no restart for a short disconnect. The overlap checker is the kernel's flock (see
tests/support/runner.py): a child that finds its slot taken records an overlap."""

from __future__ import annotations

import datetime
import re
import signal
import time

import pytest

from tests.support import procs
from tests.support.runner import Zkherd, exclusive_child, overlaps, starts, wait_starts
from tests.support.zkutil import wait_for


def runner(hosts, lock, work, name, tmp_path, timeout=1.0, stop_timeout=0.3, stop_delay=0):
    return Zkherd(["run", "--zk", hosts, "--session-timeout", str(timeout), "--stop-timeout", str(stop_timeout),
                   "--lock", lock, "--", *exclusive_child(work, name=name, stop_delay=stop_delay)],
                  tmp_path / ("%s.log" % name))


def stamp(log_text, pattern, last=False):
    """Wall-clock time of the first (or *last*) log line matching *pattern*."""
    found = [line for line in log_text.splitlines() if re.search(pattern, line)]
    if not found:
        raise AssertionError("no %r in:\n%s" % (pattern, log_text))
    return datetime.datetime.fromisoformat(found[-1 if last else 0].split()[0].replace("Z", "+00:00"))


def handover_times(works, cut, timeout):
    """{trial: seconds from *cut* (monotonic) until the standby's child started in works[trial]},
    each seen within 10 ms. The standby's, not any second start: on a loaded machine a holder with
    a 1 s session may be fenced before the cut and start its child again itself."""
    took = {}

    def handed_over():
        for trial, work in works.items():
            if trial not in took and any(" standby%d " % trial in line for line in starts(work)):
                took[trial] = time.monotonic() - cut
        return len(took) == len(works)

    wait_for(handed_over, timeout, interval=0.01, message=lambda: "standbys to start; handovers so far: %s" % took)
    return took


TRIALS, AT_ONCE = 20, 2  # 20 partitions of a holder, two independent ones (own lock, proxy, pair) at a time


def test_partition_of_the_holder_20_trials(zk_server, zk_base, fault_proxy, tmp_path):
    """The holder is cut off (no RST, no FIN): its child must be dead before the standby starts.
    20 trials as before, run AT_ONCE at a time: each has its own lock, proxy, holder and standby, and
    its handover is timed on its own (from the cut to its standby's child's start)."""
    handovers = []
    for first in range(0, TRIALS, AT_ONCE):
        trials = []
        for trial in range(first, first + AT_ONCE):
            work, lock = tmp_path / ("w%d" % trial), "%s/l%d" % (zk_base, trial)
            proxy = fault_proxy()
            trials.append((trial, work, lock, proxy, runner(proxy.hosts, lock, work, "holder%d" % trial, tmp_path)))
        pairs = []
        for trial, work, lock, proxy, holder in trials:
            wait_starts(work, 1)
            standby = runner(zk_server.hosts, lock, work, "standby%d" % trial, tmp_path)
            pairs.append((trial, work, proxy, holder, standby))
        for pair in pairs:
            pair[4].wait_log("queued for lock")
        cut = time.monotonic()
        for pair in pairs:
            pair[2].blackhole()
        handovers.extend(handover_times({pair[0]: pair[1] for pair in pairs}, cut, timeout=10).values())
        for trial, work, _proxy, holder, standby in pairs:
            assert overlaps(work) == [], "trial %d: two children at once" % trial
            assert holder.has("stopping the child before the session can expire"), holder.log()
            standby.wait_log("started child")  # its child may write starts.log before the runner logs it
            # the holder's last child (it may have been fenced and restarted before the cut) was gone first
            assert stamp(holder.log(), "child exited", last=True) < stamp(standby.log(), "started child")
        for _trial, _work, _proxy, holder, standby in pairs:  # all stopped at once
            holder.kill()
            standby.signal(signal.SIGTERM)
        for _trial, _work, proxy, _holder, standby in pairs:
            standby.wait(15)
            proxy.close()
    assert len(handovers) == TRIALS
    # the standby takes over about one session timeout (1 s) after the cut, not much later
    assert max(handovers) < 4.0, handovers


def test_sigkilled_holder_hands_over_after_the_session_timeout(zk_server, zk_base, tmp_path):
    work = tmp_path / "w"
    holder = runner(zk_server.hosts, zk_base + "/l", work, "holder", tmp_path, timeout=2.0)
    wait_starts(work, 1)
    standby = runner(zk_server.hosts, zk_base + "/l", work, "standby", tmp_path, timeout=2.0)
    standby.wait_log("queued for lock")
    child = holder.child_pid
    killed = time.monotonic()
    holder.kill()
    wait_for(lambda: not procs.pid_alive(child), timeout=3, message="the holder's child to die with its runner")
    wait_starts(work, 2, timeout=10)
    took = time.monotonic() - killed
    assert 1.5 < took < 4.5, took  # the session had to expire first (2 s)
    assert overlaps(work) == []
    standby.stop()


def test_lock_node_deleted_by_hand(zk_server, zk, zk_base, tmp_path):
    """The next in line becomes the holder at once, but starts only once the old child is dead
    (it takes 1 s to stop here)."""
    work = tmp_path / "w"
    holder = runner(zk_server.hosts, zk_base + "/l", work, "holder", tmp_path, timeout=4.0, stop_timeout=3,
                    stop_delay=1.0)
    wait_starts(work, 1)
    standby = runner(zk_server.hosts, zk_base + "/l", work, "standby", tmp_path, timeout=4.0)
    standby.wait_log("queued for lock")
    node = holder.wait_log(r"lock acquired lock=\S+ node=(\S+)")
    zk.delete(node)
    holder.wait_log("lock lost")
    wait_starts(work, 2, timeout=10)
    assert overlaps(work) == []
    assert stamp(holder.log(), "child exited") < stamp(standby.log(), "started child")
    holder.wait_log("queued for lock", count=2)  # back in line
    standby.stop()
    holder.stop()


def test_short_disconnects_do_not_restart_the_child(zk_server, zk_base, fault_proxy, tmp_path):
    work = tmp_path / "w"
    proxy = fault_proxy()
    holder = runner(proxy.hosts, zk_base + "/l", work, "holder", tmp_path, timeout=4.0)
    wait_starts(work, 1)
    standby = runner(zk_server.hosts, zk_base + "/l", work, "standby", tmp_path, timeout=4.0)
    standby.wait_log("queued for lock")
    child = holder.child_pid
    proxy.reset_all()  # the connection drops; kazoo reconnects with the same session
    holder.wait_log("lost contact with ZooKeeper")
    holder.wait_log("contact with ZooKeeper is back session=0x[0-9a-f]+ same_session=True")
    proxy.blackhole()  # a partition shorter than the session timeout
    time.sleep(1.5)
    proxy.heal()
    time.sleep(1.0)
    assert holder.child_pid == child and procs.pid_alive(child)
    assert not holder.has("stopping child")
    assert len(starts(work)) == 1 and overlaps(work) == []
    standby.stop()
    holder.stop()


def test_zookeeper_restart(make_zk_server, tmp_path):
    """Standalone server restarts: a short outage leaves the child alone; a long one makes the
    holder stop its child (it cannot know the session survives), then run it again."""
    server = make_zk_server()
    work = tmp_path / "w"
    # T=5: a restart takes over a second, and the fence acts up to 0.5 T - the stop time after the
    # last contact the leader can be proven to have had (core/session.py)
    holder = runner(server.hosts, "/l", work, "holder", tmp_path, timeout=5.0)
    wait_starts(work, 1)
    standby = runner(server.hosts, "/l", work, "standby", tmp_path, timeout=5.0)
    standby.wait_log("queued for lock")
    server.stop()
    server.start()
    time.sleep(1.0)
    assert not holder.has("stopping child") and len(starts(work)) == 1

    server.stop()
    holder.wait_log("stopping the child before the session can expire", timeout=10)
    holder.wait_log("child exited")
    server.start()
    wait_starts(work, 2, timeout=15)
    assert overlaps(work) == []
    standby.stop()
    holder.stop()


@pytest.mark.slow
def test_ensemble_loses_the_holders_server(zk_ensemble, tmp_path):
    work = tmp_path / "w"
    holder = runner(zk_ensemble.hosts, "/ens-lock", work, "holder", tmp_path, timeout=4.0)
    wait_starts(work, 1)
    standby = runner(zk_ensemble.hosts, "/ens-lock", work, "standby", tmp_path, timeout=4.0)
    standby.wait_log("queued for lock")
    session = int(holder.wait_log(r"session=(0x[0-9a-f]+)"), 16)
    server = next(s for s in zk_ensemble.servers if "sid=0x%x" % session in s.four_letter("cons"))
    child = holder.child_pid
    zk_ensemble.kill(zk_ensemble.index(server))
    holder.wait_log("lost contact with ZooKeeper")
    holder.wait_log("contact with ZooKeeper is back session=0x[0-9a-f]+ same_session=True", timeout=10)
    time.sleep(0.5)
    assert holder.child_pid == child and procs.pid_alive(child)
    assert not holder.has("stopping child")
    assert len(starts(work)) == 1 and overlaps(work) == []
    standby.stop()
    holder.stop()


def test_registration_is_made_again_after_a_session_expiry(zk_server, zk, zk_base, fault_proxy, tmp_path):
    """Promise 3: same data, new node, the (lock-less) child keeps running; removed at exit."""
    proxy = fault_proxy()
    runner = Zkherd(["run", "--zk", proxy.hosts, "--session-timeout", "1", "--register", zk_base + "/svc/web",
                     "--data", "host=a port=80", "--", "sleep", "1000"], tmp_path / "r.log")
    first = runner.wait_log(r"registered node=(\S+)")
    runner.wait_log("started child")  # registered first, then started
    child = runner.child_pid
    proxy.blackhole()
    wait_for(lambda: zk.exists(first) is None, timeout=10, message="the server to expire the session")
    proxy.reset_all()
    proxy.heal()
    runner.wait_log("the ZooKeeper session expired")
    second = runner.wait_log(r"registered node=(\S+)", count=2)
    assert second != first and zk.get(second)[0] == b"host=a port=80"
    assert runner.child_pid == child and procs.pid_alive(child)
    runner.stop()
    assert zk.get_children(zk_base + "/svc") == []


def test_holder_that_got_the_lock_across_a_connection_loss_still_sees_its_lock_node_deleted(
        zk_server, zk, zk_base, fault_proxy, tmp_path):
    """Found by the chaos run (seed 1121): kazoo drops every watch when a connection is lost and does
    not set them again on the next one (same session). A runner that found itself holding the lock
    on reconnecting had no watch on its own nodes, so it missed their deletion by hand and its child
    ran on while the next in line started."""
    work = tmp_path / "w"
    holder = runner(zk_server.hosts, zk_base + "/l", work, "holder", tmp_path, timeout=4.0)
    wait_starts(work, 1)
    proxy = fault_proxy()
    second = runner(proxy.hosts, zk_base + "/l", work, "second", tmp_path, timeout=4.0)
    second.wait_log("queued for lock")
    third = runner(zk_server.hosts, zk_base + "/l", work, "third", tmp_path, timeout=4.0)
    third.wait_log("queued for lock")
    proxy.blackhole()  # the second misses the holder's leaving...
    holder.stop()
    proxy.reset_all()  # ...and reconnects with the same session, every watch gone
    proxy.heal()
    second.wait_log("contact with ZooKeeper is back session=0x[0-9a-f]+ same_session=True")
    wait_starts(work, 2)
    node = second.wait_log(r"lock acquired lock=\S+ node=(\S+)")
    zk.delete(node)
    second.wait_log("lock lost", timeout=5)
    wait_starts(work, 3, timeout=10)  # the third, once the second's child is gone
    assert overlaps(work) == []
    assert stamp(second.log(), "child exited") < stamp(third.log(), "started child")
    third.stop()
    second.stop()
