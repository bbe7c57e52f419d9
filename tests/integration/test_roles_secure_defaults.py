"""The roles' secure defaults, run by real ansible-playbook with each role's own defaults, vars,
templates and tasks: credentials generated once per deployment and stable, `auth::rwcda` in what the
units read, and an `auth` ACL without credentials refused. On real systemd boxes, with ZooKeeper
denying an anonymous client: molecule (scripts/molecule.sh, tests/support/sitecheck.py)."""

from __future__ import annotations

import re
import stat

import yaml

from tests.support.playbook import REPO, run_playbook


def role_vars(role, **overrides):
    """The role's defaults and vars, as play vars (templated lazily by Ansible, as in the role)."""
    found = {}
    for part in ("defaults", "vars"):
        path = REPO / "roles" / role / part / "main.yml"
        found.update(yaml.safe_load(path.read_text()) or {})
    found.update(overrides)
    return found


def role_task(role, name, tasks_file="main.yml"):
    tasks = yaml.safe_load((REPO / "roles" / role / "tasks" / tasks_file).read_text())
    return next(task for task in tasks if task["name"] == name)


def show(name, expression):
    return {"name": name, "ansible.builtin.debug": {"msg": expression}}


def test_generated_credentials_are_made_once_kept_0600_and_stable(tmp_path):
    store = tmp_path / "credentials" / "zkherd-auth"
    play_vars = role_vars("runner", runner_auth_store=str(store))
    first = run_playbook([show("credentials", "{{ runner_auth }}")], play_vars=play_vars)
    again = run_playbook([show("credentials", "{{ runner_auth }}")], play_vars=play_vars)
    assert first.rc == 0 and again.rc == 0, first.output + again.output
    made = first["credentials"]["msg"]
    assert re.fullmatch(r"zkherd:[A-Za-z0-9]{32}", made), made
    assert again["credentials"]["msg"] == made  # the second run reads the same ones
    assert stat.S_IMODE(store.stat().st_mode) == 0o600 and store.read_text().strip() == made.split(":", 1)[1]
    # the credentials entry point gives a controller-side play the same ones
    facts = run_playbook([credentials_task(), show("fact", "{{ zkherd_auth }}")], play_vars=play_vars)
    assert facts["fact"]["msg"] == made
    # credentials given (from a vaulted variable, say): used as they are, nothing generated
    other = tmp_path / "other"
    given = run_playbook([show("credentials", "{{ runner_auth }}")],
                         play_vars=role_vars("runner", runner_auth_store=str(other), zkherd_auth="app:vaulted"))
    assert given["credentials"]["msg"] == "app:vaulted" and not other.exists()


def credentials_task():
    """The runner role's `credentials` entry point (tasks/credentials.yml, one task)."""
    tasks = yaml.safe_load((REPO / "roles" / "runner" / "tasks" / "credentials.yml").read_text())
    assert len(tasks) == 1
    return tasks[0]


def service_config(tmp_path, **overrides):
    entry = {"name": "web", "command": ["sleep", "infinity"], "lock": "/locks/web"}
    dest = tmp_path / "web.yml"
    run = run_playbook([{"name": "config", "ansible.builtin.template": {
        "src": str(REPO / "roles" / "service" / "templates" / "config.yml.j2"), "dest": str(dest), "mode": "0600"},
        "loop": [entry]}], play_vars=role_vars("service", **overrides))
    assert run.rc == 0, run.output
    return yaml.safe_load(dest.read_text())


def test_the_service_runner_configuration_gives_every_znode_to_the_deployment(tmp_path):
    config = service_config(tmp_path)
    assert config["acl"] == ["auth::rwcda"] and config["auth_file"] == "/etc/zkherd/auth"  # before: neither
    assert "acl" not in service_config(tmp_path, zkherd_acl=[])  # opened deliberately
    assert service_config(tmp_path, service_runner_options={"acl": ["auth::rwcda", "world:anyone:r"]})["acl"] == [
        "auth::rwcda", "world:anyone:r"]


def test_an_auth_acl_without_credentials_fails_the_role(tmp_path):
    checks = {
        "service": ("Check that the services' ACL has the credentials it names",
                    {"service_instances": [{"name": "web", "command": ["true"]}]}),
        "farm_member": ("Check that the ACL has the credentials it names",
                        {"farm_member_farms": [{"name": "db", "farm": "/f", "conf": "/etc/db.json"}]}),
        "farm_export": ("Check that the ACL has the credentials it names",
                        {"farm_export_exports": [{"name": "db", "farm": "/f", "dest": "/etc/db.json"}]}),
        "cron": ("Check that the ACL has the credentials it names",
                 {"cron_pools": [{"name": "p", "election": "/e"}]}),
    }
    for role, (task, entries) in checks.items():
        refused = run_playbook([role_task(role, task)], play_vars=role_vars(role, zkherd_auth="", **entries))
        assert refused.rc != 0 and "open ACL deliberately" in refused.output, (role, refused.output[-2000:])
        opened_vars = role_vars(role, zkherd_auth="", zkherd_acl=[], **entries)
        opened = run_playbook([role_task(role, task)], play_vars=opened_vars)
        assert opened.rc == 0, (role, opened.output[-2000:])
        default = run_playbook([role_task(role, task)], play_vars=role_vars(role, **entries))
        assert default.rc == 0, (role, default.output[-2000:])
