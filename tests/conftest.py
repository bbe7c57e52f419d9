"""Every test's runners write their state files (telemetry/statefile.py) into a folder of this
run, not into the machine's /run/zkherd: their default --state-dir is $RUNTIME_DIRECTORY (pytest-xdist's
workers inherit it). A test of that default sets its own environment."""

from __future__ import annotations

import os
import shutil
import tempfile

_made = []


def pytest_configure(config):
    if "RUNTIME_DIRECTORY" not in os.environ:
        folder = tempfile.mkdtemp(prefix="zkherd-test-state-")
        os.chmod(folder, 0o755)
        os.environ["RUNTIME_DIRECTORY"] = folder
        _made.append(folder)


def pytest_unconfigure(config):
    for folder in _made:
        shutil.rmtree(folder, ignore_errors=True)


# The slowest test files start first (scripts/test.sh passes --no-loadscope-reorder): with two
# workers taking whole files, a long file started last leaves one worker idle at the end (the
# suite's 20-minute budget).
SLOW_FIRST = ("test_reconnect.py", "test_chaos.py", "test_cron_leadership_faults.py",
              "test_zookeeper_role_reconfig_faults.py", "test_fence.py", "test_cron14.py", "test_runner_faults.py",
              "test_cron_claims.py", "test_drain_faults2.py", "test_rolemetrics.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)
    items.sort(key=rank)  # stable: the order inside a file stays
