"""The runner role, whole, by real ansible-playbook on this machine (a localhost-style case of
run_cases): a real virtual environment, a real wheel, a real offline pip. Issue 17: the first run
installed zkherd twice (the install, then a --force-reinstall of the same wheel), and every run built
the wheel again. Now the first run installs once and a second run builds and changes nothing; the
wheel is kept per source digest, so only a changed source is built again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.playbook import REPO, run_cases

BUILD = "Build the zkherd wheel from the collection source (on the controller, once per source)"
INSTALL = "Install the dependencies (and zkherd when missing or of another version)"
REINSTALL = "Reinstall zkherd from the changed wheel of the same version"
FIRST_TASK = "Look at the credentials file on the host (its checksum only)"


def box_wheels():
    """The dependency wheels (and setuptools) the demo's boxes install offline from (cached)."""
    return subprocess.run([str(REPO / "scripts/box-wheels.sh")], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_runner_role_installs_once_and_a_rerun_changes_nothing(tmp_path):
    case = {"runner_venv": str(tmp_path / "venv"), "runner_python": sys.executable, "runner_packages": [],
            "runner_wheel_dir": box_wheels(), "runner_wheel_cache": str(tmp_path / "cache"),
            "runner_link": "", "runner_config_dir": str(tmp_path / "etc"), "zkherd_auth": "zkherd:secret"}
    # The role twice in one play (one ansible-playbook start, seconds of CPU less): the second
    # include is a rerun, it registers everything it uses again.
    include = {"name": "runner role", "ansible.builtin.include_role": {"name": "zkherd.ops.runner"}}
    done = run_cases({"host": case}, [include, include], forks=1).host("host")
    assert done.failure() is None, done.output
    runs, records = [], [(r["task"].split(" : ", 1)[-1], r["status"]) for r in done.records]
    for task, status in records:
        if task == FIRST_TASK:
            runs.append({})
        if runs:
            runs[-1][task] = status
    first, again = runs
    assert first[BUILD] == "changed" and first[INSTALL] == "changed"
    assert first[REINSTALL] == "skipped", "the first run installed zkherd twice"
    changed = [task for task, status in again.items() if status == "changed"]
    assert changed == [], "a rerun with the same source changed %s" % changed
    assert again[BUILD] == "ok"  # the cached wheel: nothing built
    version = subprocess.run([str(tmp_path / "venv/bin/zkherd"), "--version"], capture_output=True, text=True,
                             check=False)
    assert version.returncode == 0 and version.stdout.startswith("zkherd "), version
    check_the_wheel_cache(tmp_path, tmp_path / "cache")


def build(source, cache):
    done = subprocess.run([sys.executable, str(REPO / "roles/runner/files/build_wheel.py"), str(source), str(cache),
                           "--no-index", "--find-links", box_wheels()], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def check_the_wheel_cache(tmp_path, cache):
    """The cache the role filled: the same source is not built again, a changed one (same version) is."""
    wheel = build(REPO, cache)
    assert not wheel["built"]
    source = tmp_path / "source"
    (source / "plugins/module_utils").mkdir(parents=True)
    for part in ("pyproject.toml", "README.md", "runner", "plugins/module_utils/common"):
        subprocess.run(["cp", "-r", str(REPO / part), str(source / part)], check=True)
    init = source / "runner/zkherd/__init__.py"
    init.write_text(init.read_text() + "# changed\n")
    changed = build(source, cache)
    assert changed["built"] and changed["version"] == wheel["version"] and changed["wheel"] != wheel["wheel"]
    assert sorted(p.name for p in cache.iterdir()) == sorted(Path(w["wheel"]).parent.name for w in (wheel, changed))
