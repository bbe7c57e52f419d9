"""The drop-ins `zkexec`, `zkdo` and `zkfarmer` run the seed READMEs' own examples, verbatim, against
a real ZooKeeper, and do what those READMEs say.

The examples are copied from ../shared/seeds/<tool>.md into tests/data/seed_examples/<tool>.txt
(test_copies_match_the_readmes keeps the copies honest where ../shared exists). Each is run by bash
as written. The one substitution, visible here: the READMEs' ZooKeeper (localhost:2181, or ZKHOST
for zkfarmer) is the test's server with the test's own chroot, given through the environment
(ZKHERD_HOSTS, ZKHOST), and the README's health check of port 2181 checks the test server's port
(the slowcheck fixture below says so). The helper programs the examples call (zkexec's
test/libexec/*, zookeeper/bin/zkCli.sh, my-service) are small fixtures written here.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.support.runner import REPO

DATA = REPO / "tests" / "data" / "seed_examples"
BIN = REPO / ".venv" / "bin"


def seeds_dir():
    """../shared/seeds (the project's workspace only), next to this checkout or, for a git worktree,
    next to its main checkout."""
    common = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=REPO,
                            capture_output=True, text=True, check=False).stdout.strip()
    for root in (REPO, Path(common).parent if common else REPO):
        if (root.parent / "shared" / "seeds").is_dir():
            return root.parent / "shared" / "seeds"
    return None


FIXTURES = {
    # omc/zkexec's test/libexec/prefixed-cat: each stdin line, after the prefix files' contents
    "test/libexec/prefixed-cat": """#!/bin/sh
prefix=$(cat "$@")
while IFS= read -r line; do printf '%s %s\\n' "$prefix" "$line"; done
""",
    # omc/zkexec's test/libexec/slowcheck PORT SLEEP; the README's port 2181 means the test's ZooKeeper
    "test/libexec/slowcheck": """#!/bin/bash
sleep "$2"
port=$1; [ "$port" = 2181 ] && port=$ZK_PORT
echo "$1 $2" >> "$SLOWCHECK_LOG"
exec 3<>"/dev/tcp/127.0.0.1/$port"
""",
    # `zkCli.sh -cmd create|set PATH VALUE`, as the zkexec README spells it, done with zkherd
    "zookeeper/bin/zkCli.sh": """#!/bin/sh
[ "$1" = -cmd ] || exit 64
case $2 in create) exec zkherd set "$3" "$4" --create;; set) exec zkherd set "$3" "$4";; esac
exit 64
""",
    # the zkdo README's service: says it started, runs until stopped
    "bin/my-service": """#!/bin/sh
echo "$$" >> "$MY_SERVICE_LOG"  # before it says so: the test reads the log once it said it started
echo "[$$] Server started, MyService version 1.0.0 ($*)"
trap 'exit 0' TERM INT
while :; do sleep 0.05; done
""",
}


def examples(tool):
    """{name: verbatim text} from tests/data/seed_examples/<tool>.txt."""
    found, name = {}, None
    for line in (DATA / (tool + ".txt")).read_text().splitlines():
        if line.startswith("==> ") and line.endswith(" <=="):
            name = line[4:-4]
            found[name] = []
        elif name is not None:
            found[name].append(line)
    return {name: "\n".join(lines) for name, lines in found.items()}


def commands(text):
    """The commands of a README block: lines after a `:$ ` or `$ ` prompt, with their `\\` continuations."""
    out, current = [], None
    for line in textwrap.dedent(text).splitlines():
        if current is not None:
            current.append(line)
        elif line.startswith((":$ ", "$ ")):
            current = [line.split("$ ", 1)[1]]
        if current is not None and not line.endswith("\\"):
            out.append("\n".join(current))
            current = None
    return out


def test_copies_match_the_readmes():
    seeds = seeds_dir()
    if seeds is None:
        pytest.skip("no ../shared/seeds next to this checkout (only the project's workspace has it)")
    for tool in ("zkexec", "zkdo", "zkfarmer"):
        readme = (seeds / (tool + ".md")).read_text()
        for name, text in examples(tool).items():
            assert text in readme, "tests/data/seed_examples/%s.txt: %s no longer matches %s.md" % (tool, name, tool)


@pytest.fixture
def seed_env(tmp_path, zk_server, zk_base):
    """cwd with the fixtures, and the environment in which the examples find the test's ZooKeeper."""
    for rel, text in FIXTURES.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    hosts = zk_server.hosts + zk_base  # the substitution: the test's server, chrooted to the test's znode
    env = dict(os.environ, PATH="%s:%s:%s" % (BIN, tmp_path / "bin", os.environ["PATH"]), ZKHERD_HOSTS=hosts,
               ZKHOST=hosts, ZK_PORT=str(zk_server.port), SLOWCHECK_LOG=str(tmp_path / "slowcheck.log"),
               MY_SERVICE_LOG=str(tmp_path / "my-service.log"), LANG="C.UTF-8", LC_ALL="C.UTF-8")
    return tmp_path, env


class Shell:
    """One example command run by bash, its stdout read line by line in the background."""

    def __init__(self, command, cwd, env):
        self.proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.lines = queue.Queue()
        self.stderr = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True).start()

    @staticmethod
    def _pump(stream, put):
        for line in stream:
            put(line.rstrip("\n"))

    def type(self, text):
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def expect(self, wanted, timeout=10.0, retype=None, part=False):
        """Wait for the stdout line *wanted* (*part*: a line holding it); *retype*: typed again every
        0.2 s meanwhile."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            if retype:
                self.type(retype)
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            seen.append(line)
            if line == wanted or (part and wanted in line):
                return
        raise AssertionError("no line %r in %s; stderr: %s" % (wanted, seen, "\n".join(self.stderr)))

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        return self.proc.wait(timeout=20)


def sh(command, cwd, env):
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=30,
                          check=False)


def test_zkexec_tutorial(seed_env, zk, zk_base):
    cwd, env = seed_env
    ex = examples("zkexec")
    setup = sh("\n".join(commands(ex["setup"])), cwd, env)
    assert setup.stdout == "hello world\n"  # the README's expected output, with the plain prefixed-cat

    # "It should behave just like prefixed-cat": lines in, prefixed lines out, its exit code at EOF.
    [wrap] = commands(ex["wrap"])
    wrapped = Shell(wrap, cwd, env)
    wrapped.type("world\n")
    wrapped.expect("hello world")
    wrapped.proc.stdin.close()
    assert wrapped.proc.wait(timeout=10) == 0

    # --mirror: the prefix comes from ZooKeeper; a change there restarts the command with the new one.
    create, mirror = commands(ex["mirror"])
    assert sh(create, cwd, env).returncode == 0
    mirrored = Shell(mirror, cwd, env)
    try:
        mirrored.type("world\n")
        mirrored.expect("hello world")
        [change] = commands(ex["change"])
        assert sh(change, cwd, env).returncode == 0
        assert zk.get(zk_base + "/prefix")[0] == b"goodbye"
        mirrored.expect("goodbye world", retype="world\n")
        assert Path("/tmp/prefix").read_text() == "goodbye"
    finally:
        mirrored.stop()

    # A command that fails: zkexec exits with its code, and logs to stderr without --silent.
    failed = sh("\n".join(commands(ex["false"])), cwd, env)
    assert failed.stdout == "1\n" and failed.stderr

    # Health checks: the first after --health-delay, then every --health-interval.
    [health] = commands(ex["health"])
    checked = Shell(health, cwd, env)
    try:
        deadline = time.monotonic() + 10
        log = cwd / "slowcheck.log"
        while time.monotonic() < deadline and len(log.read_text().splitlines() if log.exists() else []) < 2:
            time.sleep(0.1)
        assert log.read_text().splitlines()[:2] == ["2181 1", "2181 1"]
        assert "healthy" in "\n".join(checked.stderr)  # "successful health check", in zkherd's words
    finally:
        assert checked.stop() in (0, 128 + signal.SIGTERM)


def test_zkexec_rolling_and_help(seed_env):
    """The rolling restart example takes its health delay of 20 s per host: its translation is checked
    here (test_runner's rolling tests run zkherd run --rolling-lock for real)."""
    from zkherd.compat import zkexec

    cwd, env = seed_env
    ex = examples("zkexec")
    [rolling] = commands(ex["rolling"])
    argv = shlex.split(rolling.replace("\\\n", " "))
    assert argv[0] == "zkexec"
    assert zkexec.translate(argv[1:]) == [
        "run", "--mirror", "/tmp/prefix=/prefix", "--rolling-lock", "/_zklocking/foo",
        "--health", "test/libexec/slowcheck 2181 10", "--health-interval", "1", "--health-delay", "20",
        "--", "./test/libexec/prefixed-cat", "/tmp/prefix"]
    [helpcmd] = commands(ex["help"])
    shown = sh(helpcmd, cwd, env)
    assert shown.returncode == 0 and "compatibility front end for zkherd" in shown.stdout
    for option in ("--exec COMMAND", "--cluster HOST:PORT,...", "--health COMMAND", "--health-interval INTERVAL",
                   "--health-delay INTERVAL", "--mirror LOCAL_PATH=ZK_PATH", "--lock NAME", "--alert COMMAND",
                   "--verbose", "--silent", "--help"):
        assert option in shown.stdout


def test_zkdo_takeover(seed_env, zk, zk_base):
    cwd, env = seed_env
    ex = examples("zkdo")
    first = Shell(ex["first-server"], cwd, env)
    second = None
    try:
        first.expect("] Server started, MyService version 1.0.0 (--port 7777)", part=True)
        [registered] = zk.get_children(zk_base + "/services")
        assert registered.startswith("myservice")
        data = json.loads(zk.get(zk_base + "/services/" + registered)[0])
        assert data == {"host": socket.gethostname(), "port": 7777}
        second = Shell(ex["another-server"], cwd, env)  # "Now, on another server": it waits on the lock
        deadline = time.monotonic() + 10
        while len(zk.get_children(zk_base + "/locks/myservice")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(zk.get_children(zk_base + "/locks/myservice")) == 2
        assert len((cwd / "my-service.log").read_text().split()) == 1  # one service only
        first.stop()  # "Now kill the first instance of zkdo": the second takes the lock and starts
        second.expect("] Server started, MyService version 1.0.0 (--port 7777)", part=True)
        [again] = zk.get_children(zk_base + "/services")
        assert again != registered and json.loads(zk.get(zk_base + "/services/" + again)[0])["port"] == 7777
    finally:
        first.stop()
        if second:
            second.stop()


DB1 = {"hostname": "db-01.example.com", "enabled": "0", "mysql": {"replication_delay": "0"}}
DB2 = {"hostname": "db-02.example.com", "enabled": "1", "mysql": {"replication_delay": "1"}}


def farm_of_the_readme(zk, base):
    for name in ("db", "cache", "search", "soft"):
        zk.create("%s/services/%s" % (base, name), makepath=True)
    zk.create(base + "/services/db/1.2.3.4", json.dumps(DB1).encode())
    zk.create(base + "/services/db/1.2.3.5", json.dumps(DB2).encode())


def test_zkfarmer_ls_get_set(seed_env, zk, zk_base):
    cwd, env = seed_env
    farm_of_the_readme(zk, zk_base)
    ex = {name: commands(text)[0] for name, text in examples("zkfarmer").items() if text.startswith("$ ")}
    listed = sh(ex["ls"], cwd, env)
    assert listed.returncode == 0 and sorted(listed.stdout.split()) == ["cache", "db", "search", "soft"]
    fields = sh(ex["ls-fields"], cwd, env)
    assert fields.stdout.splitlines() == ["1.2.3.4          hostname=db-01.example.com, enabled=0",
                                          "1.2.3.5          hostname=db-02.example.com, enabled=1"]
    assert sh(ex["get"], cwd, env).stdout == "0\n"
    assert sh(ex["set"], cwd, env).returncode == 0
    assert json.loads(zk.get(zk_base + "/services/db/1.2.3.4")[0])["enabled"] == "1"


def test_zkfarmer_join_and_export(seed_env, zk, zk_base):
    """The README's join and export use /var/service/db and /data/web/conf: made here (root only, and
    only if absent), removed after."""
    made = [Path("/var/service"), Path("/data")]
    if os.geteuid() != 0 or any(path.exists() for path in made):
        pytest.skip("needs root and no /var/service, /data of the machine's own")
    cwd, env = seed_env
    farm_of_the_readme(zk, zk_base)
    ex = examples("zkfarmer")
    conf = Path("/var/service/db")
    try:
        (conf / "mysql").mkdir(parents=True)
        Path("/data/web/conf").mkdir(parents=True)
        for name, value in (("hostname", "db-01.example.com"), ("enabled", "0"), ("mysql/replication_delay", "0")):
            (conf / name).write_text(value + "\n")
        joined = Shell(ex["join"], cwd, env)
        exported = Shell(ex["export"], cwd, env)
        try:
            deadline = time.monotonic() + 10
            members = []
            while len(members) < 3 and time.monotonic() < deadline:
                members = zk.get_children(zk_base + "/services/db")
                time.sleep(0.05)
            [me] = set(members) - {"1.2.3.4", "1.2.3.5"}  # named after this host's default route address
            assert json.loads(zk.get(zk_base + "/services/db/" + me)[0]) == DB1  # the README's JSON
            # set from anywhere -> the host's local configuration, and every export
            assert sh("zkfarmer set /services/db/%s enabled 1" % me, cwd, env).returncode == 0
            php = Path("/data/web/conf/database.php")
            while time.monotonic() < deadline and not (
                    (conf / "enabled").read_text().strip() == "1" and php.exists()
                    and php.read_text().count('"enabled" => "1"') == 2):
                time.sleep(0.05)
            assert (conf / "enabled").read_text().strip() == "1"
            text = php.read_text()
            assert text.startswith("<?php") and '"1.2.3.4" => array' in text
            assert '"hostname" => "db-01.example.com"' in text
            assert '"%s" => array' % me in text
        finally:
            assert joined.stop() in (0, 128 + signal.SIGTERM)
            assert exported.stop() in (0, 128 + signal.SIGTERM)
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("argv, names", [
    (["zkexec", "--quorum", "2", "--exec", "true"], "--rolling-slots"),
    (["zkexec", "--exec", "true", "--bogus"], "zkherd run --help"),
    (["zkdo", "--lock", "/l", "--nope", "--", "true"], "zkherd run --help"),
    (["zkdo", "--", "true"], "--lock or --register"),
    (["zkfarmer", "join", "/f", "conf.php", "--format", "php"], "--format json|yaml|dir"),
    (["zkfarmer", "export", "/f", "dir", "--format", "dir"], "--format json|yaml|php|template"),
    (["zkfarmer", "drain", "/f"], "zkherd farm --help"),
])
def test_unsupported_options_exit_64(argv, names):
    done = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 64 and names in done.stderr and "Traceback" not in done.stderr
