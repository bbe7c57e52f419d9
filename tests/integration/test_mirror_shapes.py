"""Issue 14, "Mirrored sets": any change of a tree's shape under `run --mirror-dir` (a file that becomes
a folder or back, a subtree that appears or goes) is installed as one set; a local error half way
through an install rolls the whole set back, byte for byte, while the child keeps running (same pid)
and the alert runs once per version that failed; a later fix is installed. Also the DJB member folder of
`farm join`. Real ZooKeeper, real `zkherd` processes, real files (chattr +i for a rename that fails)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for
from zkherd.configfiles.install import is_temp

SERVICE = ["sh", "-c", "while :; do sleep 0.1; done"]


def tree(folder):
    """{relative path: bytes of a file, or None for a folder} of everything below *folder*."""
    found = {}
    for here, dirs, files in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(here, name), folder)] = None
        for name in files:
            found[os.path.relpath(os.path.join(here, name), folder)] = Path(here, name).read_bytes()
    return found


def no_leftovers(folder):
    for here, dirs, files in os.walk(folder):
        assert not [n for n in dirs + files if is_temp(n)], (here, dirs, files)


class Mirrored:
    """A runner of `--mirror-dir LOCAL=ROOT` with an alert that appends its message to a file."""

    def __init__(self, zk_server, zk, root, tmp_path, *extra):
        self.local, self.alerts_file = tmp_path / "etc", tmp_path / "alerts"
        alert = 'echo "$ZKHERD_ALERT $ZKHERD_ALERT_MESSAGE" >> %s' % self.alerts_file
        self.runner = Zkherd(["run", "--zk", zk_server.hosts, "--mirror-dir", "%s=%s" % (self.local, root),
                              "--on-change", "none", "--change-delay", "0.05", "--alert", alert, *extra, "--",
                              *SERVICE], tmp_path / "run.log")
        self.runner.wait_log("started child", timeout=30)
        self.child = self.runner.child_pid

    def wait(self, expected, timeout=15):
        wait_for(lambda: tree(self.local) == expected, timeout,
                 message=lambda: "%r\n%s" % (tree(self.local), self.runner.log()[-2500:]))

    def alerts(self):
        return self.alerts_file.read_text().splitlines() if self.alerts_file.exists() else []

    def finish(self):
        """The runner and its first child still up, never a traceback; stop it."""
        try:
            assert self.runner.proc.poll() is None, self.runner.log()[-3000:]
            assert self.runner.child_pid == self.child and self.runner.log().count("started child") == 1
            assert not self.runner.has("Traceback"), self.runner.log()[-3000:]
        finally:
            self.runner.stop()


@pytest.fixture
def chattr():
    """chattr +i on real files, always undone (else pytest cannot remove them)."""
    made = []

    def immutable(path, on=True):
        subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)
        made.append(path)

    yield immutable
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_a_folder_becomes_a_file(zk_server, zk, zk_base, tmp_path):
    root = zk_base + "/cfg"
    zk.create(root + "/a/sub", b"sub\n", makepath=True)
    zk.create(root + "/a/other", b"other\n")
    zk.create(root + "/b", b"b1\n")
    m = Mirrored(zk_server, zk, root, tmp_path)
    try:
        m.wait({"a": None, "a/sub": b"sub\n", "a/other": b"other\n", "b": b"b1\n"})
        txn = zk.transaction()  # a loses its children and gets data: a file now
        txn.delete(root + "/a/sub")
        txn.delete(root + "/a/other")
        txn.set_data(root + "/a", b"a is a file\n")
        txn.commit()
        m.wait({"a": b"a is a file\n", "b": b"b1\n"})
        no_leftovers(m.local)
        assert m.alerts() == []
    finally:
        m.finish()


def test_a_subtree_appears_and_goes(zk_server, zk, zk_base, tmp_path):
    root = zk_base + "/cfg"
    zk.create(root + "/b", b"b1\n", makepath=True)
    m = Mirrored(zk_server, zk, root, tmp_path)
    try:
        m.wait({"b": b"b1\n"})
        txn = zk.transaction()
        for path, data in (("/x", b""), ("/x/y", b""), ("/x/y/z", b"z\n"), ("/x/y/w", b"w\n"), ("/x/v", b"v\n")):
            txn.create(root + path, data)
        txn.commit()
        m.wait({"b": b"b1\n", "x": None, "x/y": None, "x/y/z": b"z\n", "x/y/w": b"w\n", "x/v": b"v\n"})
        zk.delete(root + "/x", recursive=True)  # the whole subtree goes: no empty folder stays behind
        m.wait({"b": b"b1\n"})
        no_leftovers(m.local)
    finally:
        m.finish()


@pytest.mark.parametrize("direction", ["file-to-folder", "folder-to-file"])
def test_a_shape_change_and_a_data_change_in_one_multi(zk_server, zk, zk_base, tmp_path, direction):
    root = zk_base + "/cfg"
    if direction == "file-to-folder":
        zk.create(root + "/a", b"file\n", makepath=True)
    else:
        zk.create(root + "/a/sub", b"sub\n", makepath=True)
    zk.create(root + "/b", b"b1\n")
    # every version the check command saw: the staged set must be whole, never half of the multi
    check = 'printf "%%s\\n" "$ZKHERD_STAGED_FILES" >> %s/checked; exit 0' % tmp_path
    m = Mirrored(zk_server, zk, root, tmp_path, "--check-cmd", check)
    try:
        txn = zk.transaction()
        if direction == "file-to-folder":
            txn.create(root + "/a/sub", b"sub\n")
            wanted = {"a": None, "a/sub": b"sub\n", "b": b"b2\n"}
        else:
            txn.delete(root + "/a/sub")
            txn.set_data(root + "/a", b"file\n")
            wanted = {"a": b"file\n", "b": b"b2\n"}
        txn.set_data(root + "/b", b"b2\n")
        txn.commit()
        m.wait(wanted)
        staged = [line.split("=")[0] for line in (tmp_path / "checked").read_text().splitlines() if line]
        assert str(m.local / "b") in staged and str(m.local / ("a/sub" if direction == "file-to-folder" else "a")) \
            in staged, staged
        m.runner.wait_log("configuration installed", count=2)
        assert not m.runner.has("ERROR"), m.runner.log()[-2000:]
        no_leftovers(m.local)
    finally:
        m.finish()


@pytest.mark.parametrize("shape", ["data-only", "with-a-file-becoming-a-folder"])
def test_a_rename_failing_half_way_rolls_the_whole_set_back(zk_server, zk, zk_base, tmp_path, chattr, shape):
    """Three entries a, b, c in one push; the rename of b (the 2nd) fails because b is immutable.
    a was already in place (a new file, or a new folder where the file a was): it is put back."""
    root = zk_base + "/cfg"
    for name in "abc":
        zk.create(root + "/" + name, name.encode() + b"1\n", makepath=True)
    m = Mirrored(zk_server, zk, root, tmp_path)
    try:
        before = {"a": b"a1\n", "b": b"b1\n", "c": b"c1\n"}
        m.wait(before)
        chattr(m.local / "b")

        def push(version):
            txn = zk.transaction()
            if shape == "data-only":
                txn.set_data(root + "/a", b"a%d\n" % version)
            else:
                txn.create(root + "/a/v%d" % version, b"a%d\n" % version)
            txn.set_data(root + "/b", b"b%d\n" % version)
            txn.set_data(root + "/c", b"c%d\n" % version)
            txn.commit()

        push(2)
        m.runner.wait_log("cannot put .*/b in place: Operation not permitted; the whole set was rolled back")
        m.runner.wait_log("cannot put .*/b in place", count=3)  # tried again every second, still kept out
        assert tree(m.local) == before, tree(m.local)
        wait_for(lambda: len(m.alerts()) == 1, 15, message=lambda: m.runner.log()[-2000:])
        assert m.alerts()[0].startswith("install-failed configuration version ") and "/b in place" in m.alerts()[0]

        push(3)  # a newer version that cannot be installed either: one more alert, no more
        wait_for(lambda: len(m.alerts()) == 2, 15, message=lambda: m.runner.log()[-2000:])
        m.runner.wait_log("cannot put .*/b in place", count=m.runner.log().count("cannot put") + 2)
        assert len(m.alerts()) == 2 and tree(m.local) == before
        no_leftovers(m.local)

        chattr(m.local / "b", on=False)  # the operator fixes it: the newest version goes in, whole
        if shape == "data-only":
            m.wait({"a": b"a3\n", "b": b"b3\n", "c": b"c3\n"})
        else:
            m.wait({"a": None, "a/v2": b"a2\n", "a/v3": b"a3\n", "b": b"b3\n", "c": b"c3\n"})
        no_leftovers(m.local)
    finally:
        m.finish()


def test_a_member_folder_loses_a_field_object(zk_server, zk, zk_base, tmp_path):
    """`farm join` with a DJB folder: a field object that goes in ZooKeeper goes as a whole folder
    (before: an empty folder stayed, read back as the field {})."""
    farm, conf = zk_base + "/farm", tmp_path / "member"
    (conf / "a").mkdir(parents=True)
    (conf / "a" / "b").write_text("1\n")
    (conf / "x").write_text("1\n")
    zk.ensure_path(farm)
    member = Zkherd(["farm", "join", farm, str(conf), "--zk", zk_server.hosts, "--name", "m1", "--poll", "0.1"],
                    tmp_path / "join.log")
    try:
        member.wait_log("joined the farm")
        zk.set(farm + "/m1", json.dumps({"x": "2"}).encode())
        wait_for(lambda: tree(conf) == {"x": b"2\n"}, 15, message=lambda: "%r\n%s" % (tree(conf), member.log()))
        member.wait_log("local configuration updated")
        assert json.loads(zk.get(farm + "/m1")[0]) == {"x": "2"}
        no_leftovers(conf)
        assert member.proc.poll() is None and not member.has("Traceback|WARNING")
    finally:
        member.stop()


@pytest.mark.parametrize("direction", ["file-to-folder", "folder-to-file"])
def test_on_failure_rollback_puts_the_old_shape_back(zk_server, zk, zk_base, tmp_path, direction):
    """A shape change whose restarted child is not healthy is rolled back (--on-failure rollback):
    the old file (or folder with its files) is in place again, byte for byte."""
    root, local = zk_base + "/cfg", tmp_path / "etc"
    if direction == "file-to-folder":
        zk.create(root + "/a", b"file\n", makepath=True)
        before, healthy = {"a": b"file\n", "b": b"b1\n"}, "[ -f %s/a ]" % local
    else:
        zk.create(root + "/a/sub", b"sub\n", makepath=True)
        before, healthy = {"a": None, "a/sub": b"sub\n", "b": b"b1\n"}, "[ -d %s/a ]" % local
    zk.create(root + "/b", b"b1\n")
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--mirror-dir", "%s=%s" % (local, root), "--rolling-lock",
                     zk_base + "/roll", "--on-failure", "rollback", "--health", healthy, "--health-delay", "0.2",
                     "--health-interval", "0.1", "--health-fall", "1", "--", *SERVICE], tmp_path / "run.log")
    try:
        runner.wait_log("child is healthy", timeout=30)
        assert tree(local) == before
        txn = zk.transaction()
        if direction == "file-to-folder":
            txn.create(root + "/a/sub", b"sub\n")
        else:
            txn.delete(root + "/a/sub")
            txn.set_data(root + "/a", b"file\n")
        txn.set_data(root + "/b", b"b2\n")
        txn.commit()
        runner.wait_log("rolled back to the last good configuration", timeout=30)
        wait_for(lambda: tree(local) == before, 15, message=lambda: "%r\n%s" % (tree(local), runner.log()[-2500:]))
        no_leftovers(local)
        assert not runner.has("Traceback|ERROR"), runner.log()[-3000:]
    finally:
        runner.stop()
