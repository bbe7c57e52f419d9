"""Local directories never lead elsewhere through a symlink: znode_tree's src (desired_from_dir)
and a farm member's DJB directory (read_dir), and a member's fields must be plain names before a
DJB directory is written from them (check_dir_names)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.zkherd.ops.plugins.module_utils.common import farm, tree
from ansible_collections.zkherd.ops.plugins.module_utils.common.connection import ZkError


def test_tree_src_symlink_inside_is_followed_outside_refused(tmp_path):
    src, outside = tmp_path / "src", tmp_path / "outside"
    (src / "sub").mkdir(parents=True)
    outside.mkdir()
    (src / "sub" / "a").write_bytes(b"A")
    (outside / "secret").write_bytes(b"not for zookeeper")
    os.symlink(src / "sub" / "a", src / "alias")  # inside src: followed
    os.symlink(src / "sub", src / "subalias")
    assert tree.desired_from_dir(str(src), "/r") == {
        "/r": None, "/r/alias": b"A", "/r/sub": None, "/r/sub/a": b"A", "/r/subalias": None, "/r/subalias/a": b"A"}
    for name, target in (("file", outside / "secret"), ("dir", outside), ("up", tmp_path)):
        link = src / "sub" / name
        os.symlink(target, link)
        with pytest.raises(ZkError, match="is a symlink to .*, outside the source directory"):
            tree.desired_from_dir(str(src), "/r")
        link.unlink()


def test_tree_src_may_itself_be_a_symlink(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a").write_bytes(b"A")
    os.symlink(tmp_path / "real" / "a", tmp_path / "real" / "b")
    os.symlink(tmp_path / "real", tmp_path / "src")
    assert tree.desired_from_dir(str(tmp_path / "src"), "/r") == {"/r": None, "/r/a": b"A", "/r/b": b"A"}


def test_djb_directory_with_a_symlink_is_refused(tmp_path):
    conf, outside = tmp_path / "conf", tmp_path / "outside"
    conf.mkdir()
    outside.mkdir()
    (conf / "enabled").write_text("1\n")
    (outside / "key").write_text("private\n")
    assert farm.read_dir(str(conf)) == {"enabled": "1"}
    os.symlink(outside, conf / "mysql")
    with pytest.raises(farm.FarmError, match="mysql is a symlink"):
        farm.read_dir(str(conf))
    (conf / "mysql").unlink()
    os.symlink(outside / "key", conf / "key")
    with pytest.raises(farm.FarmError, match="key is a symlink"):
        farm.read_dir(str(conf))


@pytest.mark.parametrize("key", ["..", ".", "", ".hidden", "a/b", "/etc/passwd", "nul\0"])
def test_member_fields_that_cannot_be_djb_names(key):
    with pytest.raises(farm.FarmError, match="cannot be a file in a DJB directory"):
        farm.check_dir_names({"ok": "1", "nested": {key: "x"}}, "member /f/m")


def test_member_fields_that_are_djb_names():
    doc = {"enabled": "1", "mysql": {"replication_delay": "0", "x y": "z"}, "a.b": "dotted"}
    assert farm.check_dir_names(doc) == doc
