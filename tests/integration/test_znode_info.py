"""zkherd.ops.znode_info against a real ZooKeeper."""

from __future__ import annotations

from tests.support.playbook import run_playbook


def info(name, **args):
    return {"name": name, "zkherd.ops.znode_info": args, "ignore_errors": True}


def test_node_children_subtree_and_missing(zk_server, zk, zk_base):
    zk.create(zk_base + "/app/db", b'{"host": "db1"}', makepath=True)
    zk.create(zk_base + "/app/log", b"info")
    zk.create(zk_base + "/app/db/replica", b'{"host": "db2"}')
    run = run_playbook([
        info("one", path=zk_base + "/app/db", value_type="json"),
        info("children", path=zk_base + "/app", children=True),
        info("tree", path=zk_base + "/app", recursive=True, acl=False),
        info("missing", path=zk_base + "/nope"),
        dict(info("check mode", path=zk_base + "/app/log"), check_mode=True),
    ], hosts=zk_server.hosts)
    one = run["one"]
    assert one["exists"] and one["value"] == {"host": "db1"} and not one["changed"]
    assert one["stat"]["num_children"] == 1 and one["stat"]["ephemeral_owner"] == 0
    assert one["acl"] == [{"scheme": "world", "id": "anyone",
                           "perms": ["read", "write", "create", "delete", "admin"]}]
    assert run["children"]["children"] == ["db", "log"]
    tree = run["tree"]["tree"]
    assert sorted(tree) == [zk_base + "/app/db", zk_base + "/app/db/replica", zk_base + "/app/log"]
    assert tree[zk_base + "/app/log"]["value"] == "info"
    assert "acl" not in run["tree"]
    assert run["missing"] == {**run["missing"], "exists": False, "value": None, "failed": False}
    assert run["check mode"]["value"] == "info"


def test_decode_errors_name_the_znode(zk_server, zk, zk_base):
    zk.create(zk_base + "/bad", b"{broken")
    zk.create(zk_base + "/bin", b"\xff\x00\xfe")
    run = run_playbook([
        info("json", path=zk_base + "/bad", value_type="json"),
        info("raw binary", path=zk_base + "/bin"),
        info("base64", path=zk_base + "/bin", value_type="base64"),
    ], hosts=zk_server.hosts)
    assert run["json"]["failed"] and run["json"]["error_kind"] == "usage"
    assert "data of %s/bad is not valid JSON" % zk_base in run["json"]["msg"]
    assert run["raw binary"]["failed"] and "value_type=base64" in run["raw binary"]["msg"]
    assert run["base64"]["value"] == "/wD+"
