"""`zkherd tree load|dump|diff` against a real ZooKeeper: round trips, --prune, --dry-run,
ephemeral znodes, transactions in several chunks, symlinks in DIR, a tree that changes while read."""

from __future__ import annotations

import os
import subprocess
import sys

from kazoo.client import KazooClient

from tests.support import zkutil
from tests.support.runner import REPO


def zkherd(hosts, *args, stdin=None):
    return subprocess.run([sys.executable, "-m", "zkherd", *args, "--zk", hosts], cwd=REPO, input=stdin,
                          capture_output=True, timeout=120, check=False)


def text(run):
    return run.stdout.decode(), run.stderr.decode()


def snapshot(zk, root):
    return {path: zk.get(path)[0] for path in [root, *zkutil.list_tree(zk, root)]}


def make_src(base):
    (base / "db").mkdir(parents=True)
    (base / "db" / ".znode").write_bytes(b"databases")
    (base / "db" / "primary").write_bytes(b'{"host": "db1"}')
    (base / "log_level").write_bytes(b"info")
    (base / "empty").mkdir()
    (base / ".git").mkdir()
    (base / ".git" / "HEAD").write_bytes(b"not config")
    (base / "bin").write_bytes(bytes(range(256)))


def test_load_dump_diff_round_trip(zk_server, zk, zk_base, tmp_path):
    src, root = tmp_path / "src", zk_base + "/cfg"
    make_src(src)
    dry = zkherd(zk_server.hosts, "tree", "load", str(src), root, "--dry-run")
    assert dry.returncode == 0, text(dry)
    assert "create %s/db/primary" % root in text(dry)[0] and "dry run: nothing was changed" in text(dry)[0]
    assert zk.exists(root) is None  # a dry run changes nothing
    first = zkherd(zk_server.hosts, "tree", "load", str(src), root)
    assert first.returncode == 0, text(first)
    assert zk.get(root + "/db")[0] == b"databases" and zk.get(root + "/bin")[0] == bytes(range(256))
    assert zk.exists(root + "/.git") is None  # hidden names are left out, as the module does
    assert text(first)[0].endswith("6 created, 0 updated, 0 deleted, 0 kept, in 1 transaction\n")
    again = zkherd(zk_server.hosts, "tree", "load", str(src), root)
    assert text(again)[0] == "0 created, 0 updated, 0 deleted, 0 kept, in 0 transactions\n"
    assert zkherd(zk_server.hosts, "tree", "diff", str(src), root).returncode == 0

    out = tmp_path / "dumped"
    dumped = zkherd(zk_server.hosts, "tree", "dump", root, str(out))
    assert dumped.returncode == 0, text(dumped)
    assert (out / "db" / ".znode").read_bytes() == b"databases" and (out / "bin").read_bytes() == bytes(range(256))
    assert (out / "empty").read_bytes() == b""  # no children: a file
    same = zkherd(zk_server.hosts, "tree", "diff", str(out), root)
    assert (same.returncode, same.stdout) == (0, b""), text(same)

    zk.set(root + "/log_level", b"debug")
    zk.create(root + "/extra", b"x")
    changed = zkherd(zk_server.hosts, "tree", "diff", str(out), root)
    assert changed.returncode == 1
    assert text(changed)[0] == ("- %s/extra\n~ %s/log_level\n  - debug\n  + info\n" % (root, root))
    refused = zkherd(zk_server.hosts, "tree", "dump", root, str(out))
    assert refused.returncode == 73 and "not empty" in text(refused)[1]
    assert zkherd(zk_server.hosts, "tree", "dump", root, str(out), "--force").returncode == 0
    assert (out / "log_level").read_bytes() == b"debug"


def test_prune_keeps_ephemeral_znodes(zk_server, zk, make_zk, zk_base, tmp_path):
    src, root = tmp_path / "src", zk_base + "/app"
    (src / "members").mkdir(parents=True)
    (src / "keep").write_bytes(b"1")
    zk.create(root + "/old/deep", b"x", makepath=True)
    zk.create(root + "/keep", b"0")
    owner = make_zk()
    owner.create(root + "/members/host1", b"{}", ephemeral=True, makepath=True)
    owner.create(root + "/gone/lock", b"", ephemeral=True, makepath=True)
    without = zkherd(zk_server.hosts, "tree", "load", str(src), root)
    assert zk.exists(root + "/old/deep") and "0 deleted" in text(without)[0]
    dry = zkherd(zk_server.hosts, "tree", "load", str(src), root, "--prune", "--dry-run")
    assert "delete %s/old/deep" % root in text(dry)[0] and zk.exists(root + "/old/deep")
    pruned = zkherd(zk_server.hosts, "tree", "load", str(src), root, "--prune")
    out = text(pruned)[0]
    assert pruned.returncode == 0, text(pruned)
    assert "delete %s/old/deep\ndelete %s/old\n" % (root, root) in out
    assert "keep %s/members/host1 (ephemeral znode owned by session" % root in out
    assert "keep %s/gone (holds %s/gone/lock, which is kept)" % (root, root) in out
    assert zk.exists(root + "/old") is None and zk.exists(root + "/members/host1") and zk.exists(root + "/gone/lock")
    diff = zkherd(zk_server.hosts, "tree", "diff", str(src), root)
    # (fix review 15, L3) after the prune nothing is left to change: kept znodes are listed, not counted
    assert diff.returncode == 0, text(diff)
    assert "= %s/members/host1 (kept: ephemeral znode owned by session" % root in text(diff)[0]
    assert "= %s/gone (kept: holds %s/gone/lock, which is kept)" % (root, root) in text(diff)[0]


def test_several_transactions(zk_server, zk, zk_base, tmp_path):
    """2,500 znodes: more than one transaction of at most 1,000 operations (txn.MAX_OPS)."""
    src, root = tmp_path / "src", zk_base + "/big"
    for folder in range(5):
        (src / ("f%d" % folder)).mkdir(parents=True)
        for index in range(499):
            (src / ("f%d" % folder) / ("k%03d" % index)).write_bytes(b"v%d" % index)
    loaded = zkherd(zk_server.hosts, "tree", "load", str(src), root)
    assert loaded.returncode == 0, text(loaded)
    assert text(loaded)[0].endswith("2501 created, 0 updated, 0 deleted, 0 kept, in 3 transactions\n")
    assert len(zkutil.list_tree(zk, root)) == 2500
    assert zkherd(zk_server.hosts, "tree", "diff", str(src), root).returncode == 0


def test_dump_never_follows_a_symlink(zk_server, zk, zk_base, tmp_path):
    root = zk_base + "/s"
    zk.create(root + "/dir/file", b"new", makepath=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / "dir")
    refused = zkherd(zk_server.hosts, "tree", "dump", root, str(out), "--force")
    assert refused.returncode == 73 and "symlink" in text(refused)[1], text(refused)
    assert list(victim.iterdir()) == []
    link = tmp_path / "link"
    os.symlink(victim, link)
    assert zkherd(zk_server.hosts, "tree", "dump", root, str(link)).returncode == 73
    assert list(victim.iterdir()) == []


def test_bad_input(zk_server, zk, zk_base, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "huge").write_bytes(b"x" * 1_000_001)
    big = zkherd(zk_server.hosts, "tree", "load", str(src), zk_base + "/x")
    assert big.returncode == 64 and "over the 1000000 bytes" in text(big)[1]
    assert zkherd(zk_server.hosts, "tree", "load", str(tmp_path / "nope"), zk_base).returncode == 64
    assert zkherd(zk_server.hosts, "tree", "diff", str(src), "no/slash").returncode == 64
    missing = zkherd(zk_server.hosts, "tree", "dump", zk_base + "/absent", str(tmp_path / "o"))
    assert missing.returncode == 66 and "does not exist" in text(missing)[1]
    unreachable = zkherd("127.0.0.1:1", "tree", "dump", zk_base, str(tmp_path / "o"), "--connect-timeout", "1")
    assert unreachable.returncode == 69
    for run in (big, missing):
        assert b"Traceback" not in run.stderr


def test_tree_changing_while_loaded(zk_server, zk, zk_base, tmp_path):
    """A writer that never pauses: every load either reads one snapshot or fails with 75, changing nothing."""
    import threading

    root = zk_base + "/busy"
    src = tmp_path / "src"
    for folder in range(4):
        (src / ("f%d" % folder)).mkdir(parents=True)
        for index in range(200):
            (src / ("f%d" % folder) / ("k%d" % index)).write_bytes(b"v")
    zk.create(root, b"")
    stop = threading.Event()
    writer = KazooClient(hosts=zk_server.hosts)
    writer.start()

    def churn():
        count = 0
        while not stop.is_set():
            writer.create(root + "/churn%06d" % count, b"")
            count += 1

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        results = [zkherd(zk_server.hosts, "tree", "load", str(src), root) for _attempt in range(3)]
    finally:
        stop.set()
        thread.join()
        writer.stop()
    for result in results:
        assert result.returncode in (0, 75), text(result)
        if result.returncode == 75:
            assert "kept changing while it was read" in text(result)[1] or "another writer" in text(result)[1]
    assert zkherd(zk_server.hosts, "tree", "load", str(src), root).returncode == 0
    assert zk.get(root + "/f3/k199")[0] == b"v"


def test_the_readme_example(zk_server, zk, zk_base, tmp_path):
    """The README's `zkherd tree` block, run as it is written (on this test's server and base)."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("Trees of znodes from a directory", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    codes = []
    for line in block.splitlines():
        words = line.split("#", 1)[0].split()
        assert words[0] == ".venv/bin/zkherd", line
        words = [w.replace("/app", zk_base + "/app").replace("/tmp/config-backup", str(tmp_path / "backup"))
                 for w in words[1:]]
        run = zkherd(zk_server.hosts, *words)
        assert b"Traceback" not in run.stderr
        codes.append(run.returncode)
    assert codes == [0, 0, 1, 0]
    assert zk.get(zk_base + "/app/config/log_level")[0] == b"debug"
    assert (tmp_path / "backup" / "log_level").read_bytes() == b"debug"
