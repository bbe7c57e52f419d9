"""Issue 14, files side (fixes of the review): what a local user who can write a mirrored folder
plants there, and farm join's empty DJB folders. Real ZooKeeper, real `zkherd` processes, real files."""

from __future__ import annotations

import json
import os

from tests.integration.test_mirror_local_faults import plant_sparse_files
from tests.integration.test_mirror_shapes import SERVICE, Mirrored, tree
from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for


def test_a_stale_folder_holding_a_folder_of_root_is_not_deleted_inside(zk_server, zk, zk_base, tmp_path):
    """The confused deputy: a user who can write the mirrored folder moves in a folder of theirs that
    holds a folder of root's. It goes with the next install (it is stale), but root deletes nothing
    inside root's folder: it stays, aside, and the log says so; the set is installed."""
    root = zk_base + "/cfg"
    zk.create(root + "/a", b"a1\n", makepath=True)
    m = Mirrored(zk_server, zk, root, tmp_path)
    try:
        m.wait({"a": b"a1\n"})
        os.chown(m.local, 65534, 65534)
        (m.local / "x" / "roots").mkdir(parents=True)
        (m.local / "x" / "junk").write_text("junk")
        (m.local / "x" / "roots" / "precious").write_text("root's")
        os.chown(m.local / "x", 65534, 65534)  # the user's folder; x/roots stays root's
        zk.set(root + "/a", b"a2\n")
        m.runner.wait_log("configuration installed.*a", timeout=15)
        wait_for(lambda: (m.local / "a").read_bytes() == b"a2\n", 15)
        m.runner.wait_log("were not deleted", timeout=15)
        kept = [os.path.join(d, f) for d, _s, files in os.walk(m.local) for f in files if f == "precious"]
        assert len(kept) == 1 and ".zkherd" in kept[0], tree(m.local)
        junk = [f for _d, _s, files in os.walk(m.local) for f in files if f == "junk"]
        assert not (m.local / "x").exists() and not junk
        m.finish()
    finally:
        m.runner.stop()


def test_rollback_copies_read_no_planted_file(zk_server, zk, zk_base, tmp_path):
    """--on-failure rollback keeps copies of the mirrored files only (at most a znode's size each):
    400 sparse files of 7.9 MB planted in a stale folder are deleted without being read."""
    root = zk_base + "/cfg"
    zk.create(root + "/a", b"a1\n", makepath=True)
    local = tmp_path / "etc"
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--mirror-dir", "%s=%s" % (local, root), "--on-change", "none",
                     "--on-failure", "rollback", "--change-delay", "0.05", "--", *SERVICE], tmp_path / "run.log",
                    prefix=["prlimit", "--as=%d" % (2 << 30)])
    try:
        runner.wait_log("started child", timeout=30)
        junk = plant_sparse_files(local / "junk")
        zk.set(root + "/a", b"a2\n")
        wait_for(lambda: runner.has("internal error") or (local / "a").read_bytes() == b"a2\n" and not junk.exists(),
                 30, message=lambda: runner.log()[-2000:])
        assert runner.proc.poll() is None and not runner.has("internal error|MemoryError|Traceback"), \
            runner.log()[-2000:]
    finally:
        runner.stop()


def test_a_djb_empty_folder_becoming_a_value(zk_server, zk, zk_base, tmp_path):
    """The field e is {} (an empty folder); set to a value in ZooKeeper, the folder is replaced by a
    file in the same set."""
    farm_path, conf = zk_base + "/farm", tmp_path / "member"
    (conf / "e").mkdir(parents=True)
    (conf / "x").write_text("1\n")
    zk.ensure_path(farm_path)
    member = Zkherd(["farm", "join", farm_path, str(conf), "--zk", zk_server.hosts, "--name", "m1", "--poll", "0.1"],
                    tmp_path / "join.log")
    try:
        member.wait_log("joined the farm")
        zk.set(farm_path + "/m1", json.dumps({"e": "v", "x": "1"}).encode())
        wait_for(lambda: (conf / "e").is_file() and (conf / "e").read_text() == "v\n", 10,
                 message=lambda: "%r\n%s" % (tree(conf), member.log()[-2000:]))
        assert member.proc.poll() is None and not member.has("Traceback|WARNING"), member.log()[-2000:]
    finally:
        member.stop()
