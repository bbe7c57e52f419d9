"""zkherd.ops.znode_tree against a real ZooKeeper: a directory or dict becomes a subtree."""

from __future__ import annotations

from kazoo.exceptions import NoNodeError

from tests.support import zkutil
from tests.support.playbook import run_playbook


def tree_task(name, **args):
    return {"name": name, "zkherd.ops.znode_tree": args, "ignore_errors": True}


def snapshot(zk, root):
    """{path: data} of a subtree, its root included."""
    return {path: zk.get(path)[0] for path in [root, *zkutil.list_tree(zk, root)]}


def make_src(base):
    (base / "db").mkdir(parents=True)
    (base / "db" / ".znode").write_bytes(b"databases")
    (base / "db" / "primary").write_bytes(b'{"host": "db1"}')
    (base / "log_level").write_bytes(b"info")
    (base / "empty").mkdir()
    (base / ".git").mkdir()
    (base / ".git" / "HEAD").write_bytes(b"not config")
    (base / "bin").write_bytes(bytes(range(256)))


def test_directory_check_apply_rerun_change_prune(zk_server, zk, zk_base, tmp_path):
    src = tmp_path / "cfg"
    make_src(src)
    root = zk_base + "/cfg"
    first = run_playbook([
        dict(tree_task("check", path=root, src=str(src)), check_mode=True),
        tree_task("apply", path=root, src=str(src)),
        tree_task("rerun", path=root, src=str(src)),
    ], hosts=zk_server.hosts)
    assert first["check"]["changed"] and first["check"]["transactions"] == 0
    assert first["apply"]["changed"] and first["apply"]["transactions"] == 1
    assert first["apply"]["created"] == first["check"]["created"]
    assert not first["rerun"]["changed"]
    assert snapshot(zk, root) == {
        root: b"", root + "/bin": bytes(range(256)), root + "/db": b"databases",
        root + "/db/primary": b'{"host": "db1"}', root + "/empty": b"", root + "/log_level": b"info"}

    (src / "log_level").write_bytes(b"debug")
    (src / "bin").unlink()
    (src / "new").write_bytes(b"n")
    zk.create(root + "/db/lock", b"held", ephemeral=True)  # someone else's: never pruned
    second = run_playbook([
        dict(tree_task("no prune", path=root, src=str(src)), diff=True),
        dict(tree_task("prune check", path=root, src=str(src), prune=True), check_mode=True, diff=True),
        tree_task("prune", path=root, src=str(src), prune=True),
        tree_task("prune again", path=root, src=str(src), prune=True),
    ], hosts=zk_server.hosts)
    no_prune = second["no prune"]
    assert no_prune["updated"] == [root + "/log_level"] and no_prune["created"] == [root + "/new"]
    assert no_prune["deleted"] == []
    assert no_prune["diff"]["before"] == "%s/log_level: info\n" % root
    assert no_prune["diff"]["after"] == "%s/log_level: debug\n%s/new: n\n" % (root, root)
    check = second["prune check"]
    assert check["deleted"] == [root + "/bin"] and "<binary, 256 bytes, sha256 " in check["diff"]["before"]
    assert check["kept"][0]["path"] == root + "/db/lock"
    assert "ephemeral" in check["kept"][0]["reason"]
    assert second["prune"]["deleted"] == [root + "/bin"] and not second["prune again"]["changed"]
    assert zk.exists(root + "/db/lock") and zk.get(root + "/log_level")[0] == b"debug"


def test_dict_source(zk_server, zk, zk_base):
    root = zk_base + "/features"
    spec = {".znode": "flags", "new_ui": "on", "limits": {"max": 100, "regions": ["eu", "us"]}, "off": None}
    run = run_playbook([tree_task("dict", path=root, tree=spec), tree_task("again", path=root, tree=spec)],
                       hosts=zk_server.hosts)
    assert run["dict"]["changed"] and not run["again"]["changed"], run.output
    assert snapshot(zk, root) == {
        root: b"flags", root + "/new_ui": b"on", root + "/limits": b"", root + "/limits/max": b"100",
        root + "/limits/regions": b'["eu","us"]', root + "/off": b""}


def test_failed_transaction_is_undone(zk_server, zk, zk_base):
    """1,200 new znodes need two transactions; the second fails (a child of an ephemeral znode),
    so the first is undone and the tree is as it was."""
    root = zk_base + "/big"
    zk.create(root + "/eph", b"", ephemeral=True, makepath=True)
    before = snapshot(zk, root)
    spec = {"n%04d" % i: "v%d" % i for i in range(1200)}
    spec["eph"] = {"child": "impossible"}
    run = run_playbook([tree_task("apply", path=root, tree=spec)], hosts=zk_server.hosts)
    result = run["apply"]
    assert result["failed"] and result["error_kind"] == "usage"
    assert "ephemeral znode cannot have children" in result["msg"]
    assert "the 999 operations already committed were undone" in result["msg"]  # 1 op a transaction: the guard
    assert result["changed"] and result["created"] == [], "written, then undone: changed, nothing left"
    assert snapshot(zk, root) == before


def test_many_nodes_in_chunks(zk_server, zk, zk_base):
    root = zk_base + "/many"
    spec = {"d%02d" % d: {"n%03d" % i: "x" * 1000 for i in range(60)} for d in range(25)}  # 1,525 znodes
    run = run_playbook([tree_task("apply", path=root, tree=spec), tree_task("again", path=root, tree=spec)],
                       hosts=zk_server.hosts)
    assert run["apply"]["transactions"] >= 2 and len(run["apply"]["created"]) == 1526
    assert not run["again"]["changed"]
    assert len(zkutil.list_tree(zk, root)) == 1525  # and the root


def test_input_errors_change_nothing(zk_server, zk, zk_base, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok").write_bytes(b"1")
    (src / "huge").write_bytes(b"x" * 1_100_000)
    root = zk_base + "/t"
    run = run_playbook([
        tree_task("too big", path=root, src=str(src)),
        tree_task("missing dir", path=root, src=str(tmp_path / "nope")),
        tree_task("bad name", path=root, tree={"a/b": "x"}),
        tree_task("both", path=root, tree={}, src=str(src)),
    ], hosts=zk_server.hosts)
    assert run["too big"]["error_kind"] == "usage" and "huge" in run["too big"]["msg"]
    assert run["missing dir"]["error_kind"] == "usage"
    assert run["bad name"]["error_kind"] == "usage" and "must not contain '/'" in run["bad name"]["msg"]
    assert run["both"]["failed"] and "mutually exclusive" in run["both"]["msg"]
    try:
        zk.get(root)
        raise AssertionError("nothing should have been created")
    except NoNodeError:
        pass


def test_the_root_needs_write_permission(zk_server, make_zk, zk_base):
    """Every transaction of znode_tree also sets the root's data (unchanged) with the version it read
    (the guard against concurrent writers): credentials that may create and delete under the root,
    but not write it, are refused - with a message that says why - and nothing is written."""
    from zkherd.common import acl
    from zkherd.common.connection import to_kazoo_acls

    owner = make_zk(auth_data=[("digest", "tree:pw")])
    root = zk_base + "/cfg"
    no_write = [("digest", acl.digest_id("tree", "pw"), 31 & ~2)]  # r, c, d, a: everything but w
    owner.create(root, acl=to_kazoo_acls(no_write))
    run = run_playbook([tree_task("load", path=root, tree={"a": "1"}, auth="tree:pw")], hosts=zk_server.hosts)
    failed = run["load"]
    assert failed["failed"] and failed["error_kind"] == "auth" and not failed["changed"], failed
    assert "write permission on it" in failed["msg"] and root in failed["msg"], failed["msg"]
    assert owner.get_children(root) == []
    owner.set_acls(root, to_kazoo_acls([("digest", acl.digest_id("tree", "pw"), 31)]))
    run = run_playbook([tree_task("load", path=root, tree={"a": "1"}, auth="tree:pw")], hosts=zk_server.hosts)
    assert run["load"]["changed"] and owner.get(root + "/a")[0] == b"1", run["load"]

    # so does a recursive delete by zkherd.ops.znode that takes several transactions (1,100 znodes)
    big = zk_base + "/big"
    owner.create(big, acl=to_kazoo_acls(no_write))
    for start in range(0, 1100, 500):
        batch = owner.transaction()
        for i in range(start, min(start + 500, 1100)):
            batch.create("%s/n%04d" % (big, i))
        assert batch.commit() and owner.get_children(big)
    delete = {"name": "delete", "ignore_errors": True,
              "zkherd.ops.znode": {"path": big, "state": "absent", "recursive": True, "auth": "tree:pw"}}
    failed = run_playbook([delete], hosts=zk_server.hosts)["delete"]
    assert failed["failed"] and failed["error_kind"] == "auth" and "write permission on it" in failed["msg"], failed
    assert len(owner.get_children(big)) == 1100


def test_a_tree_that_keeps_changing_fails_after_five_reads(zk_server, zk, zk_base, fault_proxy):
    """A read is one snapshot: a tree that changes while it is read is read again, five times at most;
    under a writer that never stops, znode_info (recursive) and znode_tree fail with
    error_kind=version and change nothing (docs: retry the task, or read a smaller subtree)."""
    import threading

    root = zk_base + "/busy"
    for i in range(30):
        zk.create("%s/n%03d" % (root, i), b"0", makepath=True)
    proxy, stop = fault_proxy(), threading.Event()

    def write():
        """A write lands between every read's first reply (the `exists` that fixes its zxid) and the
        reads after it: the proxy holds the module's requests until the write is answered. A busy
        writer thread instead could be starved by load for a whole read (seen under four busy loops)."""
        proxy.after_reply("exists", then="blackhole")
        armed = 1  # its own count: the rule armed before heal() may fire before this thread runs again
        while not stop.is_set():
            if proxy.wait_fired(armed, timeout=0.1):
                zk.set(root + "/n%03d" % (armed % 30), str(armed).encode())
                proxy.after_reply("exists", then="blackhole")  # armed before the held requests go on
                armed += 1
                proxy.heal()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        run = run_playbook([
            {"name": "info", "zkherd.ops.znode_info": {"path": root, "recursive": True}, "ignore_errors": True},
            tree_task("load", path=root, tree={"extra": "1"}),
        ], hosts=proxy.hosts)
    finally:
        stop.set()
        writer.join()
    assert proxy.fired >= 10, proxy.fired  # five reads per task, each one changed under it
    for task in ("info", "load"):
        result = run[task]
        assert result["failed"] and result["error_kind"] == "version", (task, result)
        assert "kept changing while it was read (5 times)" in result["msg"], result["msg"]
    assert not zk.exists(root + "/extra")
