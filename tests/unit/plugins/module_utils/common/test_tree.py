from __future__ import annotations

import collections
import os

import pytest

from ansible_collections.zkherd.ops.plugins.module_utils.common import tree
from ansible_collections.zkherd.ops.plugins.module_utils.common.connection import ZkError

Stat = collections.namedtuple("Stat", "version ephemeralOwner")


def node(path, data=b"", version=0, owner=0, children=()):
    return tree.Node(path, data, Stat(version, owner), list(children))


def test_dir_to_desired(tmp_path):
    (tmp_path / "a").write_bytes(b"A")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".znode").write_bytes(b"folder data")
    (tmp_path / "sub" / "bin").write_bytes(b"\x00\xff")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_bytes(b"ref")
    (tmp_path / "empty").mkdir()
    os.symlink(tmp_path / "a", tmp_path / "link")
    assert tree.desired_from_dir(str(tmp_path), "/r") == {
        "/r": None,
        "/r/a": b"A",
        "/r/empty": None,
        "/r/link": b"A",
        "/r/sub": b"folder data",
        "/r/sub/bin": b"\x00\xff",
    }


def test_dir_exclude_and_data_name(tmp_path):
    (tmp_path / "keep").write_bytes(b"1")
    (tmp_path / "skip.bak").write_bytes(b"2")
    (tmp_path / "_data").write_bytes(b"root")
    assert tree.desired_from_dir(str(tmp_path), "/", data_name="_data", exclude=["*.bak"]) == {
        "/": b"root", "/keep": b"1"}


def test_dir_errors(tmp_path):
    with pytest.raises(ZkError, match="does not exist"):
        tree.desired_from_dir(str(tmp_path / "nope"), "/r")
    (tmp_path / "big").write_bytes(b"x" * (tree.MAX_VALUE_BYTES + 1))
    with pytest.raises(ZkError, match="over the"):
        tree.desired_from_dir(str(tmp_path), "/r")


def test_dir_symlink_loop(tmp_path):
    (tmp_path / "d").mkdir()
    os.symlink(tmp_path, tmp_path / "d" / "loop")
    with pytest.raises(ZkError, match="directory loop"):
        tree.desired_from_dir(str(tmp_path), "/r")


def test_dict_to_desired():
    assert tree.desired_from_dict({".znode": "top", "a": "x", "n": 5, "l": [1, "b"], "none": None,
                                   "d": {"e": True}}, "/r") == {
        "/r": b"top", "/r/a": b"x", "/r/n": b"5", "/r/l": b'[1,"b"]', "/r/none": b"", "/r/d": None,
        "/r/d/e": b"true"}
    with pytest.raises(ZkError, match="must not contain '/'"):
        tree.desired_from_dict({"a/b": "x"}, "/r")
    with pytest.raises(ZkError, match="must be a dict"):
        tree.desired_from_dict(["x"], "/r")


def test_plan_creates_parents_first_and_updates_only_changes():
    current = {"/r": node("/r", children=["a"]), "/r/a": node("/r/a", b"old", version=3)}
    desired = {"/r": None, "/r/a": b"new", "/r/b": None, "/r/b/c": b"c"}
    plan = tree.plan(current, desired, "/r")
    assert plan.creates == [("/r/b", b""), ("/r/b/c", b"c")]
    assert plan.updates == [("/r/a", b"old", b"new", 3)]
    assert plan.deletes == [] and plan.changed


def test_plan_noop():
    current = {"/r": node("/r", b"keep"), "/r/a": node("/r/a", b"x")}
    plan = tree.plan(current, {"/r": None, "/r/a": b"x"}, "/r", prune=True)
    assert not plan.changed and not plan.kept


def test_prune_deepest_first_and_spares_ephemerals_and_their_folders():
    current = {
        "/r": node("/r"),
        "/r/old": node("/r/old"),
        "/r/old/x": node("/r/old/x", b"x", version=2),
        "/r/locks": node("/r/locks"),
        "/r/locks/l-0001": node("/r/locks/l-0001", owner=0x100),
    }
    plan = tree.plan(current, {"/r": None}, "/r", prune=True)
    assert plan.deletes == [("/r/old/x", b"x", 2), ("/r/old", b"", 0)]
    assert plan.kept == [
        ("/r/locks/l-0001", "ephemeral znode owned by session 0x100"),
        ("/r/locks", "holds /r/locks/l-0001, which is kept"),
    ]


def test_ephemeral_data_is_not_updated():
    current = {"/r": node("/r"), "/r/e": node("/r/e", b"a", owner=7)}
    plan = tree.plan(current, {"/r": None, "/r/e": b"b"}, "/r")
    assert not plan.changed and plan.kept == [("/r/e", "ephemeral znode owned by session 0x7")]
