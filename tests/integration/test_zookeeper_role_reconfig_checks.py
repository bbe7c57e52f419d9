"""The zookeeper role's setting checks for reconfiguration faults (review of issue 16b), run by
ansible-playbook from the role's own main.yml checks, vars and defaults (no server needed):
zookeeper_state: absent without zookeeper_reconfig would just stop the server (no quorum check),
and an ensemble without mntr whitelisted would fail every synced wait - both are refused."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.support.playbook import REPO

ROLE = REPO / "roles" / "zookeeper"
CHECKS = ("Check the settings", "Check the dynamic reconfiguration settings")


def _check(tmp_path, **host_vars):
    tasks = [task for task in yaml.safe_load((ROLE / "tasks" / "main.yml").read_text()) if task["name"] in CHECKS]
    assert len(tasks) == len(CHECKS)
    inventory = {"all": {"vars": dict(yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()),
                                      ansible_connection="local", ansible_python_interpreter=sys.executable),
                         "children": {"zookeeper": {"hosts": {
                             "zk%d" % i: dict(host_vars if i == 1 else {}, zookeeper_id=i) for i in (1, 2, 3)}}}}}
    play = [{"hosts": "zk1", "gather_facts": False,
             "vars": yaml.safe_load((ROLE / "vars" / "main.yml").read_text()), "tasks": tasks}]
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    return subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
                           str(tmp_path / "play.yml")], cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False, env={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "LANG": "C.UTF-8",
                                            "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})


def test_absent_without_reconfig_is_refused(tmp_path):
    run = _check(tmp_path, zookeeper_state="absent", zookeeper_reconfig=False)
    assert run.returncode != 0 and "absent (leave the ensemble) needs" in run.stdout, run.stdout + run.stderr


def test_ensemble_without_mntr_is_refused(tmp_path):
    run = _check(tmp_path, zookeeper_4lw_whitelist=["srvr"])
    assert run.returncode != 0 and "an ensemble also mntr" in run.stdout, run.stdout + run.stderr


def test_ensemble_with_the_defaults_passes(tmp_path):
    run = _check(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
