"""`zkherd get|set|ls|rm` against a real ZooKeeper: values, files, versions, recursion, and bad
input (binary data, oversized files, bad paths, wrong credentials, missing znodes)."""

from __future__ import annotations

import json
import subprocess
import sys

from kazoo.security import make_digest_acl

from tests.support.runner import REPO


def zkherd(hosts, *args, stdin=None):
    return subprocess.run([sys.executable, "-m", "zkherd", *args, "--zk", hosts], cwd=REPO, input=stdin,
                          capture_output=True, timeout=60, check=False)


def test_get_set_ls_rm(zk_server, zk, zk_base, tmp_path):
    hosts, node = zk_server.hosts, zk_base + "/app/db"
    absent = zkherd(hosts, "set", node, "x")
    assert absent.returncode == 66 and b"--create" in absent.stderr and zk.exists(node) is None
    created = zkherd(hosts, "set", node, '{"port": 5432}', "--create")
    assert (created.returncode, created.stdout) == (0, b"created %s (and 1 parents)\n" % node.encode())
    got = zkherd(hosts, "get", node)
    assert (got.returncode, got.stdout) == (0, b'{"port": 5432}')  # a pipe gets the bytes exactly
    assert json.loads(zkherd(hosts, "get", node, "--type", "json").stdout) == {"port": 5432}
    assert json.loads(zkherd(hosts, "get", node, "--type", "yaml").stdout) == {"port": 5432}
    stat = zkherd(hosts, "get", node, "--stat").stdout.decode()
    assert "version: 0\n" in stat and "num_children: 0\n" in stat
    same = zkherd(hosts, "set", node, '{"port": 5432}')
    assert same.stdout == b"unchanged %s (version 0)\n" % node.encode() and zk.get(node)[1].version == 0

    conflict = zkherd(hosts, "set", node, "v2", "--version", "7")
    assert conflict.returncode == 75 and b"not the expected 7" in conflict.stderr
    assert zkherd(hosts, "set", node, "v2", "--version", "0").returncode == 0 and zk.get(node)[0] == b"v2"
    source = tmp_path / "value.bin"
    source.write_bytes(bytes(range(256)))
    assert zkherd(hosts, "set", node, "@" + str(source)).returncode == 0
    assert zkherd(hosts, "get", node).stdout == bytes(range(256))
    assert zkherd(hosts, "set", node, "@-", stdin=b"from stdin").returncode == 0 and zk.get(node)[0] == b"from stdin"

    zk.create(node + "/a/b", b"", makepath=True)
    assert zkherd(hosts, "ls", zk_base + "/app").stdout == b"db\n"
    assert zkherd(hosts, "ls", node, "-R").stdout.decode().split() == [node + "/a", node + "/a/b"]
    not_empty = zkherd(hosts, "rm", node)
    assert not_empty.returncode == 65 and b"give -r" in not_empty.stderr and zk.exists(node + "/a/b")
    assert zkherd(hosts, "rm", node, "-r", "--version", "9").returncode == 75 and zk.exists(node + "/a/b")
    removed = zkherd(hosts, "rm", node, "-r", "--version", str(zk.get(node)[1].version))
    assert removed.returncode == 0 and removed.stdout == b"deleted %s and the 2 znodes below it\n" % node.encode()
    assert zk.exists(node) is None
    for command in (("get", node), ("ls", node), ("rm", node), ("ls", node, "-R")):
        missing = zkherd(hosts, *command)
        assert missing.returncode == 66 and b"does not exist" in missing.stderr, (command, missing.stderr)


def test_bad_input(zk_server, zk, zk_base, tmp_path):
    hosts, node = zk_server.hosts, zk_base + "/v"
    zk.create(node, b"{not json")
    broken = zkherd(hosts, "get", node, "--type", "json")
    assert broken.returncode == 65 and b"JSON" in broken.stderr
    huge = tmp_path / "huge"
    huge.write_bytes(b"x" * 1_000_001)
    over = zkherd(hosts, "set", node, "@" + str(huge))
    assert over.returncode == 64 and b"over the 1000000 bytes" in over.stderr and zk.get(node)[0] == b"{not json"
    assert zkherd(hosts, "set", node, "@" + str(tmp_path / "nope")).returncode == 64
    for bad in ("relative", "/a//b", "/a/", "/a/\x01"):
        result = zkherd(hosts, "get", bad)
        assert result.returncode == 64 and b"Traceback" not in result.stderr, (bad, result.stderr)
    assert zkherd(hosts, "rm", "/").returncode == 64
    secret = zk_base + "/secret"
    zk.create(secret, b"s", acl=[make_digest_acl("alice", "pw", all=True)])
    for command in (("get", secret), ("set", secret, "x"), ("rm", secret)):
        denied = zkherd(hosts, *command, "--auth", "alice:wrong")
        assert denied.returncode == 77 and b"access denied" in denied.stderr, (command, denied.stderr)
    assert zkherd(hosts, "get", secret, "--auth", "alice:pw").stdout == b"s"
    assert zkherd("127.0.0.1:1", "get", node, "--connect-timeout", "1").returncode == 69


def on_a_terminal(hosts, node):
    """What `zkherd get NODE` writes to a terminal."""
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        run = subprocess.run([sys.executable, "-m", "zkherd", "get", node, "--zk", hosts], cwd=REPO,
                             stdout=follower, stderr=subprocess.PIPE, timeout=60, check=False)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert run.returncode == 0, run.stderr
    return shown


def test_a_terminal_never_gets_raw_control_characters(zk_server, zk, zk_base):
    """Binary data is summarized with its digest; text with escape sequences is shown escaped."""
    zk.create(zk_base + "/bin", b"\x1b]0;owned\x07\xff\xfe")
    zk.create(zk_base + "/text", "caf\u00e9 \x1b[2J\n".encode())
    binary = on_a_terminal(zk_server.hosts, zk_base + "/bin")
    assert binary.startswith(b"<binary, 12 bytes, sha256 ") and b"\x1b" not in binary
    text = on_a_terminal(zk_server.hosts, zk_base + "/text")
    assert text == "caf\u00e9 \\x1b[2J\r\n".encode()
