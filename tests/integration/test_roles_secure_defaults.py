"""The roles' secure defaults, run by real ansible-playbook with each role's own defaults, vars,
templates and tasks: credentials generated once per deployment and stable, `auth::rwcda` in what the
units read, and an `auth` ACL without credentials refused. On real systemd boxes, with ZooKeeper
denying an anonymous client: molecule (scripts/molecule.sh, tests/support/sitecheck.py)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from kazoo.exceptions import NoAuthError

from tests.support.playbook import CALLBACKS, REPO, run_cases, run_playbook
from tests.support.zkserver import ZooKeeperServer, four_letter_word, free_port
from zkherd.common import acl
from zkherd.common.connection import from_kazoo_acls, to_kazoo_acls

BIN = Path(sys.executable).parent


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
    other = tmp_path / "other"
    # credentials given (from a vaulted variable, say): used as they are, nothing generated (task
    # vars beat the play's; before any set_fact of zkherd_auth, which would beat them)
    given = dict(show("given", "{{ runner_auth }}"), vars={"runner_auth_store": str(other),
                                                           "zkherd_auth": "app:vaulted"})
    first = run_playbook([show("credentials", "{{ runner_auth }}"), given], play_vars=play_vars)
    # a second run reads the same ones; the credentials entry point gives a controller-side play them
    again = run_playbook([show("credentials", "{{ runner_auth }}"), credentials_task(),
                          show("fact", "{{ zkherd_auth }}")], play_vars=play_vars)
    assert first.rc == 0 and again.rc == 0, first.output + again.output
    made = first["credentials"]["msg"]
    assert re.fullmatch(r"zkherd:[A-Za-z0-9]{32}", made), made
    assert again["credentials"]["msg"] == made  # the second run reads the same ones
    assert stat.S_IMODE(store.stat().st_mode) == 0o600 and store.read_text().strip() == made.split(":", 1)[1]
    assert again["fact"]["msg"] == made
    assert first["given"]["msg"] == "app:vaulted" and not other.exists()


def credentials_task():
    """The runner role's `credentials` entry point (tasks/credentials.yml, one task)."""
    tasks = yaml.safe_load((REPO / "roles" / "runner" / "tasks" / "credentials.yml").read_text())
    assert len(tasks) == 1
    return tasks[0]


def service_configs(tmp_path, *variants):
    """The service role's runner configuration for one entry, once per variant ({setting: value}
    over the role's defaults and vars), in one playbook run (task vars beat the play's)."""
    entry = {"name": "web", "command": ["sleep", "infinity"], "lock": "/locks/web"}
    dests = [tmp_path / ("web-%d.yml" % i) for i in range(len(variants))]
    run = run_playbook([{"name": "config %d" % i, "vars": overrides, "ansible.builtin.template": {
        "src": str(REPO / "roles" / "service" / "templates" / "config.yml.j2"), "dest": str(dest), "mode": "0600"},
        "loop": [entry]} for i, (overrides, dest) in enumerate(zip(variants, dests))],
        play_vars=role_vars("service"))
    assert run.rc == 0, run.output
    return [yaml.safe_load(dest.read_text()) for dest in dests]


def test_the_service_runner_configuration_gives_every_znode_to_the_deployment(tmp_path):
    default, opened, given = service_configs(tmp_path, {}, {"zkherd_acl": []},
                                             {"service_runner_options": {"acl": ["auth::rwcda", "world:anyone:r"]}})
    assert default["acl"] == ["auth::rwcda"] and default["auth_file"] == "/etc/zkherd/auth"  # before: neither
    assert "acl" not in opened  # opened deliberately
    assert given["acl"] == ["auth::rwcda", "world:anyone:r"]


def test_an_auth_acl_without_credentials_fails_the_role(tmp_path):
    """Every role's check, refused / opened deliberately / by default: each a case of its own in one
    ansible-playbook run (tests.support.playbook.run_cases)."""
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
    cases = {}
    for role, (task, entries) in checks.items():
        for name, settings in (("refused", {"zkherd_auth": ""}), ("opened", {"zkherd_auth": "", "zkherd_acl": []}),
                               ("default", {})):
            cases["%s-%s" % (role, name)] = {"vars": role_vars(role, **settings, **entries),
                                             "tasks": [role_task(role, task)]}
    run = run_cases(cases)
    for role in checks:
        refused = run.host(role + "-refused")
        assert refused.records and "open ACL deliberately" in (refused.failure() or ""), (role, refused.records)
        for name in ("opened", "default"):
            case = run.host("%s-%s" % (role, name))
            assert case.records and case.failure() is None, (role, name, case.failure())


def credentials_file_tasks():
    """The runner role's own tasks that put the credentials on the host (every task of tasks/main.yml
    about them), in their order."""
    tasks = yaml.safe_load((REPO / "roles" / "runner" / "tasks" / "main.yml").read_text())
    return [task for task in tasks if "credentials" in task["name"].lower()]


def test_generated_credentials_never_replace_the_hosts_credentials(tmp_path):
    """R6: the generated credentials live on the controller (playbook_dir/credentials). A run from
    another checkout or CI used to make new ones and rewrite /etc/zkherd/auth, after which every
    runner got exit 77 on the znodes it had made. Now the role refuses to replace a host's
    credentials with generated ones that differ, says where the controller's file is and what to do,
    and leaves the host's file alone; credentials given explicitly (zkherd_auth) still replace it."""
    host_file = tmp_path / "host" / "auth"  # the host's /etc/zkherd/auth
    host_file.parent.mkdir()
    first_store, other_store = tmp_path / "checkout-1" / "zkherd-auth", tmp_path / "checkout-2" / "zkherd-auth"

    def converge(store, **extra):
        return run_playbook(credentials_file_tasks(), play_vars=role_vars(
            "runner", runner_auth_store=str(store), runner_auth_file=str(host_file), **extra))

    first = converge(first_store)
    assert first.rc == 0, first.output[-3000:]
    deployed = host_file.read_text()
    assert deployed == "zkherd:%s\n" % first_store.read_text().strip()
    again = converge(first_store)  # the same checkout: nothing to do
    assert again.rc == 0 and host_file.read_text() == deployed, again.output[-3000:]

    elsewhere = converge(other_store)  # another checkout (or CI) generates other credentials
    assert host_file.read_text() == deployed, "the hosts' credentials were replaced by generated ones"
    assert elsewhere.rc != 0, elsewhere.output[-3000:]
    message = " ".join(elsewhere.output.split()).lower()
    for words in (str(host_file), str(other_store), "exit 77", "zkherd_auth", "copy the credentials file"):
        assert words in message, (words, message[-3000:])
    assert deployed.strip().split(":", 1)[1] not in elsewhere.output  # no secret in the message
    check = run_playbook(credentials_file_tasks(), extra_args=["--check"], play_vars=role_vars(
        "runner", runner_auth_store=str(other_store), runner_auth_file=str(host_file)))
    assert check.rc != 0, check.output[-3000:]  # check mode says so too

    host_file.write_text("zkherd:%s\n" % other_store.read_text().strip())  # copied by hand: the same again
    assert converge(other_store).rc == 0
    rotated = converge(other_store, zkherd_auth="app:rotated")  # given explicitly: a rotation
    assert rotated.rc == 0 and host_file.read_text() == "app:rotated\n", rotated.output[-3000:]
    assert converge(first_store, zkherd_auth="").rc == 0 and not host_file.exists()  # removal still works


def render_tasks(tmp_path, inventory, *jobs):
    """Tasks that render the roles' templates for the inventory's host `localhost` (a real
    inventory, with its groups and host vars), each with its role's own defaults and vars as task
    vars (which beat the inventory's: those the inventory sets are left out). JOBS: (role,
    template, overrides); returns the tasks and the files' paths."""
    hosts = yaml.safe_load(inventory.read_text())["all"]["children"]["zookeeper"]["hosts"]
    in_inventory = {key for host_vars in hosts.values() for key in host_vars}
    tasks, dests = [], []
    for role, template, overrides in jobs:
        dest = tmp_path / ("%s-%s" % (role, template.replace(".j2", "")))
        task_vars = {k: v for k, v in role_vars(role, **overrides).items() if k not in in_inventory}
        tasks.append({"name": "render " + dest.name, "vars": task_vars, "ansible.builtin.template": {
            "src": str(REPO / "roles" / role / "templates" / template), "dest": str(dest), "mode": "0600"},
            "loop": [{"name": "web", "command": ["true"]}]})
        dests.append(dest)
    return tasks, dests


def start_bound_server(tmp_path, zoo_cfg):
    """A real ZooKeeper listening where the role's zoo.cfg says (clientPortAddress, clientPort)."""
    keys = dict(line.split("=", 1) for line in zoo_cfg.splitlines() if "=" in line and not line.startswith("#"))
    address, port = keys["clientPortAddress"], int(keys["clientPort"])
    server = ZooKeeperServer(tmp_path / "zk", port=port, extra_cfg={"clientPortAddress": address})
    server.launch()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if four_letter_word(address, port, "ruok") == "imok":
                return server, "%s:%d" % (address, port)
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError("ZooKeeper did not serve on %s:%d: %s" % (address, port, server.log_tail()))


def test_runners_connect_to_the_zookeeper_of_their_own_inventory(tmp_path):
    """R6: the zookeeper role binds the client port to zookeeper_address (ansible_host), while the
    other roles used to default to 127.0.0.1:2181 - a host that is both a ZooKeeper server and an
    app host (a single-host site, or any site upgraded) got runners that could not connect. Now the
    roles' default is the inventory's zookeeper group, where each server listens. A real ZooKeeper
    started from the role's zoo.cfg, and a real runner from the service role's configuration."""
    port = free_port()
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        "zookeeper": {"hosts": {"localhost": {"ansible_connection": "local", "ansible_host": "127.0.0.2",
                                              "ansible_python_interpreter": sys.executable,
                                              "zookeeper_client_port": port}}},
        "app": {"hosts": {"localhost": None}}}}}))
    # one playbook run: the zookeeper role's zoo.cfg, the service role's configuration, and each
    # other role's default hosts
    tasks, (zoo_cfg_file, config_file) = render_tasks(
        tmp_path, inventory, ("zookeeper", "zoo.cfg.j2", {}),
        ("service", "config.yml.j2", {"service_auth_file": "", "zkherd_acl": []}))
    roles = ("farm_member", "farm_export", "cron")  # the same default in every role
    tasks += [dict(show("hosts " + role, "{{ %s_zk_hosts }}" % role), vars=role_vars(role)) for role in roles]
    run = run_playbook(tasks, extra_args=["-i", str(inventory)])
    assert run.rc == 0, run.output[-3000:]
    zoo_cfg = zoo_cfg_file.read_text()
    assert "clientPortAddress=127.0.0.2" in zoo_cfg and "clientPort=%d" % port in zoo_cfg, zoo_cfg
    server, listening = start_bound_server(tmp_path, zoo_cfg)
    try:
        rendered = config_file.read_text()
        assert yaml.safe_load(rendered)["zk"] == listening, rendered  # before: 127.0.0.1:2181
        for role in roles:
            assert run["hosts " + role]["msg"] == listening, (role, run.output[-2000:])
        config = tmp_path / "web.yml"
        config.write_text(rendered)
        ran = subprocess.run([str(BIN / "zkherd"), "run", "--config", str(config), "--connect-timeout", "20"],
                             capture_output=True, text=True, timeout=120, check=False)
        assert ran.returncode == 0 and "started child" in ran.stderr, ran.stderr  # connected, ran `true`
    finally:
        server.stop()


def run_site_playbook(name, extra_vars, *args):
    """A playbook of playbooks/ as an operator runs it, with every task's result recorded."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
               ANSIBLE_CALLBACKS_ENABLED="zkherd_record", ANSIBLE_NOCOLOR="1", LANG="C.UTF-8")
    with tempfile.TemporaryDirectory(prefix="zkherd-site-") as tmp:
        (Path(tmp) / "vars.json").write_text(json.dumps(extra_vars))
        env["ZKHERD_RECORD"] = str(Path(tmp) / "record.json")
        proc = subprocess.run([str(BIN / "ansible-playbook"), str(REPO / "playbooks" / name),
                               "-e", "@%s/vars.json" % tmp, *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        records = json.loads((Path(tmp) / "record.json").read_text())
    return proc, {record["task"]: record for record in records}


def test_existing_open_znodes_get_the_deployments_acl(zk_server, zk, zk_admin, make_zk, zk_base, tmp_path):
    """R6: the runners give new znodes the deployment's ACL, but a lock node or a registration folder
    made before (ZooKeeper's open ACL) stays open: anyone can still create in it - squat the lock.
    The migration playbook gives the listed znodes that exist and are open the deployment's ACL,
    with --check changing nothing, leaves the others alone, and a rerun changes nothing."""
    user, password = "zkherd", "Migrate-pw-4242"
    owner = [("digest", acl.digest_id(user, password), 31)]
    opened = [zk_base + "/locks", zk_base + "/locks/web", zk_base + "/services/hello"]
    for path in opened:
        zk.ensure_path(path)  # the open ACL, as made by an earlier release
    owned = zk_base + "/farm"
    zk_admin.create(owned, acl=to_kazoo_acls(owner))
    readers = zk_base + "/readers"
    readers_acl = owner + [("world", "anyone", 1)]  # read-only for others: not open
    zk_admin.create(readers, acl=to_kazoo_acls(readers_acl))
    anonymous = make_zk()
    anonymous.create(zk_base + "/locks/web/lock-squatter")  # the hole: anyone creates in the lock node
    anonymous.delete(zk_base + "/locks/web/lock-squatter")

    listed = opened + [owned, readers, zk_base + "/missing"]
    extra = {"zkherd_hosts": zk_server.hosts, "zkherd_auth": "%s:%s" % (user, password),
             "zkherd_secure_znodes": listed}
    checked, results = run_site_playbook("secure-existing-znodes.yml", extra, "--check", "--diff")
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    changes = results["Give the open ones the deployment's ACL"]["result"]["results"]
    assert sorted(r["item"]["item"] for r in changes if r.get("changed")) == sorted(opened)
    for path in opened:  # --check changed nothing
        assert from_kazoo_acls(zk_admin.get_acls(path)[0]) == [("world", "anyone", 31)]

    ran, results = run_site_playbook("secure-existing-znodes.yml", extra)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    for path in opened:
        assert from_kazoo_acls(zk_admin.get_acls(path)[0]) == owner, path
    assert from_kazoo_acls(zk_admin.get_acls(owned)[0]) == owner
    assert sorted(from_kazoo_acls(zk_admin.get_acls(readers)[0])) == sorted(readers_acl)
    assert not zk_admin.exists(zk_base + "/missing")
    with pytest.raises(NoAuthError):
        anonymous.create(zk_base + "/locks/web/lock-squatter")
    with pytest.raises(NoAuthError):
        anonymous.delete(zk_base + "/locks/web")  # the parent is locked too: no delete-and-make-again
    auth_file = tmp_path / "auth"
    auth_file.write_text("%s:%s\n" % (user, password))
    auth_file.chmod(0o600)
    runner = subprocess.run([str(BIN / "zkherd"), "run", "--zk", zk_server.hosts, "--auth-file", str(auth_file),
                             "--acl", "auth::rwcda", "--lock", zk_base + "/locks/web", "--", "true"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert runner.returncode == 0 and "lock acquired" in runner.stderr, runner.stderr  # the deployment still can

    again, results = run_site_playbook("secure-existing-znodes.yml", extra)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]
