"""Issue 14, cron's honest semantics (docs/cron.md): markers collected by age, per job and for stale
jobs; hand edits of markers; --catch-up when the leader dies mid-tick; exactly once per tick while
a member is up. Real ZooKeeper, real `zkherd elect` and `zkherd cron` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.runner import REPO, Zkherd
from tests.support.ticks import tick_with_room
from tests.support.zkutil import wait_for

DAY = 86400


def cron(hosts, election, tmp_path, *args, ident="h0", name="job", run_dir=None):
    """One host's cron run; its run folder (the job's local lock, its elect's lease) is *run_dir*,
    tmp_path by default."""
    return subprocess.run([sys.executable, "-m", "zkherd", "cron", "--zk", hosts, "--election", election, "--id", ident,
                           "--timeout", "10", "--name", name, *args, "--", "sh", "-c",
                           "echo %s >> %s/runs" % (ident, tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, ZKHERD_RUN_DIR=str(run_dir or tmp_path)))


def runs(tmp_path):
    path = Path(tmp_path) / "runs"
    return path.read_text().split() if path.exists() else []


def member(hosts, election, ident, tmp_path, *extra):
    proc = Zkherd(["elect", "--zk", hosts, "--election", election, "--id", ident, *extra],
                  tmp_path / ("%s.log" % ident), env={"ZKHERD_RUN_DIR": str(tmp_path)})
    proc.wait_log("joined the pool")
    return proc


def two_members_in_a_tick(hosts, election, tmp_path, room=28):
    """A (session 4 s) leads and B follows; returns (a, b, tick): a tick length whose current tick
    has at least *room* s left (as a 30 s tick entered at most 2 s ago did; tests/support/ticks.py).
    A --catch-up of catch_up_for(tick) then ends at least room - 5 s from now."""
    a = member(hosts, election, "A", tmp_path, "--session-timeout", "4")
    a.wait_log("this member leads the pool")
    b = member(hosts, election, "B", tmp_path)
    return a, b, tick_with_room(room)[0]


def catch_up_for(tick):
    """--catch-up until 5 s before the tick's end (25 s for a 30 s tick)."""
    return str(tick - 5)


@pytest.fixture
def pool_led_by_h0(zk, zk_base):
    election = zk_base + "/cron"
    zk.create(election + "/member-", b"h0", ephemeral=True, sequence=True, makepath=True)
    return election


def ok(result):
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result


def test_markers_are_named_by_the_tick_start_and_collected_by_age(zk_server, zk, pool_led_by_h0, tmp_path):
    election, now = pool_led_by_h0, int(time.time())
    job = election + "/ticks/job"
    keep = {now - 60, now - DAY, now + 60}  # young, or a clock a little ahead
    gone = {now - 3 * DAY, now - 2 * DAY - 10, now + 3 * DAY}  # old, and one from far in the future
    for start in keep | gone:
        zk.create("%s/%d" % (job, start), b"h0 x 60", makepath=True)
    zk.create(job + "/not-a-marker", b"")  # a name that is no tick's: never touched
    ok(cron(zk_server.hosts, election, tmp_path, "--tick", "60"))
    current = str(now // 60 * 60)
    wait_for(lambda: not gone & {int(n) for n in zk.get_children(job) if n.isdigit()}, 10,
             message=lambda: zk.get_children(job))
    left = set(zk.get_children(job))
    assert {str(s) for s in keep} | {current, "not-a-marker"} <= left
    fields = zk.get("%s/%s" % (job, current))[0].decode().split()  # ID TOKEN TICK STATE MEMBER
    assert [fields[0], fields[2], fields[3]] == ["h0", "60", "started"], fields


def test_a_shorter_tick_job_of_the_same_name_keeps_a_longer_ticks_current_marker(
        zk_server, zk, pool_led_by_h0, tmp_path):
    """Review rev2 M2 (a): a weekly job and a --tick 60 job share a --name (documented as a mistake,
    but it must not lose the weekly job's marker): the weekly marker of 3 days ago stays."""
    election, now = pool_led_by_h0, int(time.time())
    weekly = "%s/ticks/job/%d" % (election, now - 3 * DAY)
    zk.create(weekly, b"h0 x %d started /x" % (7 * DAY), makepath=True)
    ok(cron(zk_server.hosts, election, tmp_path, "--tick", "60"))
    time.sleep(1.0)  # collection is fire and forget: give a delete the time to land
    assert zk.exists(weekly) is not None, zk.get_children(election + "/ticks/job")


def test_a_future_marker_is_not_the_newest_of_another_job(zk_server, zk, pool_led_by_h0, tmp_path):
    """Review rev2 M2 (b): a weekly job's current marker (3 days old) is kept even when a marker from
    the future (a clock ahead, a hand edit) sorts after it."""
    election, now = pool_led_by_h0, int(time.time())
    current = "%s/ticks/weekly/%d" % (election, now - 3 * DAY)
    zk.create(current, b"h0 x %d" % (7 * DAY), makepath=True)
    zk.create("%s/ticks/weekly/%d" % (election, now + DAY), b"h0 x %d" % (7 * DAY))
    ok(cron(zk_server.hosts, election, tmp_path, "--tick", "60", name="minutely"))
    time.sleep(1.0)
    assert zk.exists(current) is not None, zk.get_children(election + "/ticks/weekly")


def test_a_stale_job_is_collected_by_another_jobs_run(zk_server, zk, pool_led_by_h0, tmp_path):
    election, now = pool_led_by_h0, int(time.time())
    for start in (now - 4 * DAY, now - 3 * DAY):
        zk.create("%s/ticks/old-job/%d" % (election, start), b"h0 x 60", makepath=True)
    # a weekly job that ran 3 days ago is not stale: 10 of its ticks are kept
    zk.create("%s/ticks/weekly/%d" % (election, now - 3 * DAY), b"h0 x %d" % (7 * DAY), makepath=True)
    ok(cron(zk_server.hosts, election, tmp_path, "--tick", "60", name="new-job"))
    wait_for(lambda: zk.exists(election + "/ticks/old-job") is None, 10,
             message=lambda: zk.get_children(election + "/ticks"))
    assert zk.get_children(election + "/ticks/weekly") == [str(now - 3 * DAY)]
    assert runs(tmp_path) == ["h0"]


def test_hand_edited_markers_never_crash_and_never_run_a_tick_twice(zk_server, zk, pool_led_by_h0, tmp_path):
    election = pool_led_by_h0
    job = election + "/ticks/job"
    ok(cron(zk_server.hosts, election, tmp_path, "--tick", "3600"))
    current = list(zk.get_children(job))
    assert len(current) == 1 and runs(tmp_path) == ["h0"]
    marker = "%s/%s" % (job, current[0])
    zk.set(marker, b"\xff\xfe garbage")  # data edited by hand: still a claimed tick
    assert "this tick already ran" in ok(cron(zk_server.hosts, election, tmp_path, "--tick", "3600")).stderr
    zk.delete(marker)
    zk.create(marker + "/child", b"", makepath=True)  # a folder where the marker was
    zk.create("%s/%d" % (job, int(time.time()) + 3 * DAY), b"")  # one from the future
    ok(cron(zk_server.hosts, election, tmp_path, "--tick", "3600"))
    assert runs(tmp_path) == ["h0"]
    zk.delete(marker, recursive=True)  # deleted: the tick may run again (docs/cron.md says so)
    ok(cron(zk_server.hosts, election, tmp_path, "--tick", "3600"))
    assert runs(tmp_path) == ["h0", "h0"]


@pytest.mark.parametrize("catch_up", [False, True])
def test_the_leader_dies_at_the_tick_start(zk_server, zk, zk_base, tmp_path, catch_up):
    """A (its `elect` SIGKILLed, its host's cron silent) still leads when B's cron fires, until its
    session expires: without --catch-up the tick is lost, with it B runs it once."""
    election = zk_base + "/cron"
    a, b, tick = two_members_in_a_tick(zk_server.hosts, election, tmp_path)
    try:
        a.proc.send_signal(signal.SIGKILL)
        extra = ["--catch-up", catch_up_for(tick)] if catch_up else []
        started = time.monotonic()
        result = ok(cron(zk_server.hosts, election, tmp_path, "--tick", str(tick), *extra, ident="B"))
        if catch_up:
            assert runs(tmp_path) == ["B"], result.stderr
            assert "catching up on the tick" in result.stderr
            # another late run of the same tick finds the marker
            assert "this tick already ran" in ok(cron(zk_server.hosts, election, tmp_path, "--tick", str(tick),
                                                      *extra, ident="B")).stderr
            assert runs(tmp_path) == ["B"]
        else:
            assert runs(tmp_path) == [] and time.monotonic() - started < 4
    finally:
        a.stop()
        b.stop()


def test_a_leader_whose_member_is_dead_does_not_claim_the_tick(zk_server, zk, zk_base, tmp_path):
    """A's `elect` is frozen (SIGSTOP) but A's crontab fires: its lease runs out, so A leaves the
    tick to B, whose --catch-up run takes it once A's session expired."""
    election = zk_base + "/cron"
    a, b, tick = two_members_in_a_tick(zk_server.hosts, election, tmp_path)
    try:
        a.proc.send_signal(signal.SIGSTOP)
        time.sleep(3)  # A's lease: under a second left
        on_a = cron(zk_server.hosts, election, tmp_path, "--tick", str(tick), ident="A")
        assert on_a.returncode == 76 and "not claiming the tick" in on_a.stderr, on_a.stderr
        ok(cron(zk_server.hosts, election, tmp_path, "--tick", str(tick), "--catch-up", catch_up_for(tick), ident="B"))
        assert runs(tmp_path) == ["B"]
    finally:
        a.proc.send_signal(signal.SIGCONT)
        a.stop()
        b.stop()


def test_exactly_once_per_tick_while_members_are_up(zk_server, zk, zk_base, tmp_path):
    """Three members, every host's cron fires each tick (0.3 s apart, the runs overlapping), leadership
    moves by SIGTERM mid-run: each tick ran exactly once. (A 3 s tick holds a tick's runs; a firing
    that spilled over into the next tick would only make the next firing wait for the tick after.)"""
    election, tick = zk_base + "/cron", 3
    hosts_dirs = {ident: tmp_path / ident for ident in ("h0", "h1", "h2")}  # each host its own run folder
    for folder in hosts_dirs.values():
        folder.mkdir(mode=0o700)
    members = {ident: member(zk_server.hosts, election, ident, hosts_dirs[ident]) for ident in hosts_dirs}
    members["h0"].wait_log("this member leads the pool")
    fired = []
    try:
        with ThreadPoolExecutor(3) as hosts:
            for index in range(4):
                if index or time.time() % tick > 0.5:  # the first firing goes at once early in a tick
                    time.sleep(tick - time.time() % tick + 0.05)
                fired.append(int(time.time()) // tick)
                if index == 2:
                    members["h0"].proc.send_signal(signal.SIGTERM)
                results = []
                for ident in ("h0", "h1", "h2"):
                    if index < 2 or ident != "h0":
                        results.append(hosts.submit(cron, zk_server.hosts, election, tmp_path, "--tick", str(tick),
                                                    ident=ident, run_dir=hosts_dirs[ident]))
                        time.sleep(0.3)
                for result in results:
                    ok(result.result())
        assert len(set(fired)) == 4
        assert len(runs(tmp_path)) == 4, runs(tmp_path)
        assert runs(tmp_path)[-1] == "h1"
    finally:
        for proc in members.values():
            proc.stop()
