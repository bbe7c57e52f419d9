"""Review of the inotify watcher of `zkherd farm join` (issue 17): CONF reached through a symlink,
CONF's folder removed and made again or swapped by rename, a mount point in UTF-8 in mountinfo, a
new file told only once written, a quick and clean close, errors of the thread reported, folders
moved out of a tree no longer watched. The Watcher alone (no ZooKeeper) and one `farm join` end to end."""

from __future__ import annotations

import json
import os
import threading
import time

from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for
from zkherd.core import fswatch


class Posts:
    """The loop's wakeup.post as the Watcher sees it: counts posts, wait() for the next one."""

    def __init__(self):
        self.n = 0
        self.ev = threading.Event()

    def __call__(self, kind, value=None):
        self.n += 1
        self.ev.set()

    def wait(self, timeout=1.5):
        told = self.ev.wait(timeout)
        self.ev.clear()
        return told


def watch(path, tree=False):
    posts = Posts()
    return fswatch.Watcher(str(path), tree, posts), posts


def test_file_in_symlinked_folder(tmp_path):
    """CONF=/etc/zk/member.json where /etc/zk is a symlink: IN_DONT_FOLLOW on the parent watched nothing."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    conf = tmp_path / "link" / "member.json"
    conf.write_text("{}")
    w, posts = watch(conf)
    try:
        conf.write_text('{"a": "1"}')
        assert posts.wait(), "an edit of CONF was not told"
    finally:
        w.close()


def test_djb_dir_through_symlink(tmp_path):
    """/var/service/db -> /srv/db: the top's watch was refused (ENOTDIR, ignored); edits below still count."""
    real = tmp_path / "real"
    (real / "mysql").mkdir(parents=True)
    (real / "enabled").write_text("0\n")
    (tmp_path / "db").symlink_to(real)
    w, posts = watch(tmp_path / "db", tree=True)
    try:
        (tmp_path / "db" / "enabled").write_text("1\n")
        assert posts.wait(), "echo 1 > db/enabled was not told"
        (real / "mysql" / "port").write_text("3306\n")
        assert posts.wait(), "a file of a subfolder was not told"
    finally:
        w.close()


def test_symlink_inside_tree_not_followed(tmp_path):
    """Below the top, links stay unfollowed (read_dir refuses them): no watch on what they lead to."""
    (tmp_path / "elsewhere").mkdir()
    top = tmp_path / "db"
    top.mkdir()
    (top / "evil").symlink_to(tmp_path / "elsewhere")
    w, posts = watch(top, tree=True)
    try:
        assert str(tmp_path / "elsewhere") not in w._dirs.values() and str(top / "evil") not in w._dirs.values()
    finally:
        w.close()


def test_unwatchable_parent_raises(tmp_path):
    """A parent that cannot be watched (here: not a folder) is a WatchError (the caller polls), never ignored."""
    (tmp_path / "file").write_text("")
    try:
        fswatch.Watcher(str(tmp_path / "file" / "member.json"), False, Posts())
    except fswatch.WatchError as exc:
        assert "cannot watch" in str(exc)
    else:
        raise AssertionError("no WatchError")


def test_file_folder_removed_and_made_again(tmp_path):
    """rm -rf /etc/myapp && mkdir /etc/myapp: the parent's watch went and nothing watched again."""
    folder = tmp_path / "etc"
    folder.mkdir()
    conf = folder / "member.json"
    conf.write_text("{}")
    w, posts = watch(conf)
    try:
        conf.unlink()
        folder.rmdir()
        assert posts.wait()
        folder.mkdir()
        conf.write_text("{}")
        assert posts.wait(), "CONF made again in a new folder was not told"
        conf.write_text('{"a": "2"}')
        assert posts.wait(), "an edit after the folder came back was not told"
        assert w.error is None
    finally:
        w.close()


def test_file_folder_swapped_by_rename(tmp_path):
    """mv etc etc.old; mv etc.new etc: the watch followed etc.old, whose edits no longer matter."""
    folder, new = tmp_path / "etc", tmp_path / "etc.new"
    folder.mkdir()
    new.mkdir()
    conf = folder / "member.json"
    conf.write_text("{}")
    (new / "member.json").write_text('{"a": "1"}')
    w, posts = watch(conf)
    try:
        os.rename(folder, tmp_path / "etc.old")
        os.rename(new, folder)
        assert posts.wait(), "the swap was not told"
        time.sleep(0.1)
        posts.ev.clear()
        conf.write_text('{"a": "2"}')
        assert posts.wait(), "an edit in the new folder was not told"
        (tmp_path / "etc.old" / "member.json").write_text('{"a": "3"}')
        assert not posts.wait(0.3), "the old folder is still watched"
    finally:
        w.close()


def test_djb_dir_swapped_by_rename(tmp_path):
    """The tree's top swapped by rename (a deploy tool): the new tree is watched, also its subfolders."""
    top, new = tmp_path / "db", tmp_path / "db.new"
    top.mkdir()
    (new / "mysql").mkdir(parents=True)
    w, posts = watch(top, tree=True)
    try:
        os.rename(top, tmp_path / "db.old")
        os.rename(new, top)
        assert posts.wait()
        time.sleep(0.1)
        posts.ev.clear()
        (top / "mysql" / "port").write_text("3306\n")
        assert posts.wait(), "an edit in the new tree was not told"
        (tmp_path / "db.old" / "enabled").write_text("1\n")
        assert not posts.wait(0.3), "the old tree is still watched"
    finally:
        w.close()


def test_grandparent_gone_falls_back(tmp_path):
    """When even the folder above CONF's folder goes, inotify cannot tell when CONF is back: error, post."""
    (tmp_path / "a" / "etc").mkdir(parents=True)
    conf = tmp_path / "a" / "etc" / "member.json"
    conf.write_text("{}")
    w, posts = watch(conf)
    try:
        os.rename(tmp_path / "a", tmp_path / "b")
        wait_for(lambda: w.error is not None, timeout=2.0)
        assert "removed or moved" in w.error
        assert posts.n >= 1
    finally:
        w.close()


def test_new_file_told_once_written(tmp_path):
    """IN_CREATE of a plain file counted: a new DJB key was told (and read "") while its writer wrote."""
    top = tmp_path / "db"
    top.mkdir()
    w, posts = watch(top, tree=True)
    try:
        with open(top / "weight", "w") as handle:
            told_while_open = posts.wait(0.4)
            handle.write("100\n")
        assert not told_while_open, "told while the writer still had the new file open"
        assert posts.wait(), "not told once written"
    finally:
        w.close()


def test_folder_moved_out_is_unwatched(tmp_path):
    """A folder moved out of the tree stayed watched (toward fs.inotify.max_user_watches), and its edits posted."""
    top = tmp_path / "db"
    (top / "mysql" / "replication").mkdir(parents=True)
    w, posts = watch(top, tree=True)
    try:
        before = len(w._dirs)
        os.rename(top / "mysql", tmp_path / "mysql")
        assert posts.wait()
        wait_for(lambda: len(w._dirs) == before - 2, timeout=1.0)
        (tmp_path / "mysql" / "replication" / "delay").write_text("3\n")
        assert not posts.wait(0.3)
    finally:
        w.close()


def test_close_is_quick_and_clean(tmp_path):
    """close() waited for select's 0.5 s timeout, and could close the fd under the thread."""
    conf = tmp_path / "member.json"
    conf.write_text("{}")
    w, _posts = watch(conf)
    time.sleep(0.05)
    began = time.monotonic()
    w.close()
    assert time.monotonic() - began < 0.2
    assert not w._thread.is_alive()
    w.close()  # twice: nothing happens


def test_thread_failure_sets_error_and_posts(tmp_path, capfd):
    """Any exception of the thread sets error and posts (the loop polls), never 'Exception in thread'."""
    conf = tmp_path / "member.json"
    conf.write_text("{}")
    w, posts = watch(conf)

    def boom(*args):
        raise RuntimeError("boom")

    w._relevant = boom
    try:
        conf.write_text('{"a": "1"}')
        assert posts.wait()
        assert w.error and "boom" in w.error
    finally:
        w.close()
    assert "Exception in thread" not in capfd.readouterr().err


def test_mountinfo_utf8_and_escapes(tmp_path, monkeypatch):
    """unicode_escape read UTF-8 'é' as 'Ã©': an NFS mount at /mnt/données was taken for ext4."""
    info = tmp_path / "mountinfo"
    info.write_bytes("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
                     "40 22 0:50 / /mnt/donn\u00e9es rw - nfs4 srv:/x rw\n"
                     "41 22 0:51 / /mnt/my\\040share rw - virtiofs share rw\n".encode())
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(
        info if path == "/proc/self/mountinfo" else path, *a, **k))
    monkeypatch.setattr(os.path, "realpath", lambda p: p)
    assert fswatch.fs_type("/mnt/donn\u00e9es/member.json") == "nfs4"
    assert fswatch.fs_type("/mnt/my share/db") == "virtiofs"
    assert "virtiofs" in fswatch.unusable("/mnt/my share/db")
    assert fswatch.fs_type("/etc/x") == "ext4"


def test_join_symlinked_folder_edit_reaches_zookeeper(zk_server, zk, zk_base, tmp_path):
    """End to end: the log said inotify, but an edit in a symlinked folder waited for the 30 s look."""
    farm = zk_base + "/web"
    zk.ensure_path(farm)
    (tmp_path / "real").mkdir()
    (tmp_path / "etc").symlink_to(tmp_path / "real")
    conf = tmp_path / "etc" / "member.json"
    conf.write_text('{"port": "80"}')
    proc = Zkherd(["farm", "join", farm, str(conf), "--zk", zk_server.hosts, "--session-timeout", "1.5",
                   "--name", "m1", "--poll", "30"], tmp_path / "j.log")
    try:
        proc.wait_log("joined the farm")
        assert proc.has("following local edits with inotify")
        conf.write_text('{"port": "81"}')
        wait_for(lambda: json.loads(zk.get(farm + "/m1")[0]) == {"port": "81"}, timeout=3.0)
    finally:
        proc.stop()
    assert not proc.has("Traceback")


def test_join_folder_above_moved_falls_back_to_polling(zk_server, zk, zk_base, tmp_path):
    """When inotify can no longer follow CONF (the folder above its folder moved), the log says so once
    and polling (0.5 s) takes over; before, the watcher's thread ended silently."""
    farm = zk_base + "/web"
    zk.ensure_path(farm)
    (tmp_path / "a" / "etc").mkdir(parents=True)
    conf = tmp_path / "a" / "etc" / "member.json"
    conf.write_text('{"port": "80"}')
    proc = Zkherd(["farm", "join", farm, str(conf), "--zk", zk_server.hosts, "--session-timeout", "1.5",
                   "--name", "m1"], tmp_path / "j.log")
    try:
        proc.wait_log("joined the farm")
        os.rename(tmp_path / "a", tmp_path / "b")
        proc.wait_log("following local edits by polling every 0.5s", timeout=3.0)
        assert proc.has("was removed or moved, and inotify cannot tell when")
        os.rename(tmp_path / "b", tmp_path / "a")
        conf.write_text('{"port": "81"}')
        wait_for(lambda: json.loads(zk.get(farm + "/m1")[0]) == {"port": "81"}, timeout=3.0)
    finally:
        proc.stop()
    assert not proc.has("Traceback")
