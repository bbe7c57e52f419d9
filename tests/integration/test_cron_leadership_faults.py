"""Cron and leadership under faults (issue 14, found by an adversarial read): each test holds
docs/cron.md's "What is guaranteed" / "Fenced by the leadership it claimed under" to a fault, on a
real ZooKeeper with real `zkherd elect` and `zkherd cron` processes: --catch-up after a lost claim
reply or a leadership move between claim and start, elect under the cron role's sandbox."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
from kazoo.exceptions import NotEmptyError

from tests.support.runner import REPO, Zkherd
from tests.support.ticks import tick_with_room
from tests.support.zkutil import wait_for

ROOM = 30  # seconds left in the tick for the scenario: a whole 30 s tick, as when it was entered at its start
BEFORE_END = 5  # --catch-up until 5 s before the tick's end (25 s of a 30 s tick)


def folder(tmp_path, name):
    path = tmp_path / name
    path.mkdir(mode=0o700)
    return path


def elect(hosts, election, ident, rundir, log, *extra, prefix=()):
    proc = Zkherd(["elect", "--zk", hosts, "--election", election, "--id", ident, *extra], log,
                  env={"ZKHERD_RUN_DIR": str(rundir)}, prefix=prefix)
    proc.wait_log("joined the pool")
    return proc


def cron_args(hosts, election, ident, runs, tick, *extra):
    return ["cron", "--zk", hosts, "--election", election, "--id", ident, "--name", "job", "--tick", str(tick),
            *extra, "--", "sh", "-c", "echo %s >> %s" % (ident, runs)]


def a_tick_with_room():
    """(tick, start): a tick length whose current tick has ROOM s left (tests/support/ticks.py),
    instead of sleeping up to 30 s to the start of a 30 s tick."""
    return tick_with_room(ROOM)


def ran(runs):
    return runs.read_text().split() if runs.exists() else []


def no_traceback(*runners):
    for runner in runners:
        assert "Traceback" not in runner.log(), runner.log()[-3000:]


def test_catch_up_runs_the_tick_when_the_claim_reply_is_lost_and_the_leader_is_cut_off(
        zk_server, zk, zk_base, tmp_path, fault_proxy):
    """docs/cron.md: "With --catch-up S, exactly once if some member's cron fired at the tick and that
    member stays up until S seconds after the tick's start, and S is longer than the session timeout".

    A leads (elect and cron through one proxy, session 4 s), B is up all along with --catch-up 25.
    At the tick both crons fire. A's marker create reaches the server, its reply is lost and A's host
    is cut off (the proxy blackholes): A's cron gives up (69) without running the job, A's elect
    session expires, B leads within the catch-up window - and finds A's marker: "this tick already
    ran". Nobody ran the tick although B was up the whole time."""
    election, proxy = zk_base + "/cron", fault_proxy()
    a_dir, b_dir, runs = folder(tmp_path, "a"), folder(tmp_path, "b"), tmp_path / "runs"
    a = elect(proxy.hosts, election, "A", a_dir, tmp_path / "A.log", "--session-timeout", "4")
    a.wait_log("this member leads the pool")
    b = elect(zk_server.hosts, election, "B", b_dir, tmp_path / "B.log")
    zk.ensure_path(election + "/ticks/job")  # the claim is one create
    a_cron = b_cron = None
    try:
        tick, start = a_tick_with_room()
        proxy.lose_reply("create", 1, then="blackhole")
        b_cron = Zkherd(cron_args(zk_server.hosts, election, "B", runs, tick, "--catch-up", str(tick - BEFORE_END),
                                  "--timeout", "10"), tmp_path / "B-cron.log", env={"ZKHERD_RUN_DIR": str(b_dir)})
        a_cron = Zkherd(cron_args(proxy.hosts, election, "A", runs, tick, "--timeout", "3"),
                        tmp_path / "A-cron.log", env={"ZKHERD_RUN_DIR": str(a_dir)})
        assert proxy.wait_fired(timeout=10)
        assert a_cron.wait(30) == 69, a_cron.log()
        assert b_cron.wait(40) == 0, b_cron.log()
        assert int(time.time()) // tick * tick == start, "the scenario ran over a tick boundary"
        marker = zk.get("%s/ticks/job/%d" % (election, start))[0].decode()
        # A's claim, made by the server (reply lost), taken over by B: B's committed data now
        assert marker.startswith("B ") and " started " in marker, marker
        assert "claimed_by=A" in b_cron.log(), b_cron.log()[-2000:]
        assert ran(runs) == ["B"], "the tick ran %r; B's log:\n%s\nA's log:\n%s" % (
            ran(runs), b_cron.log()[-2000:], a_cron.log()[-2000:])
    finally:
        proxy.heal()
        for proc in (a_cron, b_cron, a, b):
            if proc is not None:
                proc.stop()
        no_traceback(a, b)


def test_catch_up_runs_the_tick_when_leadership_moves_between_claim_and_start(
        zk_server, zk, zk_base, tmp_path, fault_proxy):
    """The same promise. A's cron claims the tick (the create's reply arrives), then A's elect leaves
    (SIGTERM: a restart, a deploy) before A's cron has watched the leader's node - here held there by a
    one-second blip of A's cron connection, in life any scheduling delay between the two requests.
    A's cron then says "leadership moved while the job was starting; not running it" (76) and leaves
    its marker; B, up all along with --catch-up, leads and finds that marker. Nobody ran the tick."""
    election, proxy = zk_base + "/cron", fault_proxy()
    a_dir, b_dir, runs = folder(tmp_path, "a"), folder(tmp_path, "b"), tmp_path / "runs"
    a = elect(zk_server.hosts, election, "A", a_dir, tmp_path / "A.log")
    a.wait_log("this member leads the pool")
    b = elect(zk_server.hosts, election, "B", b_dir, tmp_path / "B.log")
    zk.ensure_path(election + "/ticks/job")
    a_cron = b_cron = None
    try:
        tick, start = a_tick_with_room()
        proxy.after_reply("create", 1, then="blackhole")  # A's claim is answered, then A's cron is held
        b_cron = Zkherd(cron_args(zk_server.hosts, election, "B", runs, tick, "--catch-up", str(tick - BEFORE_END)),
                        tmp_path / "B-cron.log", env={"ZKHERD_RUN_DIR": str(b_dir)})
        a_cron = Zkherd(cron_args(proxy.hosts, election, "A", runs, tick, "--timeout", "10"),
                        tmp_path / "A-cron.log", env={"ZKHERD_RUN_DIR": str(a_dir)})
        assert proxy.wait_fired(timeout=10)
        a.stop()  # A's elect leaves the pool: B leads at once
        b.wait_log("this member leads the pool")
        time.sleep(0.5)
        proxy.heal()
        assert a_cron.wait(30) == 76, a_cron.log()
        assert "leadership moved while the job was starting" in a_cron.log()
        assert b_cron.wait(40) == 0, b_cron.log()
        assert int(time.time()) // tick * tick == start, "the scenario ran over a tick boundary"
        assert ran(runs) == ["B"], "the tick ran %r; B's log:\n%s" % (ran(runs), b_cron.log()[-2000:])
    finally:
        proxy.heal()
        for proc in (a_cron, b_cron, a, b):
            if proc is not None:
                proc.stop()
        no_traceback(a, b)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare -m")
@pytest.mark.parametrize("sandboxed", ["control", "read-only-run", "read-only-leases"])
def test_elect_under_the_roles_sandbox_publishes_its_lease(zk_server, zk, zk_base, tmp_path, sandboxed):
    """roles/cron/templates/zkherd-elect.service.j2 runs `zkherd elect` as root with
    ProtectSystem=strict: /run is read-only for it but its RuntimeDirectory= (the lease folder, given
    with --lease-dir to elect and cron alike). Here: the run folder is bound read-only in elect's own
    mount namespace, the lease folder stays writable - the lease is written there. With the lease
    folder itself read-only, elect says so once, as a WARNING (not at debug, as before)."""
    election, rundir, leases = zk_base + "/cron", folder(tmp_path, "run"), folder(tmp_path, "leases")
    leases.chmod(0o755)
    readonly = {"control": None, "read-only-run": rundir, "read-only-leases": leases}[sandboxed]
    remount = ' && mount -o remount,bind,ro "$0"' if readonly else ""
    prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c",
              'mount --bind "$0" "$0"%s && exec "$@"' % remount, str(readonly or rundir)]
    a = elect(zk_server.hosts, election, "A", rundir, tmp_path / "A.log", "--lease-dir", str(leases), prefix=prefix)
    try:
        a.wait_log("this member leads the pool")
        if sandboxed == "read-only-leases":
            a.wait_log("cannot write the leadership lease")
            time.sleep(1.0)
            assert a.log().count("cannot write the leadership lease") == 1, a.log()[-2000:]
            assert "WARNING cannot write the leadership lease" in a.log(), a.log()[-2000:]
            return
        wait_for(lambda: [p for p in leases.iterdir() if p.name.startswith("zkherd-lease-")], 10,
                 message=lambda: "no lease written; elect's log:\n%s" % a.log()[-2000:])
        lease = next(p for p in leases.iterdir() if p.name.startswith("zkherd-lease-"))
        assert lease.stat().st_mode & 0o777 == 0o644
        assert not [p for p in rundir.iterdir() if p.name.startswith("zkherd-lease-")]
    finally:
        a.stop()
        no_traceback(a)


def is_leader(hosts, election, ident):
    return subprocess.run([sys.executable, "-m", "zkherd", "is-leader", "--zk", hosts, "--election", election,
                           "--id", ident], cwd=REPO, capture_output=True, text=True, timeout=30, check=False)


def test_elect_converges_after_the_whole_pool_is_deleted_and_logs_agree_with_is_leader(
        zk_server, zk, zk_base, tmp_path):
    """Probe (passes): `rm -r` of the election folder, members, ticks and all, twice in a row."""
    election = zk_base + "/cron"
    members = {i: elect(zk_server.hosts, election, i, folder(tmp_path, i), tmp_path / ("%s.log" % i))
               for i in ("A", "B", "C")}
    try:
        members["A"].wait_log("this member leads the pool")
        for _round in range(2):
            zk.create(election + "/ticks/job/1", b"x", makepath=True)
            for _attempt in range(20):  # members rejoin (makepath) while the folder is being emptied
                try:
                    zk.delete(election, recursive=True)
                    break
                except NotEmptyError:
                    continue
            wait_for(lambda: len([n for n in (zk.get_children(election) if zk.exists(election) else [])
                                  if n.startswith("member-")]) == 3, 10)
            time.sleep(0.5)
            leaders = [i for i in members if is_leader(zk_server.hosts, election, i).returncode == 0]
            assert len(leaders) == 1, leaders
            said = {i: members[i].log().rsplit("this member ", 1)[-1].startswith("leads") for i in members}
            assert [i for i, lead in said.items() if lead] == leaders, said
    finally:
        for proc in members.values():
            proc.stop()
        no_traceback(*members.values())
