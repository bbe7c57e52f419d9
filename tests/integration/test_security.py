"""Security against a real ZooKeeper (docs/security.md): the runner's --acl on every znode it
creates; a digest-authenticated deployment end to end - runners, modules, lookups, the inventory
plugin - with unauthenticated clients denied; secrets kept out of argv, logs, the child's
environment and Ansible's output, and the roles' secret files 0600; names from ZooKeeper and
symlinks that cannot lead out of a local directory. TLS: tests/integration/test_tls.py."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kazoo.exceptions import NoAuthError

from tests.support.playbook import REPO, run_playbook
from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for
from zkherd.common import acl
from zkherd.common.connection import from_kazoo_acls, to_kazoo_acls

USER, PASSWORD = "zkherd", "Zk-s3cret-4242-pw"
OWNER = [("digest", acl.digest_id(USER, PASSWORD), 31)]  # what auth::rwcda becomes for these credentials


@pytest.fixture
def auth_file(tmp_path):
    path = tmp_path / "auth"
    path.write_text("%s:%s\n" % (USER, PASSWORD))
    path.chmod(0o600)
    return path


@pytest.fixture
def zkherd_config(zk_server, auth_file, tmp_path):
    """The deployment's shared settings, as the roles write them: credentials file and ACL."""
    path = tmp_path / "zkherd.yml"
    path.write_text(yaml.safe_dump({"zk": zk_server.hosts, "session_timeout": 2, "auth_file": str(auth_file),
                                    "acl": ["auth::rwcda"]}))
    return path


def acls_under(zk_admin, base):
    """{path: ACL triples} of every znode below *base*, read by the superuser."""
    found, pending = {}, [base]
    while pending:
        path = pending.pop()
        for name in zk_admin.get_children(path):
            child = path + "/" + name
            found[child] = from_kazoo_acls(zk_admin.get_acls(child)[0])
            pending.append(child)
    return found


def test_every_znode_the_runner_creates_gets_the_acl(zk_server, zk_admin, zk_base, make_zk, zkherd_config,
                                                     tmp_path):
    """One `acl:` in the shared config: lock and run nodes, registrations, election members, cron tick
    markers, barrier nodes, farm members, the rolling lock, failed-version records and every parent
    made on the way carry it; an anonymous client can neither read nor delete them, and a runner
    without credentials exits 77 saying access was denied."""
    common = ["--config", str(zkherd_config)]
    config_znode = zk_base + "/conf/app.conf"
    zk_admin.create(config_znode, b"good", makepath=True)  # made by the operator, not by zkherd
    app_conf, member_conf = tmp_path / "app.conf", tmp_path / "member.json"
    member_conf.write_text('{"enabled": "1"}')
    child = "grep -q bad %s && exit 3; exec sleep 1000" % app_conf
    runner = Zkherd(["run", *common, "--stop-timeout", "1", "--lock", zk_base + "/locks/svc", "--register",
                     zk_base + "/services/svc-", "--mirror", "%s=%s" % (app_conf, config_znode), "--rolling-lock",
                     zk_base + "/rolling", "--health", "true", "--health-delay", "1", "--", "sh", "-c", child],
                    tmp_path / "run.log")
    elect = Zkherd(["elect", *common, "--election", zk_base + "/pool", "--id", "me"], tmp_path / "elect.log")
    joined = Zkherd(["farm", "join", *common, zk_base + "/farm/web", str(member_conf), "--name", "10.0.0.1",
                     "--poll", "0.1"], tmp_path / "join.log")
    barrier = [Zkherd(["barrier", *common, zk_base + "/barrier", "--count", "2", "--timeout", "60"],
                      tmp_path / "barrier1.log")]
    runner.wait_log("started child")
    elect.wait_log("this member leads the pool")
    joined.wait_log("joined the farm")
    cron = Zkherd(["cron", *common, "--election", zk_base + "/pool", "--id", "me", "--name", "job", "--", "true"],
                  tmp_path / "cron.log")
    assert cron.wait() == 0, cron.log()
    wait_for(lambda: any("/barrier/p-" in path for path in acls_under(zk_admin, zk_base)))

    made = acls_under(zk_admin, zk_base)
    kinds = [r"/locks", r"/locks/svc", r"/locks/svc/lock-[0-9a-f]{16}-\d{10}", r"/locks/svc/run-[0-9a-f]{16}-\d{10}",
             r"/services", r"/services/svc-\d{10}", r"/pool", r"/pool/member-[0-9a-f]{16}-\d{10}", r"/pool/ticks",
             r"/pool/ticks/job",
             r"/pool/ticks/job/\d+", r"/barrier", r"/barrier/p-\d+", r"/farm", r"/farm/web", r"/farm/web/10\.0\.0\.1"]
    for kind in kinds:
        assert any(re.fullmatch(re.escape(zk_base) + kind, path) for path in made), (kind, sorted(made))
    by_zkherd = {path: acls for path, acls in made.items() if not path.startswith(zk_base + "/conf")}
    assert {path: acls for path, acls in by_zkherd.items() if acls != OWNER} == {}

    anonymous = make_zk()
    lock_node = next(p for p in made if re.search(r"/locks/svc/lock-[0-9a-f]{16}-\d{10}$", p))
    for denied in (lambda: anonymous.get_children(zk_base + "/locks/svc"),
                   lambda: anonymous.get(zk_base + "/farm/web/10.0.0.1"),
                   lambda: anonymous.delete(lock_node),
                   lambda: anonymous.delete(zk_base + "/farm/web/10.0.0.1"),
                   lambda: anonymous.create(zk_base + "/locks/svc/lock-", ephemeral=True, sequence=True)):
        with pytest.raises(NoAuthError):
            denied()

    intruder = Zkherd(["run", "--zk", zk_server.hosts, "--lock", zk_base + "/locks/svc", "--no-wait", "--", "true"],
                      tmp_path / "intruder.log")
    assert intruder.wait() == 77
    line = intruder.wait_log("ERROR .*")
    assert "access denied" in line and zk_base + "/locks/svc" in line and "--auth-file" in line, line

    zk_admin.set(config_znode, b"bad")  # a version whose restarted child exits: recorded as failed
    runner.wait_log("configuration version failed")
    wait_for(lambda: zk_admin.exists(zk_base + "/rolling/failed"))
    rolling = acls_under(zk_admin, zk_base)
    assert rolling[zk_base + "/rolling"] == OWNER and rolling[zk_base + "/rolling/failed"] == OWNER

    barrier.append(Zkherd(["barrier", *common, zk_base + "/barrier", "--count", "2", "--timeout", "60"],
                          tmp_path / "barrier2.log"))
    assert [b.wait() for b in barrier] == [0, 0]
    for process in (runner, elect, joined):
        process.stop()
    logs = "".join(p.log() for p in [runner, elect, joined, cron, intruder, *barrier])
    assert PASSWORD not in logs


def test_every_command_denied_access_says_so_and_exits_77(zk_server, zk_admin, zk_base, tmp_path):
    """Without credentials under an ACL'd znode: elect, cron, barrier, farm join and farm export all
    exit 77 with one error line that says access was denied, where, and what to check."""
    owner_only = to_kazoo_acls(OWNER)
    zk_admin.create(zk_base + "/locked", b"", acl=owner_only)
    zk_admin.create(zk_base + "/locked/pool", b"", acl=owner_only)
    (tmp_path / "m.json").write_text("{}")
    hosts, locked = ["--zk", zk_server.hosts], zk_base + "/locked"
    commands = {
        "elect": ["elect", *hosts, "--election", locked + "/pool"],
        "cron": ["cron", *hosts, "--election", locked + "/pool", "--", "true"],
        "barrier": ["barrier", *hosts, locked + "/b", "--count", "1"],
        "join": ["farm", "join", *hosts, locked + "/farm", str(tmp_path / "m.json"), "--name", "x"],
        "export": ["farm", "export", *hosts, locked, str(tmp_path / "out.json")],
    }
    processes = {name: Zkherd(args, tmp_path / (name + ".log")) for name, args in commands.items()}
    for name, process in processes.items():
        assert process.wait() == 77, (name, process.log())
        line = process.wait_log("ERROR .*")
        assert line.startswith("ERROR access denied: not authorized to ") and locked in line, (name, line)
        assert "check the digest credentials given" in line, (name, line)
    assert not (tmp_path / "out.json").exists()  # no empty export written after a failed read


def test_digest_deployment_from_ansible(zk_server, zk_base, zkherd_config, tmp_path):
    """A farm member made by a runner with credentials and an ACL: the modules, the farm lookup and
    the inventory plugin read it with `auth` and are denied without; the password is in no output
    of ansible-playbook -vvv."""
    farm = zk_base + "/farm/db"
    (tmp_path / "m.json").write_text('{"enabled": "1", "port": 3306}')
    joined = Zkherd(["farm", "join", "--config", str(zkherd_config), farm, str(tmp_path / "m.json"), "--name",
                     "10.0.0.7"], tmp_path / "join.log")
    joined.wait_log("joined the farm")
    credentials = "%s:%s" % (USER, PASSWORD)
    owner_acl = [{"scheme": "digest", "username": USER, "password": PASSWORD}]
    run = run_playbook([
        {"name": "info", "zkherd.ops.farm_info": {"farm": farm}},
        {"name": "info anonymous", "zkherd.ops.farm_info": {"farm": farm, "auth": ""}, "ignore_errors": True},
        {"name": "set", "zkherd.ops.farm": {"farm": farm, "member": "10.0.0.7", "set": {"enabled": "0"}}},
        {"name": "write", "zkherd.ops.znode": {"path": farm + "-settings", "value": "x", "acl": owner_acl}},
        {"name": "read", "zkherd.ops.znode_info": {"path": farm + "-settings", "acl": True}},
        {"name": "lookup", "ansible.builtin.debug": {"msg": "{{ query('zkherd.ops.farm', '%s') }}" % farm}},
        {"name": "lookup anonymous", "ansible.builtin.debug": {
            "msg": "{{ query('zkherd.ops.farm', '%s', auth='') }}" % farm}, "ignore_errors": True},
    ], hosts=zk_server.hosts, defaults={"auth": credentials}, extra_args=["-vvv"],
        play_vars={"zkherd_hosts": zk_server.hosts, "zkherd_auth": credentials})
    assert run["info"]["members"] == {"10.0.0.7": {"enabled": "1", "port": 3306}}
    assert run["info anonymous"]["failed"] and run["info anonymous"]["error_kind"] == "auth"
    assert "access denied" in run["info anonymous"]["msg"]
    assert run["set"]["changed"] and run["write"]["changed"]
    assert run["read"]["exists"] and run["read"]["acl"] == [{"scheme": "digest", "id": OWNER[0][1],
                                                             "perms": ["read", "write", "create", "delete", "admin"]}]
    assert run["lookup"]["msg"] == [{"farm": farm, "name": "10.0.0.7", "data": {"enabled": "0", "port": 3306}}]
    assert run["lookup anonymous"]["failed"] and "access denied" in run["lookup anonymous"]["msg"]
    assert PASSWORD not in run.output
    wait_for(lambda: json.loads((tmp_path / "m.json").read_text())["enabled"] == "0")  # back to the runner

    source = tmp_path / "deploy.zkherd_farm.yml"
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), LANG="C.UTF-8",
               ANSIBLE_INVENTORY_UNPARSED_FAILED="1")
    outputs = {}
    for name, auth in (("with auth", credentials), ("anonymous", "")):
        source.write_text(yaml.safe_dump({"plugin": "zkherd.ops.farm", "hosts": zk_server.hosts, "farms": [farm],
                                          "auth": auth}))
        outputs[name] = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(source),
                                        "--list", "-vvv"], cwd=REPO, env=env, capture_output=True, text=True,
                                       timeout=120, check=False)
    assert outputs["with auth"].returncode == 0, outputs["with auth"].stderr
    listed = outputs["with auth"].stdout  # after -vvv's banner
    assert json.loads(listed[listed.index("\n{") + 1:])["db"]["hosts"] == ["10.0.0.7"]
    assert outputs["anonymous"].returncode != 0 and "access denied" in outputs["anonymous"].stderr
    assert all(PASSWORD not in out.stdout + out.stderr for out in outputs.values())
    joined.stop()


def test_secrets_stay_out_of_argv_logs_and_the_child(zk_server, zk_base, auth_file, tmp_path):
    """`zkherd run --auth-file` with -v: the password is in no log line, in neither /proc/PID/cmdline
    nor `ps`, and the child's environment has neither it nor ZKHERD_AUTH (given here as well)."""
    runner = Zkherd(["run", "-v", "--zk", zk_server.hosts, "--auth-file", str(auth_file), "--acl", "auth::rwcda",
                     "--lock", zk_base + "/l", "--register", zk_base + "/reg/r", "--", "sleep", "1000"],
                    tmp_path / "r.log", env={"ZKHERD_AUTH": "%s:%s" % (USER, PASSWORD)})
    runner.wait_log("started child")
    runner.wait_log("registered")
    child = runner.child_pid
    for pid in (runner.pid, child):
        for name in ("cmdline", "environ"):
            if pid == runner.pid and name == "environ":
                continue  # the runner's own environment holds what it was given
            assert PASSWORD.encode() not in Path("/proc/%d/%s" % (pid, name)).read_bytes(), (pid, name)
    environ = Path("/proc/%d/environ" % child).read_bytes().split(b"\0")
    assert not [v for v in environ if v.startswith(b"ZKHERD_AUTH=")]
    assert any(v.startswith(b"ZKHERD_LOCK_PATH=") for v in environ)
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    assert str(child) in ps and PASSWORD not in ps
    runner.stop()
    log = runner.log()
    assert " DEBUG " in log and "lock acquired" in log  # -v: the debug lines were written
    assert PASSWORD not in log


def _role_tasks(role, names):
    tasks = yaml.safe_load((REPO / "roles" / role / "tasks" / "main.yml").read_text())
    picked = [task for task in tasks if task["name"] in names]
    assert [task["name"] for task in picked] == names
    return picked


def test_role_secret_files_are_0600_and_not_logged(tmp_path):
    """The roles' own tasks that write secrets (the runner role's credentials file, the zookeeper
    role's super digest), run as written: files 0600, nothing of the secret in -vvv output."""
    tasks = (_role_tasks("runner", ["Create the zkherd configuration folder", "Write the ZooKeeper credentials file"])
             + _role_tasks("zookeeper", ["Compute the super user's digest",
                                         "Write the super user's digest (root only; the unit passes it to the "
                                         "server as a credential)"]))
    run = run_playbook(tasks, extra_args=["-vvv"], play_vars={
        "runner_config_dir": str(tmp_path / "etc"), "runner_auth_file": str(tmp_path / "etc" / "auth"),
        "runner_auth": "%s:%s" % (USER, PASSWORD), "zookeeper_super_password": PASSWORD,
        "_zookeeper_super": True, "_zookeeper_super_args": str(tmp_path / "super.args")})
    assert run.rc == 0, run.output
    written = {tmp_path / "etc" / "auth": "%s:%s\n" % (USER, PASSWORD),
               tmp_path / "super.args": "superDigest=super:"}
    for path, content in written.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert content in path.read_text()
    assert PASSWORD not in run.output and acl.digest_id("super", PASSWORD).split(":")[1] not in run.output


def test_farm_join_refuses_member_fields_that_are_no_file_names(zk_server, zk, zk_base, tmp_path):
    """A member's fields become files of a DJB directory: '..', 'a/b', '', '.hidden' or an absolute
    path from ZooKeeper are refused with a clear warning and nothing is written anywhere; a symlinked
    folder inside the directory is refused too."""
    farm, conf, outside = zk_base + "/farm", tmp_path / "conf", tmp_path / "outside"
    conf.mkdir()
    outside.mkdir()
    (conf / "enabled").write_text("1\n")
    joined = Zkherd(["farm", "join", "--zk", zk_server.hosts, farm, str(conf), "--name", "m", "--poll", "0.1"],
                    tmp_path / "join.log")
    joined.wait_log("joined the farm")
    node = farm + "/m"
    bad_keys = ["..", "a/b", "", ".hidden", str(outside / "escaped")]
    for count, key in enumerate(bad_keys, start=1):
        zk.set(node, json.dumps({"enabled": "1", "nested": {key: "pwned"}}).encode())
        line = joined.wait_log("cannot sync the member, keeping both sides as they are.*", count=count)
        assert "cannot be a file in a DJB directory" in line and "nothing written" in line, line
    assert sorted(p.name for p in conf.iterdir()) == ["enabled"] and list(outside.iterdir()) == []
    assert not (tmp_path / "pwned").exists()
    zk.set(node, json.dumps({"enabled": "0", "nested": {"ok": "fine"}}).encode())  # a good one goes through
    wait_for(lambda: (conf / "nested" / "ok").exists() and (conf / "enabled").read_text() == "0\n")
    joined.stop()

    (conf / "nested").rename(tmp_path / "nested-moved")
    os.symlink(outside, conf / "nested")  # the DJB directory's folder now leads elsewhere
    again = Zkherd(["farm", "join", "--zk", zk_server.hosts, farm, str(conf), "--name", "m2", "--poll", "0.1"],
                   tmp_path / "join2.log")
    line = again.wait_log("cannot sync the member.*")
    assert "nested is a symlink" in line
    assert zk.exists(farm + "/m2") is None and list(outside.iterdir()) == []
    again.stop()


def test_mirror_dir_does_not_follow_a_symlinked_folder(zk_server, zk, zk_base, tmp_path):
    """--mirror-dir: a folder inside LOCAL_DIR that is a symlink to elsewhere is refused with a clear
    error; nothing is written through it, the child does not start on a partial set."""
    local, outside = tmp_path / "local", tmp_path / "outside"
    local.mkdir()
    outside.mkdir()
    os.symlink(outside, local / "conf.d")
    zk.create(zk_base + "/tree/conf.d/app.conf", b"from zookeeper", makepath=True)
    zk.create(zk_base + "/tree/main.conf", b"main")
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--mirror-dir", "%s=%s" % (local, zk_base + "/tree"), "--",
                     "sleep", "1000"], tmp_path / "r.log")
    line = runner.wait_log("ERROR refusing to write .*")
    assert "%s/conf.d/app.conf" % local in line and "symlink" in line
    assert list(outside.iterdir()) == [] and not (local / "main.conf").exists()
    assert not runner.has("started child")
    (local / "conf.d").unlink()  # fixed locally: the next attempt (every second) installs the set
    runner.wait_log("started child")
    assert (local / "conf.d" / "app.conf").read_bytes() == b"from zookeeper"
    assert (local / "main.conf").read_bytes() == b"main" and list(outside.iterdir()) == []
    runner.stop()


def test_znode_tree_src_symlink_out_of_src_is_refused(zk_server, zk, zk_base, tmp_path):
    src, outside = tmp_path / "src", tmp_path / "outside"
    src.mkdir()
    outside.mkdir()
    (src / "a").write_text("A")
    (outside / "secret").write_text("private")
    os.symlink(outside / "secret", src / "b")
    run = run_playbook([{"name": "load", "zkherd.ops.znode_tree": {"path": zk_base + "/tree", "src": str(src)},
                         "ignore_errors": True}], hosts=zk_server.hosts)
    assert run["load"]["failed"] and "outside the source directory" in run["load"]["msg"]
    assert zk.exists(zk_base + "/tree") is None
