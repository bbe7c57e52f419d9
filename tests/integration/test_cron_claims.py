"""Cron's tick claims (issue 14, found by a second adversarial read; each failed before its fix):

- F1: a leader whose `elect` was SIGKILLed a moment before its cron fires still claims and commits
  the tick (its lease has more than the stop margin left), starts the job, and the fence kills it
  a second or two later; the --catch-up member then finds a `started` marker and skips the tick.
  docs/cron.md promises exactly once with --catch-up when the old leader's `elect` is SIGKILLed.
- F2: a `claimed` marker whose MEMBER is the live leader's own node (a run of this leader that
  ended between claim and commit: SIGTERM/SIGKILL of the cron run, --timeout spent after the claim)
  is never taken over - not by the leader's later runs in the same tick (--tick > cron's period,
  a run by hand), not by anybody: the tick is lost although the leader is up all along.
- F3: a hand-edited marker whose MEMBER holds a NUL: the server refuses the exists (BadArguments),
  the run exits 69 instead of "this tick already ran" (docs/cron.md: garbage data means ran).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.test_cron14 import catch_up_for, runs, two_members_in_a_tick
from tests.support.runner import REPO


@pytest.fixture
def pool_led_by_h0(zk, zk_base):
    election = zk_base + "/cron"
    zk.create(election + "/member-", b"h0", ephemeral=True, sequence=True, makepath=True)
    return election


def cron_cmd(hosts, election, tmp_path, ident, shell, *args, name="job"):
    return [sys.executable, "-m", "zkherd", "cron", "--zk", hosts, "--election", election, "--id", ident,
            "--timeout", "10", "--name", name, *args, "--", "sh", "-c", shell]


def env(tmp_path, host=None):
    """Each host its own run folder (the cron job's flock); A's is its elect's (the lease)."""
    folder = tmp_path if host is None else tmp_path / host
    folder.mkdir(mode=0o700, exist_ok=True)
    return dict(os.environ, ZKHERD_RUN_DIR=str(folder))


def test_f1_a_leader_whose_elect_was_just_killed_does_not_eat_the_catch_up_tick(zk_server, zk, zk_base, tmp_path):
    election = zk_base + "/cron"
    a, b, tick = two_members_in_a_tick(zk_server.hosts, election, tmp_path)
    try:
        a.proc.send_signal(signal.SIGKILL)  # A's elect dies; A's host and its cron are fine
        # A's cron fires at once: its lease still has ~3.5 s, more than margin + stop time (1.6 s)
        on_a = subprocess.Popen(cron_cmd(zk_server.hosts, election, tmp_path, "A",
                                         "sleep 2.5; echo A >> %s/runs" % tmp_path, "--tick", str(tick)),
                                cwd=REPO, env=env(tmp_path), stderr=subprocess.PIPE, text=True)
        on_b = subprocess.run(cron_cmd(zk_server.hosts, election, tmp_path, "B", "echo B >> %s/runs" % tmp_path,
                                       "--tick", str(tick), "--catch-up", catch_up_for(tick)),
                              cwd=REPO, env=env(tmp_path, "b"), capture_output=True, text=True, timeout=60,
                              check=False)
        a_err = on_a.communicate(timeout=60)[1]
        # exactly once (docs/cron.md, "With --catch-up S, exactly once ... its elect SIGKILLed")
        assert len(runs(tmp_path)) == 1, "A exit %s:\n%s\nB exit %s:\n%s" % (
            on_a.returncode, a_err, on_b.returncode, on_b.stderr)
    finally:
        a.stop()
        b.stop()


def test_f2_a_claim_left_by_an_ended_run_of_the_live_leader_loses_the_tick(zk_server, zk, pool_led_by_h0, tmp_path):
    election = pool_led_by_h0  # h0 leads (a live member node)
    leader = "%s/%s" % (election, sorted(zk.get_children(election))[0])
    start = int(time.time() // 3600 * 3600)
    # what a run of h0 leaves when it is stopped (SIGTERM before the job, SIGKILL, --timeout) after its claim
    zk.create("%s/ticks/job/%d" % (election, start), b"h0 0123abcd 3600 claimed %s" % leader.encode(), makepath=True)
    result = subprocess.run(cron_cmd(zk_server.hosts, election, tmp_path, "h0", "echo h0 >> %s/runs" % tmp_path,
                                     "--tick", "3600"),
                            cwd=REPO, env=env(tmp_path), capture_output=True, text=True, timeout=60, check=False)
    assert runs(tmp_path) == ["h0"], result.stderr  # nobody ever ran this tick; h0 led all along


def test_f3_a_nul_in_a_hand_edited_claim_is_garbage_not_an_error(zk_server, zk, pool_led_by_h0, tmp_path):
    election = pool_led_by_h0
    start = int(time.time() // 3600 * 3600)
    zk.create("%s/ticks/job/%d" % (election, start), b"x tok 3600 claimed /a\x00b", makepath=True)
    result = subprocess.run(cron_cmd(zk_server.hosts, election, tmp_path, "h0", "echo h0 >> %s/runs" % tmp_path,
                                     "--tick", "3600"),
                            cwd=REPO, env=env(tmp_path), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "this tick already ran" in result.stderr, (result.returncode, result.stderr)
