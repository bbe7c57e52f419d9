"""Review of issue 15 (tree CLI and multi-read): failing tests are findings."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from kazoo.client import KazooClient

from tests.support.runner import REPO
from zkherd.common import multiread, tree
from zkherd.common.connection import ZkError

VALUE = 999_000  # under tree.MAX_VALUE_BYTES: a value the module and `tree load` accept


def zkherd(hosts, *args):
    return subprocess.run([sys.executable, "-m", "zkherd", *args, "--zk", hosts], cwd=REPO,
                          capture_output=True, timeout=300, check=False)


def fill(client, root, count, size):
    client.create(root, b"", makepath=True)
    for start in range(0, count, 20):
        results = [client.create_async("%s/v%04d" % (root, i), bytes([i % 251]) * size)
                   for i in range(start, min(count, start + 20))]
        for result in results:
            result.get()


def test_big_values_read_as_one_multiread_answer(make_zk_server, tmp_path):
    """60 znodes of ~1 MB: one level, so one multiRead whose answer is ~60 MB, serialized whole by
    the server (ByteArrayOutputStream + toByteArray) and read whole by kazoo. The pipelined reads
    cost 1 MB an answer. The test server has -Xmx256m; here 60 MB of data must be readable."""
    server = make_zk_server(extra_cfg={"jute.maxbuffer": 4 * 1024 * 1024})
    writer = KazooClient(hosts=server.hosts)
    writer.start(timeout=10)
    try:
        fill(writer, "/big", 60, VALUE)
        piped = KazooClient(hosts=server.hosts)
        piped.start(timeout=10)
        multiread.forget(piped)
        started = time.monotonic()
        assert len(tree.read_tree(piped, "/big")) == 61
        piped_s = time.monotonic() - started
        piped.stop()
        cli = zkherd(server.hosts, "tree", "dump", "/big", str(tmp_path / "out"))
        log = server.log_path.read_text(errors="replace")
        assert "OutOfMemoryError" not in log and "Java heap space" not in log, log[-3000:]
        assert cli.returncode == 0, (cli.stderr.decode(), piped_s)
        # the server still serves
        assert writer.exists("/big") is not None
    finally:
        writer.stop()


def test_long_paths_make_a_multiread_request_over_jute_maxbuffer(zk_server, zk, zk_base, make_zk):
    """1,000 znodes of one level whose paths are ~600 bytes: one multiRead of 2,000 sub-ops is
    ~1.27 MB, over the server's 1 MB jute.maxbuffer: the server drops the connection ("Len error").
    The pipelined reads (one small request a znode) read the same tree."""
    root = zk_base + "/long"
    zk.create(root, b"")
    name = "n" * 580
    for start in range(0, 1000, 100):
        for result in [zk.create_async("%s/%s%04d" % (root, name, i), b"x") for i in range(start, start + 100)]:
            result.get()
    piped = make_zk()
    multiread.forget(piped)
    assert len(tree.read_tree(piped, root)) == 1001
    run = zkherd(zk_server.hosts, "ls", root, "-R")
    assert run.returncode == 0, run.stderr.decode()
    assert len(run.stdout.splitlines()) == 1000


def test_multiread_refused_later_falls_back_to_pipelined(zk, zk_base, make_zk, monkeypatch):
    """docs/tree.md: "A multi-read refused later (an ensemble in an upgrade) also switches that
    connection to pipelined reads". The refusal closes the connection; the pipelined reads that
    follow at once (no _settle as after the probe) meet the drop."""
    root = zk_base + "/upg"
    zk.create(root + "/a/b", b"v", makepath=True)
    failures = []
    for _attempt in range(6):  # the refusal's drop races the pipelined reads: about one in two loses
        monkeypatch.undo()
        client = make_zk()
        assert len(tree.read_tree(client, root)) == 3 and client._zkherd_multiread is True
        monkeypatch.setattr(multiread.MultiRead, "type", 99)  # the client moved to a 3.5 member
        try:
            nodes = tree.read_tree(client, root)
        except ZkError as exc:
            failures.append(exc.message)
            continue
        assert client._zkherd_multiread is False and nodes[root + "/a/b"].data == b"v"
    assert not failures, failures


def test_dump_into_a_folder_a_local_user_made_first(zk_server, zk, zk_base):
    """docs/tree.md's own example dumps a backup to /tmp/config-backup. A local user who makes that
    (empty) folder first owns it: root's dump is accepted into it, the user then swaps a file, and
    root's `tree load` of the "backup" writes the user's bytes with root's ZooKeeper credentials.
    Expected: a DIR not owned by the user running zkherd (or writable by others) is refused."""
    from tests.support.localuser import LocalUser

    root = zk_base + "/cfg"
    zk.create(root + "/db_password", b"s3cret", makepath=True)
    zk.create(root + "/admins", b"alice", makepath=True)
    with LocalUser() as user:
        area = user.area()
        area.chmod(0o1777)  # a shared temp folder like /tmp
        target = area / "config-backup"
        made = user.run(["mkdir", "-m", "0755", str(target)])
        assert made.returncode == 0, made.stderr
        dumped = zkherd(zk_server.hosts, "tree", "dump", root, str(target))
        stolen = user.run(["cat", str(target / "db_password")])
        swapped = user.run(["sh", "-c", "rm -f %s/admins && printf mallory > %s/admins" % (target, target)])
        assert swapped.returncode == 0
        loaded = zkherd(zk_server.hosts, "tree", "load", str(target), root)
        assert dumped.returncode == 73, (dumped.stdout, dumped.stderr, stolen.stdout, loaded.stdout)
        # (fix review 15) The dump was refused, so no backup exists there: the secret never reached
        # the user's folder. Loading a folder a user filled is the operator's choice, not a backup's.
        assert stolen.stdout != b"s3cret" and sorted(os.listdir(target)) == ["admins"]


def test_prune_meets_an_ephemeral_made_after_the_read(zk_server, zk, zk_base, make_zk, tmp_path, monkeypatch,
                                                      capsys):
    """`tree load --prune` plans to delete /old (no ephemeral below it when read); a farm member
    (an ephemeral znode of another session) joins /old before the transaction: ZooKeeper refuses the
    delete (NotEmpty). That is another writer changing the tree meanwhile: docs/tree.md says 75 and
    "another writer changed the tree"; 65 is documented for `rm` without -r / undecodable data."""
    from zkherd import cli
    from zkherd.common import treeload

    root = zk_base + "/cfg"
    zk.create(root + "/keep", b"k", makepath=True)
    zk.create(root + "/old", b"")
    src = tmp_path / "src"
    src.mkdir()
    (src / "keep").write_bytes(b"k")
    member = make_zk()
    real_apply = treeload.apply_load

    def late_member(*args, **kwargs):
        member.create(root + "/old/web1", b"{}", ephemeral=True)
        return real_apply(*args, **kwargs)

    monkeypatch.setattr(treeload, "apply_load", late_member)
    code = cli.main(["tree", "load", str(src), root, "--prune", "--zk", zk_server.hosts])
    out, err = capsys.readouterr()
    assert zk.exists(root + "/old/web1") is not None  # the member stays
    assert code == 75, (code, out, err)


def test_a_refused_dump_leaves_the_last_backup_whole(zk_server, zk, zk_base, tmp_path):
    """Promise 8: bad input never destroys the last good local state. A backup made by `tree
    dump`; later the tree changes and also gets a znode named `.znode` (which cannot be dumped,
    exit 65). `tree dump --force` into the backup fails with 65 only after it has replaced the
    files it met first: the backup is now half old, half new - a state ZooKeeper never had."""
    root = zk_base + "/cfg"
    zk.create(root + "/a", b"a1", makepath=True)
    zk.create(root + "/z/.znodx", b"z1", makepath=True)
    backup = tmp_path / "backup"
    assert zkherd(zk_server.hosts, "tree", "dump", root, str(backup)).returncode == 0
    zk.set(root + "/a", b"a2")
    zk.create(root + "/z/.znode", b"bad")
    again = zkherd(zk_server.hosts, "tree", "dump", root, str(backup), "--force")
    assert again.returncode == 65, again.stderr.decode()
    assert (backup / "a").read_bytes() == b"a1", "the refused dump replaced part of the last backup"


def test_dump_of_acl_protected_data_is_not_world_readable(zk_server, zk, zk_base, tmp_path):
    """A znode readable only with digest credentials is dumped 0644 in a 0755 folder (dumpdir.py:
    os.mkdir(..., 0o755), os.open(..., 0o644)): every local user reads it. There is no --file-mode."""
    from kazoo.security import make_digest_acl

    root = zk_base + "/sec"
    zk.add_auth("digest", "ops:pw")
    zk.create(root + "/db_password", b"s3cret", makepath=True, acl=[make_digest_acl("ops", "pw", all=True)])
    out = tmp_path / "backup"
    run = subprocess.run([sys.executable, "-m", "zkherd", "tree", "dump", root, str(out), "--zk", zk_server.hosts,
                          "--auth", "ops:pw"], cwd=REPO, capture_output=True, timeout=120, check=False,
                         preexec_fn=lambda: os.umask(0o022))
    assert run.returncode == 0, run.stderr.decode()
    assert (out / "db_password").stat().st_mode & 0o077 == 0, oct((out / "db_password").stat().st_mode)
