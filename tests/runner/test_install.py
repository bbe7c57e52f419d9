"""install.FileSet on real files, without ZooKeeper: owner and mode kept through the open file,
a short private staging folder, swaps between staging and install harmless or refused with
nothing changed, links and FIFOs never followed or opened. The races themselves, with a real unprivileged user and real
runners: tests/integration/test_local_folders.py."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from zkherd.configfiles.install import FileSet, LocalFileError, Target, is_temp


def temp_files(folder):
    return [p for p in os.listdir(folder) if is_temp(p)]


def test_a_set_is_written_with_the_owner_and_mode_of_the_files_it_replaces(tmp_path):
    (tmp_path / "kept").write_bytes(b"old")
    os.chown(tmp_path / "kept", 4321, 4321)
    os.chmod(tmp_path / "kept", 0o4750)
    (tmp_path / "gone").write_bytes(b"stale")
    files = FileSet()
    files.stage(Target.file(str(tmp_path / "kept")), b"new")
    files.stage(Target.below(str(tmp_path), "sub/dir/new"), b"fresh")
    files.remove(Target.file(str(tmp_path / "gone")))
    assert (tmp_path / "kept").read_bytes() == b"old" and len(temp_files(tmp_path)) == 1  # nothing in place yet
    # the staged file and the new folder with its file: nothing made in place before the install
    assert sorted(os.listdir(tmp_path / temp_files(tmp_path)[0])) == ["kept", "sub"] and not (tmp_path / "sub").exists()
    files.install()
    st = (tmp_path / "kept").stat()
    assert (tmp_path / "kept").read_bytes() == b"new" and (st.st_uid, st.st_gid) == (4321, 4321)
    assert stat.S_IMODE(st.st_mode) == 0o4750  # set-id bits survive: owner set before the mode
    assert (tmp_path / "sub" / "dir" / "new").read_bytes() == b"fresh"
    assert stat.S_IMODE((tmp_path / "sub" / "dir" / "new").stat().st_mode) == 0o644
    assert not (tmp_path / "gone").exists() and temp_files(tmp_path) == []


def test_a_name_of_255_characters_is_staged_in_a_short_private_folder(tmp_path):
    target = Target.file(str(tmp_path / ("x" * 255)))
    files = FileSet()
    files.stage(target, b"long")
    [private] = temp_files(tmp_path)
    assert len(private) == 20 and stat.S_IMODE((tmp_path / private).stat().st_mode) == 0o700
    [(path, staged)] = files.staged_paths()  # through the private folder's descriptor
    assert path == target.path and os.path.samefile(os.path.dirname(staged), tmp_path / private)
    assert staged.startswith("/proc/%d/fd/" % os.getpid()) and Path(staged).read_bytes() == b"long"
    files.install()
    assert (tmp_path / ("x" * 255)).read_bytes() == b"long" and temp_files(tmp_path) == []


def test_a_private_folder_swapped_for_a_link_changes_nothing_but_the_target(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"root's")
    secret.chmod(0o600)
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "app.conf").write_bytes(b"in place")
    files = FileSet()
    files.stage(Target.file(str(folder / "app.conf")), b"new")
    [private] = temp_files(folder)
    os.rename(folder / private, folder / "moved")  # what the user does between staging and install
    os.symlink(tmp_path, folder / private)
    files.install()  # from the private folder's descriptor, wherever it went: our own bytes
    assert (folder / "app.conf").read_bytes() == b"new" and not (folder / "app.conf").is_symlink()
    assert secret.read_bytes() == b"root's" and stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert os.listdir(folder / "moved") == [] and (folder / private).is_symlink()


def test_a_folder_swapped_after_staging_is_refused_and_nothing_changes(tmp_path):
    folder, outside = tmp_path / "shared", tmp_path / "outside"
    (folder / "sub").mkdir(parents=True)
    outside.mkdir()
    (folder / "sub" / "stale").write_bytes(b"x")
    (outside / "stale").write_bytes(b"root's")
    files = FileSet()
    files.remove(Target.below(str(folder), "sub/stale"))
    files.stage(Target.below(str(folder), "main"), b"main")
    os.rename(folder / "sub", folder / "moved")
    os.symlink(outside, folder / "sub")
    with pytest.raises(LocalFileError, match="sub was moved or replaced while they were staged"):
        files.install()
    assert (outside / "stale").read_bytes() == b"root's" and (folder / "moved" / "stale").exists()
    assert not (folder / "main").exists() and temp_files(folder) == []


def test_links_and_fifos_in_place_are_never_followed_or_opened(tmp_path):
    (tmp_path / "target").write_bytes(b"elsewhere")
    os.symlink(tmp_path / "target", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    files = FileSet()
    with pytest.raises(LocalFileError, match="refusing to read .*link: .*link is a symlink"):
        files.read(Target.file(str(tmp_path / "link")))
    with pytest.raises(LocalFileError, match="refusing to write .*link: .*link is a symlink"):
        files.stage(Target.file(str(tmp_path / "link")), b"x")
    done = []
    reader = threading.Thread(target=lambda: done.append(pytest.raises(LocalFileError, files.read,
                                                                       Target.file(str(tmp_path / "fifo")))))
    reader.start()
    reader.join(10)
    assert done and "not a regular file" in str(done[0].value)  # it did not block on the FIFO
    assert files.read(Target.file(str(tmp_path / "missing"))) is None
    files.discard()
    assert (tmp_path / "target").read_bytes() == b"elsewhere"


def test_the_files_below_a_folder_are_listed_without_following_links(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "g").write_bytes(b"")
    os.symlink(tmp_path / "elsewhere", tmp_path / "a" / "link")
    (tmp_path / "a" / ".0123456789ab.zkherd").mkdir()  # a private staging folder of ours: left out
    files = FileSet()
    assert [t.names for t in files.files(str(tmp_path / "a"))] == [("b", "f"), ("link",)]
    files.discard()
