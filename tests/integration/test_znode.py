"""zkherd.ops.znode against a real ZooKeeper: check mode, apply, idempotence, read back, errors."""

from __future__ import annotations

import base64
import json

from kazoo.exceptions import NoNodeError
from kazoo.security import make_digest_acl

from tests.support.playbook import run_playbook


def znode(name, **args):
    return {"name": name, "zkherd.ops.znode": args, "ignore_errors": True}


def test_create_check_mode_apply_rerun(zk_server, zk, zk_base):
    path = zk_base + "/a/b/c"
    run = run_playbook([
        dict(znode("check", path=path, value="hello"), check_mode=True),
        znode("apply", path=path, value="hello"),
        znode("rerun", path=path, value="hello"),
        dict(znode("diff", path=path, value="bye"), check_mode=True, diff=True),
    ], hosts=zk_server.hosts)
    check, apply, rerun, diff = run["check"], run["apply"], run["rerun"], run["diff"]
    assert check["changed"] and check["created_parents"] == [zk_base + "/a", zk_base + "/a/b"]
    assert apply["changed"] and apply["value"] == "hello" and apply["stat"]["version"] == 0
    assert not rerun["changed"]
    no_newline = "\n\\ No newline at end of file\n"  # as diff says it: "a" and "a\n" are two values
    assert diff["changed"] and diff["diff"]["before"] == "hello" + no_newline
    assert diff["diff"]["after"] == "bye" + no_newline
    assert zk.get(path)[0] == b"hello"  # the check-mode runs wrote nothing


def test_check_mode_writes_nothing(zk_server, zk, zk_base):
    run = run_playbook([dict(znode("check", path=zk_base + "/new", value="x"), check_mode=True)],
                       hosts=zk_server.hosts)
    assert run["check"]["changed"]
    assert zk.exists(zk_base + "/new") is None


def test_json_compares_structurally_and_replaces_malformed_data(zk_server, zk, zk_base):
    path = zk_base + "/cfg"
    zk.create(path, b"{not json")
    run = run_playbook([
        znode("fix", path=path, value_type="json", value={"b": [1, 2], "a": {"x": 1}}),
        znode("same", path=path, value_type="json", value='{"a": {"x": 1}, "b": [1, 2]}'),
        znode("bad input", path=path, value_type="json", value="{oops"),
        znode("yaml", path=zk_base + "/y", value_type="yaml", value={"k": [1, 2]}),
        znode("yaml again", path=zk_base + "/y", value_type="yaml", value="k: [1, 2]"),
    ], hosts=zk_server.hosts)
    assert run["fix"]["changed"] and run["fix"]["value"] == {"a": {"x": 1}, "b": [1, 2]}
    assert not run["same"]["changed"]
    assert run["bad input"]["failed"] and run["bad input"]["error_kind"] == "usage"
    assert "not valid JSON" in run["bad input"]["msg"]
    assert json.loads(zk.get(path)[0]) == {"a": {"x": 1}, "b": [1, 2]}  # bad input changed nothing
    assert run["yaml"]["changed"] and not run["yaml again"]["changed"]


def test_binary_values(zk_server, zk, zk_base):
    blob = bytes(range(256)) * 4
    encoded = base64.b64encode(blob).decode()
    run = run_playbook([
        znode("write", path=zk_base + "/bin", value_type="base64", value=encoded),
        znode("again", path=zk_base + "/bin", value_type="base64", value=encoded),
    ], hosts=zk_server.hosts)
    assert run["write"]["changed"] and not run["again"]["changed"]
    assert run["write"]["value"] == encoded
    assert zk.get(zk_base + "/bin")[0] == blob


def test_compare_and_set(zk_server, zk, zk_base):
    path = zk_base + "/cas"
    zk.create(path, b"v0")
    zk.set(path, b"v1")  # now at version 1
    run = run_playbook([
        znode("stale", path=path, value="mine", version=0),
        znode("fresh", path=path, value="mine", version=1),
        znode("rerun", path=path, value="mine", version=1),  # already as asked: no write, no check
        znode("stale delete", path=path, state="absent", version=0),
        znode("missing", path=zk_base + "/nope", value="x", version=3),
    ], hosts=zk_server.hosts)
    assert run["stale"]["failed"] and run["stale"]["error_kind"] == "version"
    assert "version 1, not the expected 0" in run["stale"]["msg"]
    assert run["fresh"]["changed"] and run["fresh"]["stat"]["version"] == 2
    assert not run["rerun"]["changed"] and not run["rerun"]["failed"]
    assert run["stale delete"]["failed"] and run["stale delete"]["error_kind"] == "version"
    assert run["missing"]["failed"] and run["missing"]["error_kind"] == "no_node"
    assert zk.get(path)[0] == b"mine"


def test_makepath_false(zk_server, zk, zk_base):
    run = run_playbook([znode("orphan", path=zk_base + "/x/y", value="1", makepath=False)], hosts=zk_server.hosts)
    assert run["orphan"]["failed"] and run["orphan"]["error_kind"] == "no_node"
    assert "parent %s/x does not exist" % zk_base in run["orphan"]["msg"]
    assert zk.exists(zk_base + "/x") is None


def test_acl_set_report_and_credentials(zk_server, zk, zk_base):
    path = zk_base + "/secret"
    acl = [
        {"scheme": "digest", "username": "alice", "password": "wonder", "perms": "all"},
        {"scheme": "ip", "id": "10.9.0.0/16", "perms": ["read"]},
    ]
    run = run_playbook([
        znode("create", path=path, value="s3cret", acl=acl, auth="alice:wonder"),
        znode("again", path=path, value="s3cret", acl=acl, auth="alice:wonder"),
        {"name": "read without auth", "zkherd.ops.znode_info": {"path": path}, "ignore_errors": True},
        {"name": "read with wrong auth", "zkherd.ops.znode_info": {"path": path, "auth": "alice:bad"},
         "ignore_errors": True},
        {"name": "read with auth", "zkherd.ops.znode_info": {"path": path, "auth": "alice:wonder"}},
        znode("write with wrong auth", path=path, value="hacked", auth="alice:bad"),
        znode("open up", path=path, acl=[{"scheme": "world", "perms": "r"}], auth="alice:wonder"),
    ], hosts=zk_server.hosts)
    assert run["create"]["changed"] and not run["again"]["changed"]
    digest = make_digest_acl("alice", "wonder", all=True).id.id
    assert {(a["scheme"], a["id"]) for a in run["create"]["acl"]} == {("digest", digest), ("ip", "10.9.0.0/16")}
    for name in ("read without auth", "read with wrong auth", "write with wrong auth"):
        assert run[name]["failed"] and run[name]["error_kind"] == "auth", name
        assert "not authorized" in run[name]["msg"]
    assert run["read with auth"]["value"] == "s3cret"
    assert run["open up"]["changed"]
    assert run["open up"]["acl"] == [{"scheme": "world", "id": "anyone", "perms": ["read"]}]
    assert zk.get(path)[0] == b"s3cret"
    assert "wonder" not in json.dumps(run.records)  # no_log: neither auth nor the ACL password come back


def test_delete(zk_server, zk, zk_base):
    root = zk_base + "/tree"
    for leaf in ("a/1", "a/2", "b"):
        zk.create(root + "/" + leaf, b"x", makepath=True)
    run = run_playbook([
        znode("not recursive", path=root, state="absent"),
        dict(znode("check", path=root, state="absent", recursive=True), check_mode=True),
        znode("delete", path=root, state="absent", recursive=True),
        znode("again", path=root, state="absent", recursive=True),
        znode("root", path="/", state="absent", recursive=True),
    ], hosts=zk_server.hosts)
    assert run["not recursive"]["failed"] and run["not recursive"]["error_kind"] == "not_empty"
    assert run["check"]["changed"] and run["check"]["deleted"][-1] == root
    assert run["delete"]["changed"] and sorted(run["delete"]["deleted"]) == sorted(
        [root, root + "/a", root + "/a/1", root + "/a/2", root + "/b"])
    assert not run["again"]["changed"]
    assert run["root"]["failed"] and run["root"]["error_kind"] == "usage"
    try:
        zk.get(root)
        raise AssertionError("tree still there")
    except NoNodeError:
        pass


def test_input_errors_change_nothing(zk_server, zk, zk_base):
    path = zk_base + "/keep"
    zk.create(path, b"good")
    run = run_playbook([
        znode("too big", path=path, value="x" * 1_200_000),
        znode("bad path", path="relative/path", value="x"),
        znode("bad acl", path=path, acl=[{"scheme": "ip"}]),
        znode("unreachable", path=path, value="x", hosts="127.0.0.1:1", connect_timeout=1.5),
        znode("bad hosts", path=path, value="x", hosts="zk1:notaport"),
    ], hosts=zk_server.hosts)
    assert run["too big"]["error_kind"] == "usage" and "over the 1000000 bytes" in run["too big"]["msg"]
    assert run["bad path"]["error_kind"] == "usage" and "must start with '/'" in run["bad path"]["msg"]
    assert run["bad acl"]["error_kind"] == "usage" and "needs an id" in run["bad acl"]["msg"]
    assert run["unreachable"]["error_kind"] == "connect"
    assert "cannot connect to ZooKeeper at 127.0.0.1:1 within 1.5 s" in run["unreachable"]["msg"]
    assert run["bad hosts"]["error_kind"] == "usage"
    assert zk.get(path)[0] == b"good"


def test_env_hosts_and_chroot(zk_server, zk, zk_base):
    run = run_playbook([znode("env", path="/inside", value="1")],
                       env={"ZKHERD_HOSTS": zk_server.hosts + zk_base})
    assert run["env"]["changed"], run.output
    assert zk.get(zk_base + "/inside")[0] == b"1"
