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


# The files that take longest (`pytest --durations=0`, summed per file: 40 s and more on 2 cores),
# longest first. scripts/test.sh runs the suite with --dist loadfile --no-loadscope-reorder, so
# these start first and the short files fill in around them: in collection order (or xdist's
# default, most tests first) a 2-minute file started last was the suite's tail, one worker busy
# and four idle. A stale list costs only time.
SLOW_FILES = [
    "test_reconnect.py", "test_zookeeper_role_reconfig_faults.py", "test_containment.py", "test_fence.py",
    "test_chaos.py", "test_roles_faults16.py", "test_rolefix.py", "test_zookeeper_role_prod.py",
    "test_rolemetrics.py", "test_znode_tree.py", "test_i17_demo_runner_role.py", "test_roles_secure_defaults.py",
    "test_zookeeper_role_reconfig.py", "test_znode.py", "test_farm_ansible.py", "test_write_results.py",
    "test_runner_faults.py", "test_drain_faults.py", "test_tplroles_e2e.py", "test_untrusted_values.py",
    "test_election.py", "test_local_folders.py", "test_status_faults.py",
]


def pytest_collection_modifyitems(session, config, items):
    rank = {"tests/integration/" + name: place for place, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest as collected
