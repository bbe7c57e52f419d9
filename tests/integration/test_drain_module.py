"""The zkherd.ops.drain module against a real ZooKeeper and real `zkherd run` runners: it drains a
lock's holder (the standby takes over), check mode writes nothing, a second run is unchanged,
undrain brings the runner back in line, a lost reply on the flag create is one flag and changed
once, and timeout, access denied and a flag with children fail clearly."""

from __future__ import annotations

import json

import pytest
from kazoo.exceptions import NoAuthError
from kazoo.security import make_acl

from tests.integration.test_drain import RUNNERS, runner
from tests.support.playbook import run_playbook
from tests.support.runner import exclusive_child, starts, wait_starts
from tests.support.zkutil import wait_for

FLAGS = "/zkherd/drain/%2Flock"


@pytest.fixture(autouse=True)
def _stop_runners(zk_base):  # noqa: ARG001  # stopped before the base is deleted
    yield
    while RUNNERS:
        RUNNERS.pop().stop()


def drain_task(name, **args):
    return {"name": name, "zkherd.ops.drain": dict(dict(path="/lock"), **args), "ignore_errors": True}


def line_ids(zk, lock):
    return {json.loads(zk.get(lock + "/" + name)[0])["id"] for name in zk.get_children(lock)
            if name.startswith("lock-")}


def test_module_drains_the_holder_check_mode_rerun_and_undrain(zk_server, zk, zk_base, tmp_path):
    hosts, work, lock = zk_server.hosts + zk_base, tmp_path / "w", zk_base + "/lock"
    runner(tmp_path, hosts, "a", "--lock", "/lock", "--", *exclusive_child(work, name="a"))
    wait_starts(work, 1)
    second = runner(tmp_path, hosts, "b", "--lock", "/lock", "--", *exclusive_child(work, name="b"))
    second.wait_log("queued for lock")
    check = run_playbook([dict(drain_task("check", id="a"), check_mode=True)], hosts=hosts, extra_args=["--diff"])
    assert check["check"]["changed"] and check["check"]["diff"]["after"] == "drained\n", check.output
    assert zk.exists(zk_base + FLAGS + "/a") is None and len(starts(work)) == 1  # check mode wrote nothing
    run = run_playbook([drain_task("drain", id="a", timeout=30), drain_task("again", id="a")], hosts=hosts,
                       extra_args=["--diff"])
    drained = run["drain"]
    assert drained["changed"] and drained["drained"] and not drained.get("failed"), run.output
    assert drained["answered"] in ("the runner answered", "no node of it in the lock's line")
    assert drained["diff"]["before"] == "not drained\n" and drained["diff"]["after"] == "drained\n"
    assert drained["seconds"] < 3.0, "drain took %.3f s (session timeout 10 s)" % drained["seconds"]
    print("module drain -> holds nothing: %.3f s (%s)" % (drained["seconds"], drained["answered"]))
    assert " b " in wait_starts(work, 2)[1]
    assert not run["again"]["changed"] and "diff" not in run["again"]
    assert line_ids(zk, lock) == {"b"}
    back = run_playbook([drain_task("undrain", id="a", state="undrained"),
                         drain_task("undrain again", id="a", state="undrained")], hosts=hosts)
    assert back["undrain"]["changed"] and not back["undrain"]["drained"], back.output
    assert not back["undrain again"]["changed"]
    assert zk.get_children(zk_base + FLAGS) == []
    wait_for(lambda: line_ids(zk, lock) == {"a", "b"}, timeout=20)  # a queues again


def test_a_lost_reply_on_the_flag_create_is_one_flag_and_changed_once(zk_server, zk, zk_base, fault_proxy):
    proxy = fault_proxy()
    zk.ensure_path(zk_base + FLAGS)  # the flag's create is the first create the module sends
    proxy.lose_reply("create", nth=1)
    run = run_playbook([drain_task("drain", id="a", wait=False), drain_task("again", id="a", wait=False)],
                       hosts=proxy.hosts + zk_base)
    assert proxy.wait_fired(1, timeout=10)
    assert run["drain"]["changed"] and not run["drain"].get("failed"), run.output
    assert not run["again"]["changed"]
    assert zk.get_children(zk_base + FLAGS) == ["a"]


def test_timeout_access_denied_and_a_flag_with_children_fail_clearly(zk_server, zk, zk_base):
    hosts = zk_server.hosts + zk_base
    zk.create(zk_base + "/zkherd/drain/%2Fother", makepath=True)
    zk.create(zk_base + "/zkherd/drain/%2Fother/x/child", makepath=True)  # not a zkherd flag
    zk.create(zk_base + "/zkherd/drain/%2Fro", acl=[make_acl("world", "anyone", read=True)])
    run = run_playbook([
        drain_task("nobody answers", id="ghost", timeout=1),
        drain_task("denied", path="/ro", id="a", wait=False),
        drain_task("children", path="/other", id="x", state="undrained"),
    ], hosts=hosts)
    late = run["nobody answers"]
    assert late["failed"] and late["error_kind"] == "timeout" and late["changed"], run.output
    assert "flag" in late["msg"] and "stays" in late["msg"] and "Traceback" not in late["msg"]
    assert zk.exists(zk_base + FLAGS + "/ghost") is not None
    denied = run["denied"]
    assert denied["failed"] and denied["error_kind"] == "auth" and "access denied" in denied["msg"], denied
    children = run["children"]
    assert children["failed"] and children["error_kind"] == "not_empty" and "child" in children["msg"], children
    assert zk.exists(zk_base + "/zkherd/drain/%2Fother/x/child") is not None


def test_acl_makes_the_flag_folders_the_operators_own(zk_server, zk, zk_admin, zk_base):
    """Whoever may create a flag takes runners out: with `acl`, the folders the first drain makes and
    the flag belong to the task's credentials (others may not even read them)."""
    run = run_playbook([drain_task("drain", id="a", wait=False, auth="ops:secret",
                                   acl=[{"scheme": "auth", "perms": "all"}])], hosts=zk_server.hosts + zk_base)
    assert run["drain"]["changed"] and not run["drain"].get("failed"), run.output
    for node in (zk_base + "/zkherd", zk_base + "/zkherd/drain", zk_base + FLAGS, zk_base + FLAGS + "/a"):
        acl, _stat = zk_admin.get_acls(node)
        assert [(entry.id.scheme, entry.id.id.split(":")[0], entry.perms) for entry in acl] == \
            [("digest", "ops", 31)], (node, acl)
    with pytest.raises(NoAuthError):  # others may not even read the flags
        zk.get_children(zk_base + FLAGS)


def test_farm_module_marks_a_member_drained_as_zkherd_farm_drain_does(zk_server, zk, zk_base, tmp_path):
    """`zkherd.ops.farm` with `set: {drained: true}` writes what `zkherd farm drain` writes (JSON
    true), so `farm export` leaves the member out; `unset: [drained]` is `farm undrain`."""
    import subprocess
    import sys

    from tests.support.runner import REPO

    farm = zk_base + "/services/web"
    zk.create(farm + "/h1", json.dumps({"hostname": "h1", "enabled": "1"}).encode(), makepath=True)
    zk.create(farm + "/h2", json.dumps({"hostname": "h2", "enabled": "1"}).encode())
    run = run_playbook([
        {"name": "drain", "zkherd.ops.farm": {"farm": "/services/web", "member": "h1", "set": {"drained": True}}},
        {"name": "again", "zkherd.ops.farm": {"farm": "/services/web", "member": "h1", "set": {"drained": True}}},
    ], hosts=zk_server.hosts + zk_base)
    assert run["drain"]["changed"] and not run["again"]["changed"], run.output
    assert json.loads(zk.get(farm + "/h1")[0])["drained"] is True
    dest = str(tmp_path / "web.json")
    export = subprocess.run([sys.executable, "-m", "zkherd", "--zk", zk_server.hosts + zk_base, "farm", "export",
                             "/services/web", dest, "--format", "json", "--once"], cwd=REPO, capture_output=True,
                            text=True, timeout=30, check=False)
    exported = (tmp_path / "web.json").read_text()
    assert export.returncode == 0 and "h2" in exported and "h1" not in exported, (export, exported)
    back = run_playbook([
        {"name": "undrain", "zkherd.ops.farm": {"farm": "/services/web", "member": "h1", "unset": ["drained"]}},
    ], hosts=zk_server.hosts + zk_base)
    assert back["undrain"]["changed"] and "drained" not in json.loads(zk.get(farm + "/h1")[0])
