"""A run whose elect was SIGKILLed just before the tick (issue 14, found by a third adversarial read,
failed before the fix): it waits for a beat of the member's lease until the lease leaves a job too
little time - which may be longer than --timeout (elect's session 20 s) - and then exits 76 without
claiming, as docs/cron.md says, never 69 "ZooKeeper did not answer"."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.integration.test_cron14 import member, runs
from tests.integration.test_cron_claims import env
from tests.support.runner import REPO


@pytest.mark.parametrize("elect_args", [
    (),
    ("--session-timeout", "20"),  # the lease runs out after --timeout: the wait for a beat is not a timeout
])
def test_defaults_a_run_whose_elect_was_just_killed_exits_76_not_69(zk_server, zk_base, tmp_path, elect_args):
    election = zk_base + "/cron"
    a = member(zk_server.hosts, election, "A", tmp_path, *elect_args)  # default --session-timeout, or 20 s
    a.wait_log("this member leads the pool")
    try:
        time.sleep(1.0)
        a.proc.send_signal(signal.SIGKILL)
        started = time.monotonic()
        cmd = [sys.executable, "-m", "zkherd", "cron", "--zk", zk_server.hosts, "--election", election]
        result = subprocess.run([*cmd, "--id", "A", "--name", "job", "--", "sh", "-c", "echo A >> %s/runs" % tmp_path],
                                cwd=REPO, env=env(tmp_path), capture_output=True, text=True, timeout=60, check=False)
        took = time.monotonic() - started
        assert runs(tmp_path) == []
        assert result.returncode == 76, (result.returncode, "%.1fs" % took, result.stderr)
    finally:
        a.stop()
