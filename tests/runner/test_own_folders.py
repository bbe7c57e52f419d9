"""Folders zkherd makes itself are emptied and removed like any of its own (issue 14, found by a third
adversarial read, failed before the fix): the rule of rmtree.py that keeps a folder of ours that
others may write must not hold them back - with --file-mode 0664 under umask 002 they used to be
0775, so a discarded staged set and a mirrored folder whose znodes went were left behind."""

from __future__ import annotations

import os

import pytest

from zkherd.configfiles.install import FileSet, Target


@pytest.fixture
def umask002():
    old = os.umask(0o002)
    yield
    os.umask(old)


def privates(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".zkherd"))


def test_a_set_not_installed_leaves_no_private_folder_with_group_writable_new_folders(tmp_path, umask002):
    """A staged set that is discarded (refused by --check-cmd, say) must leave nothing behind."""
    files = FileSet(0o664)
    files.stage(Target.below(str(tmp_path), "new/deeper/f"), b"f")
    files.discard()
    assert privates(tmp_path) == []


def test_a_folder_zkherd_made_is_deleted_when_its_znodes_go(tmp_path, umask002):
    files = FileSet(0o664)
    files.stage(Target.below(str(tmp_path), "conf.d/sub/a.conf"), b"a")
    files.install()
    assert oct(os.stat(tmp_path / "conf.d").st_mode & 0o777) == "0o755"  # zkherd's alone, whatever the file mode
    files = FileSet(0o664)
    files.remove(Target.below(str(tmp_path), "conf.d"))
    files.install()
    assert files.left_alone == []
    assert privates(tmp_path) == []
