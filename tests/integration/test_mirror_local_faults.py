"""Mirrored sets under faults (issue 14, found by an adversarial read): tree shapes under --mirror-dir
(an empty root), what a local user who can write the mirrored folder can do (deep folders, huge
planted files, leftovers after a SIGKILL mid-install), farm join's DJB folders. Real ZooKeeper, real
`zkherd` processes, real files; each test states the promise it holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.integration.test_mirror_shapes import SERVICE, Mirrored, no_leftovers, tree
from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for


def _deep(parent, name, depth):
    """A chain of *depth* folders below *name* in the folder *parent* (an fd; relative paths: no PATH_MAX)."""
    os.mkdir(name, dir_fd=parent)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=parent)
    try:
        for _level in range(depth):
            os.mkdir("d", dir_fd=fd)
            new = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = new
    finally:
        os.close(fd)


def _remove_deep(top):
    subprocess.run(["rm", "-rf", str(top)], check=False)


def plant_sparse_files(folder, count=400, size=7_900_000):
    """What a local user plants in a mirrored folder: *count* sparse files just under 8 MB each
    (no disk space; 3 GB if read into memory)."""
    folder.mkdir()
    for i in range(count):
        with open(folder / ("f%03d" % i), "wb") as handle:
            handle.truncate(size)
    return folder


def test_the_mirrored_root_losing_all_its_children_is_a_set_like_any_other(zk_server, zk, zk_base, tmp_path):
    """Deleting the last znodes below the mirrored root (the root is then a leaf): the files go, as
    they do below any other folder - or at least the runner says something that makes sense. Found:
    `refusing to write '' under ...: '' is not a plain file name`, an install-failed alert, and a
    retry every second for ever; the files of the deleted znodes stay."""
    root = zk_base + "/cfg"
    zk.create(root + "/a", b"a\n", makepath=True)
    zk.create(root + "/b", b"b\n")
    m = Mirrored(zk_server, zk, root, tmp_path)
    try:
        m.wait({"a": b"a\n", "b": b"b\n"})
        txn = zk.transaction()
        txn.delete(root + "/a")
        txn.delete(root + "/b")
        txn.commit()
        time.sleep(3)
        assert not m.runner.has("not a plain file name"), m.runner.log()[-2000:]
        assert m.alerts() == [], m.alerts()
    finally:
        m.finish()


def test_an_empty_mirrored_root_at_start(zk_server, zk, zk_base, tmp_path):
    """`run --mirror-dir /etc/app=/cfg` where /cfg exists and has no children yet (made by a
    playbook before the files are pushed): the child should start on an empty folder (or the log
    should say it waits for files). Found: the child never starts, the error names the file ''."""
    root = zk_base + "/cfg"
    zk.create(root, b"", makepath=True)
    local = tmp_path / "etc"
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--mirror-dir", "%s=%s" % (local, root), "--", *SERVICE],
                    tmp_path / "run.log")
    try:
        time.sleep(4)
        assert not runner.has("not a plain file name"), runner.log()[-2000:]
        runner.wait_log("started child", timeout=5)
    finally:
        runner.stop()


def test_a_deep_folder_planted_in_the_mirrored_folder_does_not_end_the_runner(zk_server, zk, zk_base, tmp_path):
    """docs/security.md: a user who can write the mirrored folder cannot wedge it nor make root do
    anything but delete what is there. A folder nested 3,000 deep (mkdir in a loop, as that user)
    that no znode is at goes with the next install: staging.clear() recurses once per level, so the
    RecursionError (not an OSError) escapes FileSet.discard(), the loop reports `internal error,
    exiting`, and the child is stopped - on every push after a restart too (the sweep recurses)."""
    root = zk_base + "/cfg"
    zk.create(root + "/a", b"a1\n", makepath=True)
    m = Mirrored(zk_server, zk, root, tmp_path)
    try:
        m.wait({"a": b"a1\n"})
        os.chown(m.local, 65534, 65534)  # the service's user owns its configuration folder
        folder = os.open(m.local, os.O_RDONLY | os.O_DIRECTORY)  # (pytest's tmp folder is root's: no way in by path)
        pid = os.fork()
        if pid == 0:  # that user plants the tree
            try:
                os.setgid(65534)
                os.setuid(65534)
                _deep(folder, "junk", 3000)
                os._exit(0)
            except BaseException:
                os._exit(1)
        assert os.waitpid(pid, 0)[1] == 0
        os.close(folder)
        zk.set(root + "/a", b"a2\n")  # any push
        wait_for(lambda: m.runner.proc.poll() is not None or m.runner.log().count("configuration installed") >= 2, 15)
        time.sleep(1)
        assert not m.runner.has("internal error"), m.runner.log()[-2000:]
        m.finish()
    finally:
        m.runner.stop()
        _remove_deep(m.local)


def test_rollback_copies_of_a_planted_folder_are_bounded(zk_server, zk, zk_base, tmp_path):
    """docs/security.md: such a user cannot `make root read a file of any size into memory`. Each
    file is read at most 8,000,000 bytes, but ConfigSync.copies() keeps a copy of every file in the
    way of an install - the files of a whole folder that goes included - with no budget for all of
    them. 400 sparse files of 7.9 MB (no disk used) in a folder with no znode: 3 GB read into
    memory on the next push. Under an address-space limit the runner gets a MemoryError and exits
    (`internal error`), the child with it; without one, the OOM killer."""
    root = zk_base + "/cfg"
    zk.create(root + "/a", b"a1\n", makepath=True)
    local = tmp_path / "etc"
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--mirror-dir", "%s=%s" % (local, root), "--on-change", "none",
                     "--change-delay", "0.05", "--", *SERVICE], tmp_path / "run.log",
                    prefix=["prlimit", "--as=%d" % (2 << 30)])
    try:
        runner.wait_log("started child", timeout=30)
        plant_sparse_files(local / "junk")
        zk.set(root + "/a", b"a2\n")
        wait_for(lambda: runner.has("configuration installed.*a2|internal error") or (local / "a").read_bytes()
                 == b"a2\n", 30)
        time.sleep(1)
        assert runner.proc.poll() is None and not runner.has("internal error|MemoryError"), runner.log()[-2000:]
    finally:
        runner.stop()


def test_a_djb_member_with_an_empty_folder_still_takes_changes_from_zookeeper(zk_server, zk, zk_base, tmp_path):
    """`farm join` with a DJB folder holding an empty folder `e` (the field {}): a change made in
    ZooKeeper must reach the folder. Conf.write compares the folder's {} with farm.text({}) = "{}",
    stages the file `e` over the folder, and FileSet refuses (`it is not a regular file`): `could
    not sync the member yet` for ever, as hole 6 did."""
    farm_path, conf = zk_base + "/farm", tmp_path / "member"
    (conf / "e").mkdir(parents=True)
    (conf / "x").write_text("1\n")
    zk.ensure_path(farm_path)
    member = Zkherd(["farm", "join", farm_path, str(conf), "--zk", zk_server.hosts, "--name", "m1", "--poll", "0.1"],
                    tmp_path / "join.log")
    try:
        member.wait_log("joined the farm")
        assert json.loads(zk.get(farm_path + "/m1")[0]) == {"e": {}, "x": "1"}
        zk.set(farm_path + "/m1", json.dumps({"e": {}, "x": "2"}).encode())
        wait_for(lambda: (conf / "x").read_text() == "2\n", 10,
                 message=lambda: "%r\n%s" % (tree(conf), member.log()[-2000:]))
        time.sleep(1)
        assert json.loads(zk.get(farm_path + "/m1")[0]) == {"e": {}, "x": "2"}
        assert member.proc.poll() is None and not member.has("Traceback|WARNING")
    finally:
        member.stop()


def test_a_djb_member_keeps_an_empty_object_an_object(zk_server, zk, zk_base, tmp_path):
    """A field {} set in ZooKeeper: written to the DJB folder as a file holding `{}`, read back as
    the string "{}" - a local change by the merge's rules - and pushed to ZooKeeper: the member's
    {} became "{}" without anyone editing it."""
    farm_path, conf = zk_base + "/farm", tmp_path / "member"
    conf.mkdir()
    (conf / "x").write_text("1\n")
    zk.ensure_path(farm_path)
    member = Zkherd(["farm", "join", farm_path, str(conf), "--zk", zk_server.hosts, "--name", "m1", "--poll", "0.1"],
                    tmp_path / "join.log")
    try:
        member.wait_log("joined the farm")
        zk.set(farm_path + "/m1", json.dumps({"e": {}, "x": "1"}).encode())
        member.wait_log("local configuration updated")
        time.sleep(1.5)
        assert json.loads(zk.get(farm_path + "/m1")[0]) == {"e": {}, "x": "1"}, tree(conf)
    finally:
        member.stop()


def test_a_djb_member_keeps_its_typed_values_through_an_unrelated_local_edit(zk_server, zk, zk_base, tmp_path):
    """Values a DJB file cannot hold as such (5, true, [1], null, {} where no folder is) are written
    as their JSON text and read back as strings. Before, the next sync for any other reason (here a
    local edit of another field) took "5" for a local change and pushed it: the member's 5 became
    "5", true "true", {} "{}" without anyone editing them."""
    farm_path, conf = zk_base + "/farm", tmp_path / "member"
    conf.mkdir()
    (conf / "x").write_text("1\n")
    zk.ensure_path(farm_path)
    member = Zkherd(["farm", "join", farm_path, str(conf), "--zk", zk_server.hosts, "--name", "m1", "--poll", "0.1"],
                    tmp_path / "join.log")
    typed = {"n": 5, "f": 1.5, "b": True, "z": None, "l": [1, "a"], "e": {}, "d": {"k": 7}}
    try:
        member.wait_log("joined the farm")
        zk.set(farm_path + "/m1", json.dumps(dict(typed, x="1")).encode())
        wait_for(lambda: (conf / "n").exists() and (conf / "d" / "k").exists(), 10, message=lambda: tree(conf))
        assert (conf / "n").read_text() == "5\n" and (conf / "d" / "k").read_text() == "7\n"
        (conf / "x").write_text("2\n")  # an edit of another field: the member is written again
        wait_for(lambda: json.loads(zk.get(farm_path + "/m1")[0]).get("x") == "2", 10,
                 message=lambda: member.log()[-2000:])
        time.sleep(1)  # a later turn must not push the text either
        assert json.loads(zk.get(farm_path + "/m1")[0]) == dict(typed, x="2"), tree(conf)
        (conf / "n").write_text("6\n")  # an edit of such a file is a local change: its text is the value
        wait_for(lambda: json.loads(zk.get(farm_path + "/m1")[0]).get("n") == "6", 10,
                 message=lambda: member.log()[-2000:])
        assert member.proc.poll() is None and not member.has("Traceback|WARNING")
    finally:
        member.stop()


def test_a_deep_leftover_private_folder_does_not_end_the_next_runner(zk_server, zk, zk_base, tmp_path):
    """What the test above leaves (a runner ended half way through deleting what an install moved
    aside - or a SIGKILL there): a private folder of ours holding a deep folder. The next runner
    sweeps it before its first install into that folder - staging.sweep -> _empty -> clear(),
    recursive: RecursionError, `internal error, exiting`, on every push, for good."""
    root, local = zk_base + "/cfg", tmp_path / "etc"
    zk.create(root + "/a", b"a1\n", makepath=True)
    local.mkdir()
    (local / "a").write_bytes(b"a1\n")
    leftover = os.open(local, os.O_RDONLY | os.O_DIRECTORY)
    os.mkdir(".0123456789ab.zkherd", 0o700, dir_fd=leftover)
    inside = os.open(".0123456789ab.zkherd", os.O_RDONLY | os.O_DIRECTORY, dir_fd=leftover)
    _deep(inside, "junk", 3000)
    os.close(inside)
    os.close(leftover)
    time.sleep(0.05)  # made before the runner started: a leftover it may sweep
    m = Mirrored(zk_server, zk, root, tmp_path)
    try:
        zk.set(root + "/a", b"a2\n")
        wait_for(lambda: m.runner.proc.poll() is not None or m.runner.has("configuration installed"), 15)
        time.sleep(1)
        m.finish()
    finally:
        m.runner.stop()
        _remove_deep(local)


def _strace_kill_at_rename(runner, nth, tmp_path):
    """Hold the runner's *nth* renameat (counted from now) before it happens, and SIGKILL it there."""
    trace = subprocess.Popen(["strace", "-f", "-qq", "-o", str(tmp_path / "strace.out"), "-p", str(runner.pid),
                              "-e", "trace=renameat,renameat2",
                              "-e", "inject=renameat,renameat2:delay_enter=20000000:when=%d" % nth])
    time.sleep(1.0)  # attached
    return trace


@pytest.mark.parametrize("nth", [1, 2, 3])
def test_sigkill_half_way_through_a_shape_change(zk_server, zk, zk_base, tmp_path, nth):
    """docs/runner.md, "All or nothing": a runner killed half way through the renames leaves the set
    partly new and what it displaced in a .XXXXXXXXXXXX.zkherd folder; the restarted runner installs
    the whole newest set before it starts the command, and sweeps those folders. A folder `a`
    becomes a file in one multi with a change of `b/x` (another folder): the runner is SIGKILLed
    before its *nth* rename."""
    root = zk_base + "/cfg"
    zk.create(root + "/a/sub", b"sub\n", makepath=True)
    zk.create(root + "/b/x", b"x1\n", makepath=True)
    m = Mirrored(zk_server, zk, root, tmp_path)
    local = m.local
    try:
        m.wait({"a": None, "a/sub": b"sub\n", "b": None, "b/x": b"x1\n"})
        trace = _strace_kill_at_rename(m.runner, nth, tmp_path)
        txn = zk.transaction()
        txn.delete(root + "/a/sub")
        txn.set_data(root + "/a", b"file\n")
        txn.set_data(root + "/b/x", b"x2\n")
        txn.commit()
        wait_for(lambda: "renameat" in (tmp_path / "strace.out").read_text(), 10)
        time.sleep(0.5)
        os.kill(m.runner.pid, signal.SIGKILL)
        trace.terminate()
        trace.wait(10)
        m.runner.proc.wait(10)
        print("after the kill:", tree(local), sorted(os.listdir(local)), sorted(os.listdir(local / "b")))
    finally:
        m.runner.stop()
    os.rename(tmp_path / "run.log", tmp_path / "run1.log")
    again = Mirrored(zk_server, zk, root, tmp_path)  # the same folder, a new runner
    try:
        again.wait({"a": b"file\n", "b": None, "b/x": b"x2\n"})
        no_leftovers(local)
    finally:
        again.finish()
