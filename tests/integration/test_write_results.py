"""Module results that tell what ZooKeeper holds after a write, also when the write was
interrupted or only partly done (issue 12, items 8 and 9).

Item 8: the reply to a transaction is lost (tests/support/faultproxy.py, lose_reply): the server
applied it, the module saw a lost connection. Item 9: one write went through and a later step
failed. In every case `changed`, `created`/`updated`/`deleted` and the message must match the
tree, which each test reads back with its own client.
"""

from __future__ import annotations

import pytest
from kazoo.security import ACL, ANYONE_ID_UNSAFE, Permissions

from tests.support import zkutil
from tests.support.playbook import run_playbook

LEAVES = 1100  # two transactions


def snapshot(zk, root):
    if not zk.exists(root):
        return {}
    return {path: zk.get(path)[0] for path in [root, *zkutil.list_tree(zk, root)]}


def assert_tells_the_truth(result, before, after):
    """created/updated/deleted/changed of a znode_tree result against the tree before and after."""
    created = sorted(set(after) - set(before))
    deleted = sorted(set(before) - set(after))
    updated = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    assert sorted(result.get("created", ["<missing>"])) == created, result.get("msg")
    assert sorted(result.get("updated", ["<missing>"])) == updated, result.get("msg")
    assert sorted(result.get("deleted", ["<missing>"])) == deleted, result.get("msg")
    assert result["changed"] == bool(created or updated or deleted) or result["failed"], result.get("msg")


def leaves(value):
    return {"n%04d" % i: "%s%d" % (value, i) for i in range(LEAVES)}


def tree_task(name, **args):
    return {"name": name, "zkherd.ops.znode_tree": args, "ignore_errors": True}


@pytest.mark.parametrize("nth", [1, 2])
def test_znode_tree_lost_reply_of_a_transaction(zk_server, zk, zk_base, fault_proxy, nth):
    """The 1st (or 2nd) of two transactions is applied but its reply is lost: the module finds
    out that it was applied, goes on, and reports the whole tree as written."""
    root = zk_base + "/lost"
    zk.create(root)
    for i in range(0, LEAVES, 2):  # half exist already: updates and creates
        zk.create("%s/n%04d" % (root, i), b"old")
    before = snapshot(zk, root)
    proxy = fault_proxy()
    proxy.lose_reply("multi", nth=nth)
    result = run_playbook([tree_task("apply", path=root, tree=leaves("v"))], hosts=proxy.hosts)["apply"]
    assert proxy.fired == 1
    after = snapshot(zk, root)
    assert_tells_the_truth(result, before, after)
    assert not result["failed"], result["msg"]
    assert after == {root: b"", **{"%s/n%04d" % (root, i): b"v%d" % i for i in range(LEAVES)}}


def test_znode_tree_lost_reply_of_a_refused_transaction(zk_server, zk, zk_base, fault_proxy):
    """The 2nd transaction is refused by the server (a child for an ephemeral znode) and its reply
    lost: the module finds out that it was not applied, learns why by trying it again, undoes
    the 1st and says so; changed, since it wrote and undid."""
    root = zk_base + "/refused"
    zk.create(root + "/eph", b"", ephemeral=True, makepath=True)
    before = snapshot(zk, root)
    spec = dict(leaves("v"), eph={"child": "impossible"})
    proxy = fault_proxy()
    proxy.lose_reply("multi", nth=2)
    result = run_playbook([tree_task("apply", path=root, tree=spec)], hosts=proxy.hosts)["apply"]
    assert proxy.fired == 1
    assert result["failed"] and result["error_kind"] == "usage", result
    assert "ephemeral znode cannot have children" in result["msg"]
    assert "were undone" in result["msg"], result["msg"]
    assert snapshot(zk, root) == before
    assert_tells_the_truth(result, before, before)
    assert result["changed"], "it wrote (and undid) a transaction"


def test_znode_tree_lost_reply_and_no_connection_to_find_out(zk_server, zk, zk_base, fault_proxy):
    """The connection does not come back: the module cannot know whether the 2nd transaction was
    applied, says so, and reports it apart from what it knows it wrote."""
    root = zk_base + "/unknown"
    proxy = fault_proxy()
    proxy.lose_reply("multi", nth=2, then="drop_new")
    task = tree_task("apply", path=root, tree=leaves("v"), connect_timeout=3)
    result = run_playbook([task], hosts=proxy.hosts)["apply"]
    after = snapshot(zk, root)
    assert len(after) == LEAVES + 1  # the server applied both
    assert result["failed"] and result["error_kind"] == "connect", result
    assert result["changed"]
    assert "cannot tell whether" in result["msg"], result["msg"]
    first = set(result["created"])
    assert first and first | set(result["uncertain"]) == set(after) and not first & set(result["uncertain"])


@pytest.mark.parametrize("nth", [1, 2])
def test_znode_recursive_delete_lost_reply(zk_server, zk, zk_base, fault_proxy, nth):
    root = zk_base + "/doomed"
    zk.create(root)
    for folder in range(11):
        for i in range(100):
            zk.create("%s/d%02d/n%03d" % (root, folder, i), b"x", makepath=True)
    before = snapshot(zk, root)
    proxy = fault_proxy()
    proxy.lose_reply("multi", nth=nth)
    task = {"name": "rm", "ignore_errors": True,
            "zkherd.ops.znode": {"path": root, "state": "absent", "recursive": True}}
    result = run_playbook([task], hosts=proxy.hosts)["rm"]
    assert proxy.fired == 1
    assert not result["failed"], result["msg"]
    assert not zk.exists(root)
    assert result["changed"] and sorted(result["deleted"]) == sorted(before)


# -- item 9: a write went through, a later step failed ------------------------------------


def test_znode_value_written_then_acl_change_refused(zk_server, zk, zk_base):
    path = zk_base + "/rw"
    zk.create(path, b"old", acl=[ACL(Permissions.READ | Permissions.WRITE, ANYONE_ID_UNSAFE)])
    task = {"name": "set", "ignore_errors": True, "zkherd.ops.znode": {
        "path": path, "value": "new", "acl": [{"scheme": "world", "perms": "rwcda"}]}}
    result = run_playbook([task], hosts=zk_server.hosts)["set"]
    assert zk.get(path)[0] == b"new"  # the value was written before the ACL was refused
    assert result["failed"] and result["error_kind"] == "auth", result
    assert result["changed"], "the value was written: changed"
    assert "was written, but its ACL was not changed" in result["msg"], result["msg"]


@pytest.mark.parametrize("acl", [
    {"scheme": "world", "perms": "w"},
    {"scheme": "digest", "id": "someone:qlzQzCLKhBROghkooLvb+Mlwv4A=", "perms": "all"},
], ids=["world-w", "foreign-digest"])
def test_znode_created_with_an_acl_that_denies_reading_it_back(zk_server, zk_admin, zk_base, acl):
    path = zk_base + "/secret"
    task = {"name": "create", "ignore_errors": True, "zkherd.ops.znode": {"path": path, "value": "s", "acl": [acl]}}
    result = run_playbook([task], hosts=zk_server.hosts)["create"]
    assert zk_admin.get(path)[0] == b"s"  # created
    assert result["changed"], "the znode was created: changed"
    assert result["exists"] is True
    assert "created" in result["msg"] and "read" in result["msg"], result["msg"]


def test_znode_tree_undo_that_fails_is_reported(zk_server, zk, zk_admin, zk_base):
    """The 2nd transaction fails; the undo of the 1st is refused too (the created folder's ACL
    has no delete permission): changed, and the result lists what is left."""
    root = zk_base + "/stuck"
    zk.create(root + "/eph", b"", ephemeral=True, makepath=True)
    before = snapshot(zk_admin, root)
    spec = {"d": leaves("v"), "eph": {"child": "impossible"}}
    task = tree_task("apply", path=root, tree=spec, acl=[{"scheme": "world", "perms": "rwca"}])
    result = run_playbook([task], hosts=zk_server.hosts)["apply"]
    assert result["failed"] and result["error_kind"] == "usage", result["msg"]
    after = snapshot(zk_admin, root)
    assert len(after) > len(before)  # the first transaction stayed
    assert result["changed"]
    assert_tells_the_truth(result, before, after)
    assert "undoing" in result["msg"] and "remain" in result["msg"], result["msg"]


def test_farm_create_with_a_restrictive_acl_leaves_nothing_or_says_so(zk_server, zk_admin, zk_base):
    """create: true with missing parents and an ACL without create permission: the parent is made
    with that ACL, then the member cannot be made under it. Either nothing is left, or the task
    says changed."""
    farm = zk_base + "/farms/web"
    task = {"name": "join", "ignore_errors": True, "zkherd.ops.farm": {
        "farm": farm, "member": "m1", "set": {"a": "1"}, "create": True, "acl": [{"scheme": "world", "perms": "rw"}]}}
    result = run_playbook([task], hosts=zk_server.hosts)["join"]
    assert result["failed"] and result["error_kind"] == "auth", result
    left = zkutil.list_tree(zk_admin, zk_base)
    assert result["changed"] == bool(left), (left, result)
