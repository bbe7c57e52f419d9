"""The service role's per-entry templates, by real ansible-playbook on localhost: the sources are
found on the controller as ansible.builtin.template finds them, shipped root-owned and read-only,
named in the runner configuration as `template: [SRC=DEST]`, their folders writable in the unit;
a second run changes nothing. The rendering itself (zkherd run --template) is in
test_tplroles_render.py; on real systemd boxes, molecule/default."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.playbook import REPO

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def play(tmp_path, tasks, play_vars):
    """Run *tasks* in a playbook that lives in *tmp_path* (its templates/ folder is the playbook's)."""
    book = tmp_path / "play.yml"
    book.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "vars": play_vars,
                                     "tasks": tasks}], sort_keys=False))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", LANG="C.UTF-8")
    return subprocess.run([str(ANSIBLE_PLAYBOOK), str(book)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def ship(tmp_path, entries, **extra):
    return play(tmp_path, [{"name": "ship", "ansible.builtin.include_role": {
        "name": "zkherd.ops.service", "tasks_from": "templates.yml"}}],
        dict(service_instances=entries, service_template_dir=str(tmp_path / "shipped"), **extra))


def changed_count(output):
    return int(output.rsplit("changed=", 1)[1].split()[0])


def test_templates_are_found_like_the_template_module_and_shipped_read_only(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "app.conf.j2").write_text("port={{ znode('/app/port') }}\n")
    (tmp_path / "other.j2").write_text("{{ children('/app') | join(',') }}\n")
    entries = [{"name": "web", "command": ["true"], "templates": [
        {"src": "app.conf.j2", "dest": str(tmp_path / "out" / "app.conf")},
        {"src": str(tmp_path / "other.j2"), "dest": str(tmp_path / "out" / "other")}]}]
    first = ship(tmp_path, entries)
    assert first.returncode == 0, first.stdout + first.stderr
    shipped = tmp_path / "shipped" / "service" / "web" / "app.conf.j2"
    # copied as it is: zkherd renders it on the host, not Ansible
    assert shipped.read_text() == "port={{ znode('/app/port') }}\n"
    assert (tmp_path / "shipped" / "service" / "web" / "other.j2").read_text() == "{{ children('/app') | join(',') }}\n"
    info = shipped.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o644)
    assert stat.S_IMODE(shipped.parent.stat().st_mode) == 0o755 and shipped.parent.stat().st_uid == 0
    assert (tmp_path / "out").is_dir()  # the rendered file's folder, made for the runner
    again = ship(tmp_path, entries)
    assert again.returncode == 0 and changed_count(again.stdout) == 0, again.stdout


def test_a_missing_template_fails_the_role_naming_where_it_looked(tmp_path):
    entries = [{"name": "web", "command": ["true"], "templates": [{"src": "nope.j2", "dest": "/etc/app/a"}]}]
    run = ship(tmp_path, entries)
    assert run.returncode != 0
    assert "web: template nope.j2 not found on the controller" in run.stdout, run.stdout
    assert str(tmp_path / "templates" / "nope.j2") in run.stdout


def render_role_file(tmp_path, name, entry, **extra):
    dest = tmp_path / name
    run = play(tmp_path, [{"name": "render", "ansible.builtin.template": {
        "src": str(REPO / "roles" / "service" / "templates" / name), "dest": str(dest), "mode": "0600"},
        "loop": [entry]}], role_vars(**extra))
    assert run.returncode == 0, run.stdout + run.stderr
    return dest.read_text()


def role_vars(**overrides):
    found = {}
    for part in ("defaults", "vars"):
        found.update(yaml.safe_load((REPO / "roles" / "service" / part / "main.yml").read_text()) or {})
    found.update(zkherd_hosts="127.0.0.1:2181", **overrides)
    return found


ENTRY = {"name": "web", "command": ["sleep", "infinity"], "check_cmd": "test -s $ZKHERD_STAGED_FILE",
         "templates": [{"src": "tpl/app.conf.j2", "dest": "/etc/app/app.conf"},
                       {"src": "backends.j2", "dest": "/srv/lb/backends.cfg", "mode": "0640"}],
         "mirror": [{"file": "/etc/app/raw", "znode": "/app/raw"}]}


@pytest.fixture(scope="module")
def role_files(tmp_path_factory):
    """The service role's files for ENTRY (and without templates) in ONE ansible-playbook run (each
    start costs seconds of CPU), each task with the role's defaults and vars: {name: text}."""
    folder = tmp_path_factory.mktemp("service-role")
    jobs = {"config": ("config.yml.j2", ENTRY), "config-no-templates": ("config.yml.j2", dict(ENTRY, templates=[])),
            "unit": ("unit.service.j2", ENTRY)}
    run = play(folder, [{"name": "render " + name, "ansible.builtin.template": {
        "src": str(REPO / "roles" / "service" / "templates" / template), "dest": str(folder / name), "mode": "0600"},
        "loop": [entry]} for name, (template, entry) in jobs.items()], role_vars())
    assert run.returncode == 0, run.stdout + run.stderr
    return {name: (folder / name).read_text() for name in jobs}


def test_the_runner_configuration_names_the_shipped_templates(role_files):
    config = yaml.safe_load(role_files["config"])
    assert config["template"] == ["/etc/zkherd/templates/service/web/app.conf.j2=/etc/app/app.conf",
                                  "/etc/zkherd/templates/service/web/backends.j2=/srv/lb/backends.cfg"]
    assert config["mirror"] == ["/etc/app/raw=/app/raw"] and config["check_cmd"] == ENTRY["check_cmd"]
    assert "template" not in yaml.safe_load(role_files["config-no-templates"])


def test_the_unit_may_write_the_rendered_files_folders(role_files):
    unit = role_files["unit"]
    rw = next(line for line in unit.splitlines() if line.startswith("ReadWritePaths="))
    assert "/etc/app " in rw + " " and "/srv/lb" in rw.split("=", 1)[1].split()
    assert rw.split("=", 1)[1].split().count("/etc/app") == 1  # mirror and template share it
