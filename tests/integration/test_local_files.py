"""What zkherd finds in the folders it writes (docs/security.md, "Local folders"): files of any size
(never read whole: sizes are compared first, and what must be read is bounded), the mode of the
files it creates (--file-mode), stale links, FIFOs and sockets, and the private staging folders a
crash left behind. Real runners, a real ZooKeeper, real files (sparse ones of 8 GiB under a 1 GiB
address-space limit, as the review made them)."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat

from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for

SERVE = "trap 'exit 0' TERM; while :; do sleep 0.05; done"
MEMORY_LIMIT = 1 << 30
LIMITED = ["prlimit", "--as=%d" % MEMORY_LIMIT]  # a whole 8 GiB read ends in MemoryError, not an OOM kill


def sparse(path, size=8 << 30):
    """A file of *size* bytes that uses no disk."""
    with open(path, "wb") as handle:
        handle.truncate(size)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_huge_file_in_place_is_replaced_without_being_read(zk_server, zk, zk_base, tmp_path):
    """A sparse 8 GiB file where the runner writes - the mirrored file, the export's DEST: it is a
    change (its size says so), replaced, never read. Before: MemoryError, a traceback, exit 1."""
    folder = tmp_path / "conf"
    folder.mkdir()
    conf, znode = folder / "app.conf", zk_base + "/app.conf"
    sparse(conf)
    zk.create(znode, b"v1\n")
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--change-delay", "0.1", "--mirror", "%s=%s" % (conf, znode),
                     "--on-failure", "rollback",  # copies are kept for it only
                     "--", "sh", "-c", SERVE], tmp_path / "run.log", prefix=LIMITED)
    runner.wait_log("started child|Traceback", timeout=60)
    assert not runner.has("Traceback") and conf.read_bytes() == b"v1\n", runner.log()[-3000:]
    line = runner.wait_log("WARNING .*not kept for.*")
    assert str(conf) in line and "bigger than" in line, line
    sparse(conf)  # and again while it runs
    zk.set(znode, b"v2\n")
    wait_for(lambda: conf.stat().st_size == 3 or runner.proc.poll() is not None, 30, message=runner.log)
    assert conf.read_bytes() == b"v2\n" and not runner.has("Traceback"), runner.log()[-3000:]
    runner.stop()

    dest = tmp_path / "farm.json"
    sparse(dest)
    zk.create(zk_base + "/farm/a", b'{"n": "1"}', makepath=True)
    exporter = Zkherd(["farm", "export", "--zk", zk_server.hosts, zk_base + "/farm", str(dest), "--once"],
                      tmp_path / "export.log", prefix=LIMITED)
    assert exporter.wait(60) == 0, exporter.log()
    assert json.loads(dest.read_text()) == {"a": {"n": "1"}}


def test_a_huge_member_file_is_refused_not_read(zk_server, zk, zk_base, tmp_path):
    """`farm join` must read CONF (a JSON file, or a DJB directory's files): one over the bound is
    refused with a message that says so, the join goes on and joins once the file is fixed.
    Before: MemoryError, a traceback, exit 1."""
    farm = zk_base + "/farm"
    conf = tmp_path / "member.json"
    sparse(conf)
    joined = Zkherd(["farm", "join", "--zk", zk_server.hosts, farm, str(conf), "--name", "m1", "--poll", "0.1"],
                    tmp_path / "join.log", prefix=LIMITED)
    line = joined.wait_log("cannot sync the member.*|Traceback", timeout=60)
    assert "%s is bigger than" % conf in line and joined.proc.poll() is None, joined.log()[-3000:]
    conf.write_text('{"enabled": "1"}\n')
    wait_for(lambda: zk.exists(farm + "/m1"), 30, message=joined.log)
    joined.stop()

    djb = tmp_path / "djb"
    djb.mkdir()
    (djb / "enabled").write_text("1\n")
    sparse(djb / "blob")
    joined = Zkherd(["farm", "join", "--zk", zk_server.hosts, farm, str(djb), "--name", "m2", "--poll", "0.1"],
                    tmp_path / "join2.log", prefix=LIMITED)
    line = joined.wait_log("cannot sync the member.*|Traceback", timeout=60)
    assert "%s is bigger than" % (djb / "blob") in line and joined.proc.poll() is None, joined.log()[-3000:]
    (djb / "blob").unlink()
    wait_for(lambda: zk.exists(farm + "/m2"), 30, message=joined.log)
    assert json.loads(zk.get(farm + "/m2")[0]) == {"enabled": "1"}
    joined.stop()


def test_new_files_get_the_file_mode_and_files_in_place_keep_theirs(zk_server, zk, zk_base, tmp_path):
    """--file-mode (config key file_mode) is the mode of files zkherd creates; a file in place keeps
    its own. A 0600 secret deleted by someone who can write the folder comes back 0600 with
    --file-mode 0600, not world-readable. Before: the option did not exist (exit 64), and the
    secret came back 0644."""
    folder = tmp_path / "conf"
    folder.mkdir()
    secret, kept = folder / "secret.conf", folder / "kept.conf"
    for path, perms in ((secret, 0o600), (kept, 0o640)):
        zk.create(zk_base + "/" + path.name, b"v1")
        path.write_bytes(b"v0")
        path.chmod(perms)
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--change-delay", "0.1", "--file-mode", "0600",
                     "--mirror", "%s=%s/%s" % (secret, zk_base, secret.name),
                     "--mirror", "%s=%s/%s" % (kept, zk_base, kept.name), "--", "sh", "-c", SERVE],
                    tmp_path / "run.log")
    runner.wait_log("started child|ERROR|error:", timeout=30)
    assert secret.read_bytes() == kept.read_bytes() == b"v1", runner.log()
    assert (mode(secret), mode(kept)) == (0o600, 0o640)
    secret.unlink()  # what anyone who may write the folder can do
    zk.set(zk_base + "/" + secret.name, b"v2")
    wait_for(lambda: secret.exists() and secret.read_bytes() == b"v2", 30, message=runner.log)
    assert mode(secret) == 0o600
    runner.stop()

    config = tmp_path / "export.yml"
    config.write_text("zk: %s\nfile_mode: '0640'\n" % zk_server.hosts)
    zk.create(zk_base + "/farm/a", b'{"n": "1"}', makepath=True)
    exporter = Zkherd(["farm", "export", "--config", str(config), zk_base + "/farm", str(folder / "farm.json"),
                       "--once"], tmp_path / "export.log")
    assert exporter.wait(60) == 0, exporter.log()
    assert mode(folder / "farm.json") == 0o640

    djb = tmp_path / "djb"
    djb.mkdir()
    (djb / "enabled").write_text("1\n")
    joined = Zkherd(["farm", "join", "--zk", zk_server.hosts, zk_base + "/farm", str(djb), "--name", "m",
                     "--poll", "0.1", "--file-mode", "0600"], tmp_path / "join.log")
    joined.wait_log("joined the farm")
    zk.set(zk_base + "/farm/m", json.dumps({"enabled": "1", "db": {"password": "x"}}).encode())
    wait_for((djb / "db" / "password").exists, 30, message=joined.log)
    assert mode(djb / "db" / "password") == 0o600 and mode(djb / "db") == 0o700
    assert mode(djb / "enabled") == 0o644  # in place before: kept
    joined.stop()

    for bad in ("0999", "4755", "rw-r--r--", ""):
        refused = Zkherd(["farm", "export", "--zk", zk_server.hosts, "--file-mode", bad, zk_base + "/farm",
                          str(folder / "x.json"), "--once"], tmp_path / "bad.log")
        assert refused.wait(60) == 64, refused.log()
    config.write_text("zk: %s\nfile_mode: 0640\n" % zk_server.hosts)  # YAML reads this as the number 416
    refused = Zkherd(["farm", "export", "--config", str(config), zk_base + "/farm", str(folder / "x.json"),
                      "--once"], tmp_path / "bad.log")
    assert refused.wait(60) == 64 and "quoted" in refused.log(), refused.log()
    assert not (folder / "x.json").exists()


def test_stale_links_fifos_and_sockets_never_wedge_a_mirrored_folder(zk_server, zk, zk_base, tmp_path):
    """In a --mirror-dir, entries without a znode are stale and go with the next install; a symlink
    (dangling, or to a root file), a FIFO or a socket among them is removed without being read
    or followed. Before: every install was refused (it read them to keep them for a rollback), so
    the command never started."""
    folder, secret = tmp_path / "d", tmp_path / "secret"
    folder.mkdir()
    secret.write_bytes(b"root's\n")
    os.symlink(secret, folder / "link")
    os.symlink("/nonexistent", folder / "dangling")
    os.mkfifo(folder / "fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "socket"))
    zk.create(zk_base + "/tree/app.conf", b"v1", makepath=True)
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--mirror-dir", "%s=%s/tree" % (folder, zk_base), "--",
                     "sh", "-c", SERVE], tmp_path / "run.log")
    try:
        runner.wait_log("started child", timeout=30)
    finally:
        server.close()
    assert sorted(os.listdir(folder)) == ["app.conf"] and secret.read_bytes() == b"root's\n"
    assert not runner.has("Traceback") and not runner.has("ERROR")
    runner.stop()


def test_private_staging_folders_left_behind_are_swept_and_nothing_else(zk_server, zk, zk_base, tmp_path):
    """A crash (or a user renaming a private folder back) leaves .XXXXXXXXXXXX.zkherd folders. An
    install removes those that are ours (our uid, mode 0700, older than the process, not in use by
    another zkherd) and leaves everything else. Before: they stayed for ever."""
    folder = tmp_path / "conf"
    folder.mkdir()

    def leftover(name, uid=0, perms=0o700):
        path = folder / name
        path.mkdir()
        (path / "app.conf").write_bytes(b"staged before a crash")
        os.chown(path, uid, uid)
        path.chmod(perms)
        return path

    ours = leftover(".0123456789ab.zkherd")
    kept = [leftover(".abcdefabcdef.zkherd", uid=4321), leftover(".cccccccccccc.zkherd", perms=0o755),
            leftover(".0123456789ab.zkherd.bak"), leftover(".not-ours-123.zkherd"), leftover(".bbbbbbbbbbbb.zkherd")]
    busy = os.open(kept[-1], os.O_RDONLY | os.O_DIRECTORY)  # another zkherd staging there right now
    fcntl.flock(busy, fcntl.LOCK_EX)
    zk.create(zk_base + "/app.conf", b"v1")
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--mirror", "%s/app.conf=%s/app.conf" % (folder, zk_base), "--",
                     "sh", "-c", SERVE], tmp_path / "run.log")
    try:
        runner.wait_log("started child", timeout=30)
    finally:
        os.close(busy)
    assert not ours.exists(), os.listdir(folder)
    assert all(path.is_dir() and (path / "app.conf").exists() for path in kept), os.listdir(folder)
    assert (folder / "app.conf").read_bytes() == b"v1" and not runner.has("Traceback")
    runner.stop()
