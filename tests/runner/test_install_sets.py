"""install.FileSet as one set, on real files without ZooKeeper (issue 14): shape changes staged whole
and nothing in place before install(), a rename that fails half way undone in reverse order (a real
EPERM: chattr +i), what is in the way moved aside, a symlink still refused, leftovers with folders
inside swept. With real runners: tests/integration/test_mirror_shapes.py."""

from __future__ import annotations

import os
import subprocess

import pytest

from zkherd.configfiles import staging
from zkherd.configfiles.install import FileSet, LocalFileError, Target, is_temp


def tree(folder):
    found = {}
    for here, dirs, files in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(here, name), folder)] = None
        for name in files:
            with open(os.path.join(here, name), "rb") as handle:
                found[os.path.relpath(os.path.join(here, name), folder)] = handle.read()
    return found


def write(folder, files):
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.fixture
def immutable():
    made = []

    def set_on(path):
        subprocess.run(["chattr", "+i", str(path)], check=True)
        made.append(path)

    yield set_on
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_shape_changes_are_staged_whole_and_installed_together(tmp_path):
    write(tmp_path, {"file": b"becomes a folder", "dir/sub": b"its folder becomes a file", "gone/deep/x": b"x",
                     "keep": b"keep"})
    before = tree(tmp_path)
    files = FileSet()
    files.remove(Target.below(str(tmp_path), "gone"))  # a whole folder
    files.remove(Target.below(str(tmp_path), "file"))
    files.stage(Target.below(str(tmp_path), "file/inner/f"), b"f")
    files.stage(Target.below(str(tmp_path), "file/g"), b"g")
    with pytest.raises(LocalFileError, match="dir: it is not a regular file"):  # a folder goes only if removed
        files.stage(Target.below(str(tmp_path), "dir"), b"a file now")
    files.remove(Target.below(str(tmp_path), "dir"))
    files.stage(Target.below(str(tmp_path), "dir"), b"a file now")
    files.stage(Target.below(str(tmp_path), "new/a/b"), b"b")
    assert {k: v for k, v in tree(tmp_path).items() if not is_temp(k.split("/")[0])} == before  # nothing in place
    files.install()
    assert tree(tmp_path) == {"file": None, "file/inner": None, "file/inner/f": b"f", "file/g": b"g",
                              "dir": b"a file now", "new": None, "new/a": None, "new/a/b": b"b", "keep": b"keep"}


@pytest.mark.parametrize("shape", ["data", "file-to-folder", "folder-to-file"])
def test_a_rename_failing_half_way_undoes_the_renames_before_it(tmp_path, immutable, shape):
    write(tmp_path, {"a": b"a1", "b": b"b1", "c": b"c1"} if shape != "folder-to-file" else
          {"a/sub": b"sub", "b": b"b1", "c": b"c1"})
    before = tree(tmp_path)
    immutable(tmp_path / "b")
    files = FileSet()
    if shape == "file-to-folder":
        files.stage(Target.below(str(tmp_path), "a/sub"), b"a2")
    else:
        files.remove(Target.below(str(tmp_path), "a"))
        files.stage(Target.below(str(tmp_path), "a"), b"a2")
    files.stage(Target.below(str(tmp_path), "b"), b"b2")
    files.stage(Target.below(str(tmp_path), "c"), b"c2")
    with pytest.raises(LocalFileError, match="cannot put .*/b in place: Operation not permitted; the whole set "
                                             "was rolled back"):
        files.install()
    assert tree(tmp_path) == before  # byte for byte, no private folder left


def test_what_is_in_the_way_is_moved_aside_and_a_symlink_refused(tmp_path):
    """In a file's own place only what the set removes goes (a path an operator named is never a
    folder to delete); a symlink on the way is refused."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "link")
    files = FileSet()
    with pytest.raises(LocalFileError, match="fifo: it is not a regular file"):
        files.stage(Target.below(str(tmp_path), "fifo"), b"a file now")
    files.remove(Target.below(str(tmp_path), "fifo"))
    files.stage(Target.below(str(tmp_path), "fifo"), b"a file now")
    with pytest.raises(LocalFileError, match="link is a symlink"):
        files.stage(Target.below(str(tmp_path), "link/x"), b"x")
    files.install()
    assert (tmp_path / "fifo").read_bytes() == b"a file now" and os.listdir(tmp_path / "elsewhere") == []


def test_leftover_private_folders_with_folders_inside_are_swept(tmp_path, monkeypatch):
    leftover = tmp_path / ".0123456789ab.zkherd"
    write(leftover, {"staged/deep/file": b"x", "file": b"y"})
    leftover.chmod(0o700)
    monkeypatch.setattr(staging, "STARTED", os.stat(leftover).st_ctime + 1)  # made before this "process"
    files = FileSet()
    files.stage(Target.below(str(tmp_path), "conf"), b"conf")
    files.install()
    assert tree(tmp_path) == {"conf": b"conf"}
