"""The render role's files, rendered by real ansible-playbook with the role's defaults and vars:
the configuration `zkherd render --config` reads, a hardened unit that systemd-analyze accepts, the
timer of a scheduled renderer; its templates are shipped by the service role's tasks (one source of
truth). On real systemd boxes: molecule/default."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.integration.test_tplroles_service import changed_count, play
from tests.support.playbook import REPO

ENTRY = {"name": "lb", "templates": [{"src": "backends.cfg.j2", "dest": "/etc/haproxy/conf.d/backends.cfg"}],
         "check_cmd": "haproxy -c -f $ZKHERD_STAGED_FILE", "on_change": "systemctl reload haproxy"}


def role_vars(tmp_path, **overrides):
    found = {}
    for part in ("defaults", "vars"):
        found.update(yaml.safe_load((REPO / "roles" / "render" / part / "main.yml").read_text()) or {})
    found.update(zkherd_hosts="zk1:2181,zk2:2181", **overrides)
    return found


def render_file(tmp_path, name, entry, **overrides):
    dest = tmp_path / name
    tasks = [{"name": "render", "ansible.builtin.template": {
        "src": str(REPO / "roles" / "render" / "templates" / name), "dest": str(dest), "mode": "0600"},
        "loop": "{{ __render_present }}"}]
    run = play(tmp_path, tasks, role_vars(tmp_path, render_renderers=[entry], **overrides))
    assert run.returncode == 0, run.stdout + run.stderr
    return dest.read_text()


SCHEDULES = [None, "*:0/5"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every file of this module's render tests in ONE ansible-playbook run (each start costs seconds
    of CPU), each task with the role's defaults and vars (plus its own) as task vars: {name: text}."""
    folder = tmp_path_factory.mktemp("render-role")
    jobs = {"config": ("render.yml.j2", ENTRY, {}),
            "config-scheduled": ("render.yml.j2", dict(ENTRY, schedule="hourly"), {})}
    for schedule in SCHEDULES:
        entry = dict(ENTRY, **({"schedule": schedule} if schedule else {}))
        jobs["unit-%s" % schedule] = ("zkherd-render.service.j2", entry,
                                      {"render_zkherd": "/bin/true", "render_config_dir": str(folder)})
        if schedule:
            jobs["timer-%s" % schedule] = ("zkherd-render.timer.j2", entry, {})
    files = {name: folder / ("file-%d" % i) for i, name in enumerate(jobs)}  # a schedule has a slash
    tasks = [{"name": "render " + name, "vars": role_vars(folder, render_renderers=[entry], **overrides),
              "ansible.builtin.template": {"src": str(REPO / "roles" / "render" / "templates" / template),
                                           "dest": str(files[name]), "mode": "0600"},
              "loop": "{{ __render_present }}"} for name, (template, entry, overrides) in jobs.items()]
    run = play(folder, tasks, {})
    assert run.returncode == 0, run.stdout + run.stderr
    return {name: path.read_text() for name, path in files.items()}


def test_the_configuration_names_the_shipped_templates_and_the_pipeline(rendered):
    config = yaml.safe_load(rendered["config"])
    assert config["template"] == ["/etc/zkherd/templates/render/lb/backends.cfg.j2=/etc/haproxy/conf.d/backends.cfg"]
    assert config["check_cmd"] == ENTRY["check_cmd"] and config["on_change"] == ENTRY["on_change"]
    assert config["zk"] == "zk1:2181,zk2:2181" and config["auth_file"] == "/etc/zkherd/auth"
    assert "once" not in config
    scheduled = yaml.safe_load(rendered["config-scheduled"])
    assert scheduled["once"] is True


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_the_unit_is_hardened_writes_only_the_rendered_folders_and_is_valid(tmp_path, rendered, schedule):
    unit = rendered["unit-%s" % schedule]
    assert "\nProtectSystem=strict\n" in unit and "\nNoNewPrivileges=yes\n" in unit
    assert '\nReadWritePaths="/etc/haproxy/conf.d"\n' in unit
    assert ("\nType=oneshot\n" in unit) == bool(schedule) and ("\nRestart=always\n" in unit) != bool(schedule)
    units = tmp_path / "units"
    units.mkdir()
    (units / "zkherd-render-lb.service").write_text(unit)
    files = [units / "zkherd-render-lb.service"]
    if schedule:
        (units / "zkherd-render-lb.timer").write_text(rendered["timer-%s" % schedule])
        files.append(units / "zkherd-render-lb.timer")
    check = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, files)], capture_output=True,
                           text=True, check=False, timeout=60)
    complaints = [line for line in check.stderr.splitlines() if "zkherd-render-lb" in line]
    assert not complaints, check.stderr


def test_the_role_ships_templates_through_the_service_roles_tasks(tmp_path):
    (tmp_path / "templates").mkdir()
    text = "{% for m in children('/lb') %}server {{ m }}\n{% endfor %}"
    (tmp_path / "templates" / "backends.cfg.j2").write_text(text)
    entry = dict(ENTRY, templates=[{"src": "backends.cfg.j2", "dest": str(tmp_path / "out" / "backends.cfg")}])
    role_tasks = yaml.safe_load((REPO / "roles" / "render" / "tasks" / "main.yml").read_text())
    tasks = [next(task for task in role_tasks if task["name"] == "Ship the templates")]
    play_vars = role_vars(tmp_path, render_renderers=[entry], render_template_dir=str(tmp_path / "t"))
    first = play(tmp_path, tasks, play_vars)
    assert first.returncode == 0, first.stdout + first.stderr
    shipped = tmp_path / "t" / "render" / "lb" / "backends.cfg.j2"
    assert shipped.read_text() == text
    assert (tmp_path / "out").is_dir()
    again = play(tmp_path, tasks, play_vars)
    assert again.returncode == 0 and changed_count(again.stdout) == 0, again.stdout
