"""The wheel the runner role installs is built from pyproject.toml's package list: every package
of the runner must be in it (the move to core/, run/, ... left them out, and `zkherd` was a
traceback on every host while the tests, run from the checkout, passed)."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
REPO = Path(__file__).resolve().parents[2]


def test_every_runner_package_is_packaged():
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packaged = set(setup["packages"])
    root = REPO / setup["package-dir"]["zkherd"]
    found = {".".join(("zkherd",) + init.parent.relative_to(root).parts) for init in root.rglob("__init__.py")}
    assert sorted(found - packaged) == []
    assert sorted(packaged - found - {"zkherd.common"}) == []
