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
