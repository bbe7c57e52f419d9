"""Issue 17: every example in README.md runs, so the README cannot rot again.

The test reads README.md's fenced code blocks itself (new examples are picked up with no change here):

- ```sh / ```bash / ```shell: run by bash (`set -e`) in a fresh work directory that looks like a
  checkout (the repository's top-level entries are symlinked into it, so `.venv/bin/zkherd` and
  `playbooks/files/...` resolve). A line ending in a comment `# exit N` must exit with N.
  A block that starts a long-running command (`zkherd run`, `elect`, `render` or `farm export` without
  `--once`, `farm join`, `cron`) must still be running once the effects the README claims for it are
  seen (its child runs, its lock is held, its registration exists, its files are written); it is then
  stopped.
- ```yaml / ```yml holding a play (a list with `hosts:`): run with ansible-playbook against localhost
  from the work directory, with `vault_*` variables given on the command line.
- `<!-- file: NAME -->` right before a block: its text is written to NAME in the work directory of every
  example of the same section (a configuration file that an example uses).
- `<!-- not run: REASON -->` right before a block, or the info string `console`/`text`: not run
  (output samples, layouts, fragments; `make demo`/`make test` run the whole machine and are CI's job).
Any other block fails this test: mark it or make it runnable.

What is substituted, so that examples reach this test's server and stay inside its temp dir
(SUBSTITUTIONS below does it, in this order):
- ZooKeeper addresses (`zk1:2181,zk2:2181,zk3:2181`, `127.0.0.1:2181`, `localhost:2181`, with an
  optional `/chroot`) -> the test's server with a chroot of its own; `ZKHERD_HOSTS` is set to the same
  for the commands without `--zk`;
- absolute paths under /etc, /tmp, /srv, /var, /run -> the same path under the work directory's
  root/ (the parent directories are made, as on a real host);
- other `localhost:PORT` (a health check's URL) -> a free port the example's service stub listens on.
What a user already has, the examples assume: USER_FILES, USER_ZNODES and the programs in STUBS
(my-service, myapp, haproxy, systemctl, notify-ops: record their arguments; a service serves HTTP 200
on the health port; `-t`/`-c` checks succeed when the file exists).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support import procs
from tests.support.playbook import REPO
from tests.support.zkutil import wait_for

README = REPO / "README.md"
BIN = Path(sys.executable).parent
SHELLS = {"sh", "bash", "shell"}
OUTPUT = {"console", "text", "output"}
MARKER = re.compile(r"<!--\s*(not run|file):\s*(.*?)\s*-->")

USER_FILES = {
    "files/app-config/cache": '{"ttl": 60}\n',
    "/etc/haproxy/haproxy.cfg": "global\n",
}
USER_ZNODES = {
    "/config/myapp": "port = 8080\n",
    "/services/web/web1": '{"host": "10.0.0.1", "port": 80, "enabled": "1"}',
    "/services/web/web2": '{"host": "10.0.0.2", "port": 80, "enabled": "0"}',
}
STUBS = ["my-service", "myapp", "haproxy", "nginx", "systemctl", "notify-ops"]
STUB = r'''#!%s
"""A user's program for the README's examples: records its arguments; -t/-c FILE checks FILE exists;
a service (no check, not a one-shot tool) serves HTTP 200 on $README_HTTP_PORT until stopped."""
import http.server, json, os, signal, sys, time
name, args = os.path.basename(sys.argv[0]), sys.argv[1:]
with open(os.path.join(os.environ["README_RAN"], "%%s.%%d" %% (name, os.getpid())), "w") as out:
    json.dump(args, out)
if "-t" in args or "-c" in args:  # a configuration check (myapp -t FILE, haproxy -c -f A -f B)
    flag = "-t" if "-t" in args else "-c"
    files = [b for a, b in zip(args, args[1:]) if a == "-f"] or [args[args.index(flag) + 1]]
    sys.exit(0 if all(os.path.exists(f) for f in files) else 1)
if name in ("systemctl", "notify-ops"):
    sys.exit(0)
signal.signal(signal.SIGTERM, lambda *_a: sys.exit(0))
signal.signal(signal.SIGHUP, signal.SIG_IGN)
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *_a):
        pass
try:
    http.server.HTTPServer(("127.0.0.1", int(os.environ["README_HTTP_PORT"])), Health).serve_forever()
except OSError:  # another service of the same example has the port
    while True:
        time.sleep(60)
''' % sys.executable

ZK_ADDRESS = re.compile(r"(?:(?:zk\d+|127\.0\.0\.1|localhost):2181,?)+(/[\w/-]+)?")
ABS_PATH = re.compile(r"(?<![\w.$}/-])/(etc|tmp|srv|var|run)/[\w./-]*")
HTTP_PORT = re.compile(r"localhost:(?!2181)\d+")
EXIT_COMMENT = re.compile(r"^(.*?)\s+#\s*exit (\d+)\b.*$")
TOOLS = {"zkherd", "zkexec", "zkdo", "zkfarmer"}  # zkherd and the drop-ins of the tools it replaces


def long_running(argv):
    """A command that serves until stopped: zkherd run/elect/farm join, render or farm export without
    --once, zkexec, zkdo, zkfarmer join/export (zkherd cron runs once and exits)."""
    tool, rest = Path(argv[0]).name, argv[1:3]
    if {"--help", "-h", "--version"} & set(argv) or tool not in TOOLS:
        return False
    if tool in ("zkexec", "zkdo"):
        return True
    if rest[:1] in (["render"], ["farm"]) and "--once" in argv:
        return False
    return rest[:1] in (["run"], ["elect"], ["render"]) or rest in (["farm", "join"], ["farm", "export"]) or (
        tool == "zkfarmer" and rest[:1] in (["join"], ["export"]))


def readme_blocks():
    """(section, line, info, text, marker) for every fenced block of README.md."""
    blocks, section, marker, fence = [], "", None, None
    for number, line in enumerate(README.read_text().splitlines(), 1):
        if fence is None:
            if line.startswith("#"):
                section = line.lstrip("#").strip()
            elif line.startswith("```"):
                fence = (number, line[3:].strip(), [], marker)
            elif line.strip():
                found = MARKER.search(line)
                marker = (found.group(1), found.group(2)) if found else None
        elif line.startswith("```"):
            number0, info, body, mark = fence
            blocks.append((section, number0, info, "\n".join(body) + "\n", mark))
            fence, marker = None, None
        else:
            fence[2].append(line)
    return blocks


def runnable(block):
    """'shell', 'playbook', 'file', None (not run) or the reason it cannot be run."""
    _section, _line, info, text, marker = block
    if marker and marker[0] == "not run" or info in OUTPUT:
        return None
    if marker and marker[0] == "file":
        return "file"
    if info in SHELLS:
        return "shell"
    if info in ("yaml", "yml"):
        data = yaml.safe_load(text)
        if isinstance(data, list) and data and all(isinstance(p, dict) and "hosts" in p for p in data):
            return "playbook"
    return "unmarked"


BLOCKS = [b for b in readme_blocks() if runnable(b) in ("shell", "playbook")]


def test_every_readme_block_is_run_or_marked():
    """An example that slips in without a way to run it fails here, with where it is."""
    unmarked = ["README.md:%d (%s, ```%s)" % (b[1], b[0], b[2]) for b in readme_blocks() if runnable(b) == "unmarked"]
    assert not unmarked, ("blocks this test cannot run: mark them `<!-- not run: why -->` (or ```text for "
                          "output), or make them an sh block or a play: %s" % unmarked)
    assert BLOCKS, "no runnable example found in README.md"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Example:
    """One README block, made to run here (see the module's docstring)."""

    def __init__(self, block, work, hosts, zk_base, zk_admin):
        self.section, self.line, self.info, text, _mark = block
        self.work, self.root, self.ran = work, work / "root", work / "ran"
        self.zk_admin, self.zk_base, self.hosts = zk_admin, zk_base, hosts
        self.chroots = {zk_base}
        self.http_port = free_port()
        self.text = self.substitute(text)

    def substitute(self, text):
        def zk(match):
            chroot = self.zk_base + (match.group(1) or "")
            self.chroots.add(chroot)
            return self.hosts + chroot

        def path(match):
            local = self.root / match.group(0).lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            return str(local)

        text = ZK_ADDRESS.sub(zk, text)
        text = ABS_PATH.sub(path, text)
        return HTTP_PORT.sub("localhost:%d" % self.http_port, text)

    def prepare(self, all_blocks):
        for entry in REPO.iterdir():
            if entry.name not in (".git",):
                (self.work / entry.name).symlink_to(entry)
        self.ran.mkdir()
        (self.work / "bin").mkdir()
        stub = self.work / "bin" / "stub"
        stub.write_text(STUB)
        stub.chmod(0o755)
        for name in STUBS:
            (self.work / "bin" / name).symlink_to(stub)
        files = dict(USER_FILES)
        files.update({b[4][1]: b[3] for b in all_blocks if b[0] == self.section and runnable(b) == "file"})
        for name, content in files.items():
            local = Path(self.substitute(name)) if name.startswith("/") else self.work / name
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(self.substitute(content))
        for chroot in sorted(self.chroots):
            self.zk_admin.ensure_path(chroot)
            for znode, value in USER_ZNODES.items():
                self.zk_admin.create(chroot + znode, value.encode(), makepath=True)

    def env(self):
        env = dict(os.environ, PATH="%s:%s" % (self.work / "bin", os.environ["PATH"]),
                   ZKHERD_HOSTS=self.hosts + self.zk_base, README_RAN=str(self.ran),
                   README_HTTP_PORT=str(self.http_port), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                   ANSIBLE_NOCOLOR="1", PYTHONUNBUFFERED="1")
        env.pop("ZKHERD_AUTH", None)
        return env

    def where(self):
        return "README.md:%d (%s)" % (self.line, self.section)

    # -- shell ---------------------------------------------------------------------------------
    def script(self):
        lines = ["set -e"]
        for line in self.text.splitlines():
            expected = EXIT_COMMENT.match(line)
            if expected:
                command, code = expected.groups()
                line = ('if %s; then rc=0; else rc=$?; fi; [ "$rc" = %s ] || { echo "README promised exit %s, '
                        'got $rc: %s" >&2; exit 97; }' % (command, code, code, command.replace('"', "'")))
            lines.append(line)
        return "\n".join(lines) + "\n"

    def run_shell(self):
        log = self.work / "example.log"
        proc = procs.spawn(["bash", "-c", self.script()], log, cwd=self.work, env=self.env())

        def output():
            return "%s\n--- script ---\n%s\n--- output ---\n%s" % (
                self.where(), self.script(), log.read_text(errors="replace")[-4000:])
        if not any(long_running(argv) for argv in self.commands()):
            try:
                rc = proc.wait(timeout=60)
            finally:
                procs.kill(proc)
            assert rc == 0, output()
            return
        try:
            wait_for(lambda: proc.poll() is not None or not self.missing_effects(), 20,
                     message=lambda: "the effects %s\n%s" % (self.missing_effects(), output()))
            assert proc.poll() is None, "a long-running example stopped (exit %s)\n%s" % (proc.returncode, output())
            assert self.claims, "no effect of this long-running example could be checked: teach missing_effects"
        finally:
            procs.terminate(proc, timeout=10)
            self.stop_stubs()

    def joined(self):
        return re.sub(r"\\\n\s*", " ", self.text)

    def commands(self):
        """Each zkherd command line of the block, as argv (heredoc bodies and comments left out)."""
        for line in self.joined().splitlines():
            try:
                argv = shlex.split(line, comments=True)
            except ValueError:  # a heredoc's body
                continue
            if argv and Path(argv[0]).name in TOOLS:
                yield argv

    def missing_effects(self):
        """What the README claims of the block's long-running commands and is not (yet) so."""
        missing, self.claims = [], 0
        for argv in self.commands():
            options = self.options(argv)
            chroot = self.chroot_of(argv)
            for path in options.get("--lock", []) + options.get("--election", []):
                if path.startswith("/") and not (self.zk_admin.exists(chroot + path)
                                                 and self.zk_admin.get_children(chroot + path)):
                    missing.append("%s holds a node" % path)
                self.claims += 1
            for path in options.get("--register", []):  # PATH<10 digits>, holding --data
                data = options.get("--data", ["@"])[0]
                if not self.registered(chroot + path, None if data.startswith("@") else data):
                    missing.append("%s<seq> registered" % path)
                self.claims += 1
            for pair in options.get("--mirror", []):
                local, znode = pair.split("=", 1)
                want = self.zk_admin.get(chroot + znode)[0] if self.zk_admin.exists(chroot + znode) else None
                if not Path(local).exists() or want is not None and Path(local).read_bytes() != want:
                    missing.append("%s mirrors %s" % (local, znode))
                self.claims += 1
            targets = options.get("--template", [])
            if len(argv) > 1 and argv[1] == "render":
                targets += [a for a in argv[2:] if "=" in a and not a.startswith("-")]
            for pair in targets:
                if not Path(pair.split("=", 1)[1]).exists():
                    missing.append("%s rendered" % pair.split("=", 1)[1])
                self.claims += 1
            children = [argv[argv.index("--") + 1]] if "--" in argv else []
            children += [shlex.split(cmd)[0] for cmd in options.get("--exec", [])]  # zkexec's
            for child in map(lambda c: Path(c).name, children):
                if child in STUBS and not list(self.ran.glob(child + ".*")):
                    missing.append("%s runs" % child)
                self.claims += int(child in STUBS)
        return missing

    def registered(self, path, data):
        parent, prefix = path.rsplit("/", 1)
        if not self.zk_admin.exists(parent or "/"):
            return False
        return any(re.fullmatch(re.escape(prefix) + r"\d{10}", child) and (
            data is None or self.zk_admin.get(parent + "/" + child)[0] == data.encode())
            for child in self.zk_admin.get_children(parent or "/"))

    @staticmethod
    def options(argv):
        """{--option: [values]} before `--`; `--opt=value` and `--opt value` (not a flag followed by a flag)."""
        found = {}
        for option, value in zip(argv, argv[1:] + [""]):
            if option == "--":
                break
            if option.startswith("--") and "=" in option:
                option, value = option.split("=", 1)
            elif not option.startswith("--") or value.startswith("-"):
                continue
            found.setdefault(option, []).append(value)
        return found

    def chroot_of(self, argv):
        hosts = self.options(argv).get("--zk", self.options(argv).get("--cluster"))
        if hosts:
            hosts = hosts[0]
            return "/" + hosts.split("/", 1)[1] if "/" in hosts else ""
        return self.zk_base

    def stop_stubs(self):
        for record in self.ran.glob("*.*"):
            pid = int(record.name.rsplit(".", 1)[1])
            if procs.pid_alive(pid) and "stub" in " ".join(procs.pid_cmdline(pid)):
                os.kill(pid, signal.SIGKILL)

    # -- playbook ------------------------------------------------------------------------------
    def run_playbook(self):
        (self.work / "readme-example.yml").write_text(self.text)
        extra = ["-e", json.dumps({name: "readme-secret" for name in re.findall(r"\bvault_\w+", self.text)})]
        proc = subprocess.run([str(BIN / "ansible-playbook"), "readme-example.yml", *extra], cwd=self.work,
                              env=self.env(), capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, "%s\n%s%s" % (self.where(), proc.stdout[-4000:], proc.stderr[-2000:])


@pytest.mark.parametrize("block", BLOCKS, ids=["line%d" % b[1] for b in BLOCKS])
def test_readme_example_runs(block, zk_server, zk_admin, zk_base, tmp_path):
    example = Example(block, tmp_path, zk_server.hosts, zk_base, zk_admin)
    example.prepare(readme_blocks())
    started = time.monotonic()
    if runnable(block) == "shell":
        example.run_shell()
    else:
        example.run_playbook()
    assert time.monotonic() - started < 60
