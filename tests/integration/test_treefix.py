"""Fixes of review 15 (tree CLI) beyond the reviewer's tests: diff against kept ephemeral znodes,
dump's --file-mode and refusals that leave nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.runner import REPO


def zkherd(hosts, *args):
    return subprocess.run([sys.executable, "-m", "zkherd", *args, "--zk", hosts], cwd=REPO,
                          capture_output=True, timeout=120, check=False)


def test_diff_counts_only_what_load_prune_changes(zk_server, zk, make_zk, zk_base, tmp_path):
    """An ephemeral znode whose data differs from DIR's file, and a folder holding one that DIR
    lacks: load --prune keeps both, so diff lists them as kept and exits 0."""
    root, src = zk_base + "/eph", tmp_path / "src"
    src.mkdir()
    (src / "member").write_bytes(b"wanted")
    zk.create(root, b"")
    owner = make_zk()
    owner.create(root + "/member", b"other", ephemeral=True)
    owner.create(root + "/locks/l1", b"", ephemeral=True, makepath=True)
    run = zkherd(zk_server.hosts, "tree", "diff", str(src), root)
    out = run.stdout.decode()
    assert run.returncode == 0, (out, run.stderr.decode())
    assert "= %s/member (kept: ephemeral" % root in out and "= %s/locks (kept: holds" % root in out
    assert "~ " not in out and "- " not in out
    (src / "new").write_bytes(b"n")
    assert zkherd(zk_server.hosts, "tree", "diff", str(src), root).returncode == 1


def test_dump_file_mode_and_a_symlink_leave_nothing(zk_server, zk, zk_base, tmp_path):
    root = zk_base + "/fm"
    zk.create(root + "/a/b", b"x", makepath=True)
    zk.create(root + "/c", b"y")
    out = tmp_path / "out"
    run = zkherd(zk_server.hosts, "tree", "dump", root, str(out), "--file-mode", "0640")
    assert run.returncode == 0, run.stderr.decode()
    assert (out / "c").stat().st_mode & 0o777 == 0o640 and (out / "a").stat().st_mode & 0o777 == 0o750
    assert out.stat().st_mode & 0o777 == 0o750
    # a symlink where a folder goes: refused, and nothing else of the dump is written either
    zk.set(root + "/c", b"y2")
    os.rename(out / "a", tmp_path / "a-real")
    os.symlink(tmp_path / "a-real", out / "a")
    again = zkherd(zk_server.hosts, "tree", "dump", root, str(out), "--force")
    assert again.returncode == 73, again.stderr.decode()
    assert "nothing of this dump was written" in again.stderr.decode()
    assert (out / "c").read_bytes() == b"y"
    assert sorted(os.listdir(out)) == ["a", "c"]
