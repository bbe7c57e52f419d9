"""configfiles/rmtree.py on real folders: no recursion, bounded descriptors, owners respected."""

from __future__ import annotations

import os
import resource

from zkherd.configfiles import rmtree


def _deep(parent, depth):
    fd = os.dup(parent)
    for _level in range(depth):
        os.mkdir("d", dir_fd=fd)
        new = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=new), "wb") as handle:
            handle.write(b"x")
        os.close(fd)
        fd = new
    os.close(fd)


def test_a_tree_5000_deep_is_cleared_with_1024_descriptors(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    fd = os.open(private, os.O_RDONLY | os.O_DIRECTORY)
    _deep(fd, 5000)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        assert rmtree.clear(fd) == []
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        os.close(fd)
    assert os.listdir(private) == []


def test_a_folder_of_another_owner_inside_a_planted_folder_is_left_alone(tmp_path):
    """The confused deputy: a user's folder holding a folder of root's - root deletes the user's
    files, never inside root's folder."""
    private = tmp_path / "private"
    (private / "planted" / "roots").mkdir(parents=True)
    (private / "planted" / "junk").write_text("x")
    (private / "planted" / "roots" / "precious").write_text("keep me")
    os.chown(private / "planted", 65534, 65534)
    fd = os.open(private, os.O_RDONLY | os.O_DIRECTORY)
    try:
        kept = rmtree.clear(fd, {os.geteuid(), 65534})
    finally:
        os.close(fd)
    assert kept == ["roots"]
    assert (private / "planted" / "roots" / "precious").read_text() == "keep me"
    assert not (private / "planted" / "junk").exists()


def test_a_planted_folder_of_an_owner_not_allowed_is_not_entered(tmp_path):
    private = tmp_path / "private"
    (private / "other").mkdir(parents=True)
    (private / "other" / "f").write_text("x")
    (private / "mine").mkdir()
    (private / "mine" / "g").write_text("y")
    os.chown(private / "other", 12345, 12345)
    fd = os.open(private, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert rmtree.clear(fd, {os.geteuid()}) == ["other"]
    finally:
        os.close(fd)
    assert os.listdir(private) == ["other"] and (private / "other" / "f").exists()
