"""A local user who can write a folder that root's zkherd writes into (--mirror, --mirror-dir, a
`farm join` DJB directory or file, `farm export DEST`) races it with inotify, as a real
unprivileged user, against real runners and a real ZooKeeper: no file outside the folder may
change owner, mode or content, appear or be deleted, and nothing outside may be read into
ZooKeeper (docs/security.md, "Local folders")."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.localuser import PYTHON, RACER, LocalUser
from tests.support.runner import REPO, Zkherd
from tests.support.zkutil import wait_for

SERVE = "trap 'exit 0' TERM; while :; do sleep 0.05; done"
BIG = 900_000  # a push this big keeps root writing the temp file for a while: a wide window
ATTEMPTS = 20  # the unfixed code lost within the first five; the fixed one refuses each at once
SECRET = b"root secret\n"


@pytest.fixture(scope="module")
def user():
    with LocalUser() as local:
        yield local


@pytest.fixture
def site(user):
    """area/shared: the folder zkherd writes into, the user's; area/outside: root's files;
    area/spare: the racer's own (on the same file system)."""
    area = user.area()
    shared, outside = area / "shared", area / "outside"
    for folder in (shared, outside, area / "spare"):
        folder.mkdir()
    user.give(shared)
    user.give(area / "spare")
    (outside / "secret").write_bytes(SECRET)
    (outside / "secret").chmod(0o600)
    (outside / "victim.conf").write_bytes(b"root's own file\n")
    (outside / "victim").write_bytes(b"root's own file\n")
    (outside / "data.json").write_text('{"password": "hunter2"}\n')
    (outside / "data.json").chmod(0o600)
    return shared, outside


def snapshot(folder):
    """{relative path: (type, uid, gid, mode, digest)} of everything below *folder*, not followed."""
    found = {}
    for directory, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                digest = "-> " + os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
            else:
                digest = None
            found[os.path.relpath(path, folder)] = (stat.S_IFMT(st.st_mode), st.st_uid, st.st_gid,
                                                    stat.S_IMODE(st.st_mode), digest)
    return found


class Racer:
    """tests/support/racer.py running as the user."""

    def __init__(self, user, log, *args):
        self.log = Path(log)  # root's: its stdout is opened by us
        self.proc = user.popen([PYTHON, RACER, *map(str, args)], self.log)
        wait_for(lambda: self.lines("ready"), 15, message=lambda: "the racer to start: %s" % self.output())

    def lines(self, prefix):
        return [line for line in self.output().splitlines() if line.startswith(prefix)]

    def output(self):
        return self.log.read_text() if self.log.exists() else ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def big(tag):
    return ("%s:" % tag).encode() + b"x" * BIG + b"\n"


def plant(user, path, data):
    """What the user can always do in their folder: put a file of theirs at *path* (so that root,
    which keeps a file's owner, makes the new one theirs too) - unless there is one already."""
    st = path.lstat() if path.exists() or path.is_symlink() else None
    if st is not None and stat.S_ISREG(st.st_mode) and st.st_uid == user.uid:
        return
    side = path.with_name("planted")
    side.write_bytes(data)
    user.give(side, 0o644)
    side.rename(path)


def race_pushes(push, racer, process, outside, done_pattern, replant):
    """Push ATTEMPTS big changes while the racer swaps every temp file for a symlink to a root
    file; before each, the user plants their own file at the target (*replant*); after each,
    once *process* logged one of *done_pattern*, nothing outside may differ."""
    before = snapshot(outside)
    for attempt in range(ATTEMPTS):
        replant(attempt)
        swaps, done = len(racer.lines("swap")), process.log().count("\n")
        push(attempt)
        wait_for(lambda s=swaps: len(racer.lines("swap")) > s, 30, message=lambda: "the racer to swap a temp file; "
                 "racer: %s\n%s" % (racer.output(), process.log()[-2000:]))
        wait_for(lambda d=done: any(p in line for line in process.log().splitlines()[d:] for p in done_pattern), 30,
                 message=lambda: "%s to react to the push: %s" % (done_pattern, process.log()[-3000:]))
        assert snapshot(outside) == before, "attempt %d: a file outside the folder changed:\nbefore %s\nafter  %s" % (
            attempt + 1, before, snapshot(outside))
    return before


def settled_child(runner):
    """The child's pid if it stayed the same for 0.5 s (no restart going on), else None."""
    pid = runner.child_pid
    time.sleep(0.5)
    return pid if pid == runner.child_pid else None


@pytest.mark.parametrize("how", ["mirror", "mirror-dir"])
def test_run_temp_swap_cannot_take_over_a_root_file(zk_server, zk, zk_base, site, user, tmp_path, how):
    """The user owns app.conf (they can always put a file of theirs there), so root gives the new
    file to them; swapping the temp file (or folder) for a symlink to a root file must not give
    them that file, nor change anything else outside. A symlink in place of the file is refused."""
    shared, outside = site
    conf, znode = shared / "app.conf", zk_base + "/tree/app.conf"
    conf.write_bytes(b"v0")
    user.give(conf, 0o644)
    zk.create(znode, b"v0", makepath=True)
    spec = (("--mirror", "%s=%s" % (conf, znode)) if how == "mirror"
            else ("--mirror-dir", "%s=%s/tree" % (shared, zk_base)))
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--change-delay", "0.1", "--stop-timeout", "2", *spec, "--",
                     "sh", "-c", SERVE], tmp_path / "run.log")
    runner.wait_log("started child")
    racer = Racer(user, tmp_path / "racer.log", "swap-temp", shared.parent / "spare", outside / "secret", shared)
    before = race_pushes(lambda i: zk.set(znode, big(i)), racer, runner, outside,
                         ("configuration installed", "ERROR"), lambda i: plant(user, conf, big(i - 1) if i else b"v0"))
    racer.stop()
    assert not runner.has("Traceback")
    # the swaps changed nothing at all: what is in place is the newest push, still the user's file
    wait_for(lambda: conf.read_bytes() == big(ATTEMPTS - 1), 30, message=lambda: runner.log()[-2000:])
    st = conf.lstat()
    assert stat.S_ISREG(st.st_mode) and (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.uid, 0o644)

    # the file itself made a symlink to a root file: refused, the child keeps running on the last file
    child = wait_for(lambda: settled_child(runner), 10)  # the last push's restart may still be going on
    refusals = len(re.findall("ERROR refusing to", runner.log()))  # the race may have made some: a new one
    done = user.run(["ln", "-sfn", str(outside / "secret"), str(conf)])
    assert done.returncode == 0, done.stderr
    zk.set(znode, b"after the link")
    line = runner.wait_log("ERROR refusing to .*", count=refusals + 1)
    assert "%s is a symlink" % conf in line and "the files in place are kept" in line, line
    assert runner.child_pid == child and snapshot(outside) == before
    conf.unlink()  # removed: the next attempt (every second) installs the newest push
    wait_for(lambda: conf.exists() and conf.read_bytes() == b"after the link", 30, message=lambda: runner.log()[-2000:])
    assert snapshot(outside) == before and not runner.has("Traceback")
    runner.stop()


def test_mirror_dir_stale_file_under_a_swapped_folder(zk_server, zk, zk_base, site, user, tmp_path):
    """A file of a subfolder whose znode is gone is deleted with the next install; the user swaps
    that subfolder for a symlink to a root folder between the listing and the deletion."""
    shared, outside = site
    sub = shared / "sub"
    sub.mkdir()
    user.give(sub)
    (sub / "victim.conf").write_bytes(b"stale\n")  # no znode for it: to be deleted
    root = zk_base + "/tree"
    zk.create(root + "/main.conf", b"main", makepath=True)
    zk.create(root + "/sub/keep.conf", b"keep", makepath=True)
    before = snapshot(outside)
    racer = Racer(user, tmp_path / "racer.log", "swap-dir", shared, "sub", outside)
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--change-delay", "0.1", "--check-cmd", "sleep 1",
                     "--mirror-dir", "%s=%s" % (shared, root), "--", "sh", "-c", SERVE], tmp_path / "run.log")
    wait_for(lambda: racer.lines("swapped"), 30, message=lambda: racer.output() + runner.log())
    runner.wait_log("(configuration installed|ERROR|Traceback)", timeout=30)
    assert snapshot(outside) == before, "a file outside the folder changed or went:\n%s" % runner.log()
    line = runner.wait_log("ERROR refusing to .*", timeout=30)
    assert "sub" in line and ("moved or replaced" in line or "symlink" in line), line
    assert not runner.has("started child") and not runner.has("Traceback")
    (shared / "sub").unlink()  # the operator removes the link: the next attempt installs the set
    runner.wait_log("started child", timeout=30)
    assert (sub / "keep.conf").read_bytes() == b"keep" and (shared / "main.conf").read_bytes() == b"main"
    assert snapshot(outside) == before
    runner.stop()


def test_farm_join_djb_directory_temp_swap_and_stale_swap(zk_server, zk, zk_base, site, user, tmp_path):
    """The same attacks against `farm join` with a DJB directory the user can write: a temp file
    swapped for a symlink to a root file, then a folder swapped while a stale field is deleted."""
    shared, outside = site
    (shared / "enabled").write_text("1\n")
    (shared / "big").write_text("small\n")
    user.give(shared / "big", 0o644)
    farm, node = zk_base + "/farm", zk_base + "/farm/m"
    joined = Zkherd(["farm", "join", "--zk", zk_server.hosts, farm, str(shared), "--name", "m", "--poll", "0.1"],
                    tmp_path / "join.log")
    joined.wait_log("joined the farm")
    racer = Racer(user, tmp_path / "racer.log", "swap-temp", shared.parent / "spare", outside / "secret", shared)

    def push(attempt):
        zk.set(node, json.dumps({"enabled": "1", "big": big(attempt).decode().rstrip("\n")}).encode())

    race_pushes(push, racer, joined, outside, ("local configuration updated", "could not sync"),
                lambda i: plant(user, shared / "big", big(i - 1) if i else b"small\n"))
    assert not joined.has("Traceback") and not (shared / "big").is_symlink()
    racer.stop()
    wait_for(lambda: (shared / "big").read_bytes() == big(ATTEMPTS - 1), 30, message=lambda: joined.log()[-2000:])

    # a stale field's file below a folder the user swaps for a symlink to a root folder
    zk.set(node, json.dumps({"enabled": "1", "big": "small", "sub": {"victim": "x"}}).encode())  # no dot: a field
    wait_for((shared / "sub" / "victim").exists, 30, message=lambda: joined.log()[-2000:])
    user.give(shared / "sub")
    before = snapshot(outside)
    racer = Racer(user, tmp_path / "racer2.log", "swap-dir", shared, "sub", outside)
    lines = joined.log().count("\n")
    zk.set(node, json.dumps({"enabled": "1", "big": big("last").decode().rstrip("\n")}).encode())
    wait_for(lambda: racer.lines("swapped"), 30, message=lambda: racer.output() + joined.log()[-2000:])
    wait_for(lambda: any(p in line for line in joined.log().splitlines()[lines:] for p in
                         ("local configuration updated", "could not sync", "cannot sync")), 30,
             message=lambda: joined.log()[-3000:])
    assert snapshot(outside) == before, "a file outside the folder changed or went"
    wait_for(lambda: joined.has("sub (is a symlink|was moved or replaced)"), 30, message=lambda: joined.log()[-3000:])
    assert not joined.has("Traceback")
    joined.stop()


def test_farm_export_temp_swap_cannot_take_over_a_root_file(zk_server, zk, zk_base, site, user, tmp_path):
    shared, outside = site
    dest = shared / "farm.json"
    farm = zk_base + "/farm"
    zk.create(farm + "/a", json.dumps({"n": "0"}).encode(), makepath=True)
    exporter = Zkherd(["farm", "export", "--zk", zk_server.hosts, farm, str(dest)], tmp_path / "export.log")
    exporter.wait_log("export written")
    dest.chmod(0o644)
    user.give(dest, 0o644)  # the user put a file of theirs there: the export keeps its owner
    racer = Racer(user, tmp_path / "racer.log", "swap-temp", shared.parent / "spare", outside / "secret", shared)
    race_pushes(lambda i: zk.set(farm + "/a", json.dumps({"n": big(i).decode()}).encode()), racer, exporter,
                outside, ("export written", "ERROR"), lambda i: plant(user, dest, b"{}\n"))
    assert not exporter.has("Traceback")
    racer.stop()
    wait_for(lambda: json.loads(dest.read_text()).get("a") == {"n": big(ATTEMPTS - 1).decode()}, 30,
             message=lambda: exporter.log()[-2000:])
    exporter.stop()


def test_farm_join_never_reads_a_root_file_through_a_symlink(zk_server, zk, zk_base, site, user, tmp_path):
    """The user replaces the member's JSON file by a symlink to a root-only file: root must not
    read it, let alone publish it in ZooKeeper."""
    shared, outside = site
    conf = shared / "member.json"
    done = user.run(["ln", "-s", str(outside / "data.json"), str(conf)])
    assert done.returncode == 0, done.stderr
    farm = zk_base + "/farm"
    joined = Zkherd(["farm", "join", "--zk", zk_server.hosts, farm, str(conf), "--name", "m", "--poll", "0.1"],
                    tmp_path / "join.log")
    line = joined.wait_log("(?:cannot sync the member|joined the farm).*")
    member = zk.exists(farm + "/m") and zk.get(farm + "/m")[0]
    assert not member or b"hunter2" not in member, "root's file was published: %r" % member
    assert "symlink" in line and "hunter2" not in joined.log(), line
    joined.stop()


def test_djb_directory_file_flipping_to_a_symlink_is_never_read(zk_server, zk, zk_base, site, user, tmp_path):
    """A file of the DJB directory that the user turns into a symlink to a root-only file and back,
    as fast as it goes: whatever root reads, it never reads through the link."""
    shared, outside = site
    (shared / "enabled").write_text("1\n")
    farm, node = zk_base + "/farm", zk_base + "/farm/m"
    joined = Zkherd(["farm", "join", "--zk", zk_server.hosts, farm, str(shared), "--name", "m", "--poll", "0.02"],
                    tmp_path / "join.log")
    joined.wait_log("joined the farm")
    seen = []
    zk.DataWatch(node, lambda data, _stat: seen.append(data))  # every version it gets to see
    racer = Racer(user, tmp_path / "racer.log", "flip", shared, "token", outside / "secret")

    def leaked():
        return any(data and SECRET.strip() in data for data in seen)

    wait_for(lambda: leaked() or len(racer.lines("flips")) >= 20, 120, message=racer.output)
    racer.stop()
    assert not leaked(), "root read its file through the link into ZooKeeper"
    assert any(data and b"harmless" in data for data in seen), joined.log()[-2000:]  # the race did run
    assert not joined.has("Traceback")
    joined.stop()


def test_names_of_240_characters(zk_server, zk, zk_base, tmp_path):
    """A file name near NAME_MAX (255) still works: the temp file beside it has a short name."""
    long_name = "n" * 240
    folder = tmp_path / "conf"
    zk.create(zk_base + "/one", b"one")
    zk.create(zk_base + "/tree/" + long_name, b"leaf", makepath=True)
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--mirror", "%s/%s=%s/one" % (folder, long_name, zk_base),
                     "--mirror-dir", "%s/d=%s/tree" % (folder, zk_base), "--", "sh", "-c", SERVE],
                    tmp_path / "run.log")
    runner.wait_log("(?:started child|ERROR).*")
    assert (folder / long_name).read_bytes() == b"one" and (folder / "d" / long_name).read_bytes() == b"leaf", \
        runner.log()[-2000:]
    runner.stop()
    zk.create(zk_base + "/farm/a", b'{"n": "1"}', makepath=True)
    exporter = Zkherd(["farm", "export", "--zk", zk_server.hosts, zk_base + "/farm", str(folder / ("e" * 240)),
                       "--once"], tmp_path / "export.log")
    assert exporter.wait() == 0, exporter.log()
    assert json.loads((folder / ("e" * 240)).read_text()) == {"a": {"n": "1"}}


def swap_private_folder(user, shared, link_to):
    """As the user: rename root's private staging folder (the folder is theirs: allowed) and put a
    folder of theirs at its name, holding a link to *link_to* under the staged file's name."""
    [private] = [p.name for p in shared.iterdir() if p.name.endswith(".zkherd")]
    done = user.run(["sh", "-c", 'cd "$1" && mv "$2" .moved && mkdir "$2" && ln -s "$3" "$2/$4"', "-", str(shared),
                     private, str(link_to), "app.conf"])
    assert done.returncode == 0, done.stderr


CHECK = ('touch {started}; while [ ! -e {go} ]; do sleep 0.05; done; cat "$ZKHERD_STAGED_FILE" > {seen}; '
         'printf "%s\\n" "$ZKHERD_STAGED_FILES" | sed "s/^[^=]*=//" | xargs cat > {seen_all}')


@pytest.mark.parametrize("command", ["run", "farm export"])
def test_the_check_command_reads_the_staged_file_wherever_the_user_moves_its_folder(
        zk_server, zk, zk_base, site, user, tmp_path, command):
    """While --check-cmd runs, the user renames root's private staging folder and puts their own at
    its name, with a link to a root-only file: the check must still read the bytes root staged (and
    installs), never the user's file or what their link leads to. Before: the check read the root-only
    file through the user's link, so a checker could be fed anything (nginx -t with load_module: root)."""
    shared, outside = site
    marks = {name: tmp_path / name for name in ("started", "go", "seen", "seen_all")}
    check = CHECK.format(**marks)
    conf = shared / "app.conf"
    if command == "run":
        znode = zk_base + "/app.conf"
        zk.create(znode, b"v1 from ZooKeeper\n")
        process = Zkherd(["run", "--zk", zk_server.hosts, "--check-cmd", check, "--mirror", "%s=%s" % (conf, znode),
                          "--", "sh", "-c", SERVE], tmp_path / "run.log")
        expected = b"v1 from ZooKeeper\n"
    else:
        zk.create(zk_base + "/farm/a", b'{"n": "1"}', makepath=True)
        process = Zkherd(["farm", "export", "--zk", zk_server.hosts, "--check-cmd", check, zk_base + "/farm",
                          str(conf)], tmp_path / "export.log")
        expected = b'{\n    "a": {\n        "n": "1"\n    }\n}\n'
    wait_for(marks["started"].exists, 30, message=process.log)
    swap_private_folder(user, shared, outside / "secret")
    marks["go"].touch()
    wait_for(lambda: marks["seen_all"].exists() and conf.exists(), 30, message=process.log)
    assert marks["seen"].read_bytes() == expected, "the check read %r" % marks["seen"].read_bytes()
    assert marks["seen_all"].read_bytes() == expected
    assert conf.read_bytes() == expected and not process.has("Traceback")
    process.stop()


STAGE_AND_CHECK = """
import os, subprocess, sys
from zkherd.configfiles import staging
folder = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
name, private = staging.make(folder)
handle = os.open("app.conf", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=private)
os.write(handle, b"staged by a runner that is not root")
os.close(handle)
os.rename(name, ".moved", src_dir_fd=folder, dst_dir_fd=folder)  # wherever the folder goes
check = subprocess.run(["/bin/sh", "-c", 'cat "$ZKHERD_STAGED_FILE"'], capture_output=True, text=True,
                       env={"ZKHERD_STAGED_FILE": staging.check_path(private, "app.conf")})
print(check.returncode, check.stdout, check.stderr)
"""


def test_the_staged_file_path_works_for_a_runner_of_another_user_under_protect_proc(user):
    """The check command's path (/proc/PID/fd/N/NAME) for a runner that runs as a service user
    (`User=` in the service role), with /proc mounted as systemd's ProtectProc=invisible mounts it
    (hidepid=invisible: other users' processes are hidden): the runner's own check command opens
    it. The real user runs the runner's staging code (standard library only) with the system Python."""
    area = user.area()
    user.give(area)
    script = ("mount -t proc -o hidepid=invisible proc /proc && exec setpriv --reuid %d --regid %d --clear-groups "
              "env PYTHONPATH=%s %s -c \"$0\" %s") % (user.uid, user.gid, REPO / "runner", PYTHON, area)
    done = subprocess.run(["unshare", "--mount", "--pid", "--fork", "sh", "-c", script, STAGE_AND_CHECK],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 staged by a runner that is not root", (done.stdout, done.stderr)
