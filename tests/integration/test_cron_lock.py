"""`zkherd cron`'s local lock (one run of a job at a time on a host) against a real unprivileged
user: it lives in a directory only zkherd's user can write, is never opened through a symlink, and
a run it refuses says who holds it (docs/cron.md, docs/security.md "The cron job's local lock")."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.localuser import LocalUser
from tests.support.runner import REPO, Zkherd
from tests.support.zkutil import wait_for

NAME = "nightly"


@pytest.fixture(scope="module")
def user():
    with LocalUser() as local:
        yield local


def lock_name(election, name=NAME):
    return "zkherd-cron-%s.lock" % hashlib.sha1(("%s\0%s" % (election, name)).encode()).hexdigest()[:16]


def cron(hosts, election, *command, env=None, ident="h0"):
    """One `zkherd cron` run as root; env: changes to the environment (None: drop the variable)."""
    full = dict(os.environ)
    full.pop("ZKHERD_RUN_DIR", None)
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return subprocess.run([sys.executable, "-m", "zkherd", "cron", "--zk", hosts, "--election", election, "--id",
                           ident, "--name", NAME, "--timeout", "5", "--", *command],
                          cwd=REPO, env=full, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def leader(zk_server, zk_base, tmp_path):
    """This host leads the pool zk_base/cron, so that its job runs."""
    election = zk_base + "/cron"
    member = Zkherd(["elect", "--zk", zk_server.hosts, "--election", election, "--id", "h0"], tmp_path / "elect.log")
    member.wait_log("this member leads the pool")
    yield election
    member.stop()


@pytest.fixture
def outside(user):
    """A root folder the user can see into but not write: where a planted link would lead."""
    area = user.area()
    (area / "outside").mkdir()
    return area


def test_a_symlink_planted_in_the_old_place_is_not_followed(zk_server, leader, user, outside, tmp_path):
    """The lock used to be a predictable name in /tmp, opened by root following symlinks."""
    planted = Path(tempfile.gettempdir()) / lock_name(leader)
    target = outside / "outside" / "made-by-root"
    done = user.run(["ln", "-s", str(target), str(planted)])
    assert done.returncode == 0, done.stderr
    try:
        run = cron(zk_server.hosts, leader, "touch", str(tmp_path / "ran"))
        assert not target.exists(), "root created a file where the user's link led"
        assert run.returncode == 0 and (tmp_path / "ran").exists(), run.stderr
        assert "Traceback" not in run.stderr
    finally:
        planted.unlink()


def test_a_flock_held_by_a_user_in_the_old_place_does_not_stop_the_job(zk_server, leader, user, tmp_path):
    planted = Path(tempfile.gettempdir()) / lock_name(leader)
    holder = user.popen(["flock", str(planted), "sleep", "600"], tmp_path / "holder.log")
    try:
        def held():
            return planted.exists() and subprocess.run(["flock", "-n", str(planted), "true"], check=False).returncode

        wait_for(held, 15, message="the user's flock on %s" % planted)
        run = cron(zk_server.hosts, leader, "touch", str(tmp_path / "ran"))
        assert run.returncode == 0 and (tmp_path / "ran").exists(), "the user's flock stopped the job: %d %s" % (
            run.returncode, run.stderr)
    finally:
        holder.kill()
        holder.wait(10)
        planted.unlink()


@pytest.mark.parametrize("folder", ["the user's", "world-writable like /tmp", "root's with a link in it"])
def test_a_symlink_in_the_lock_folder_is_refused(zk_server, leader, user, outside, tmp_path, folder):
    """ZKHERD_RUN_DIR names the folder: one that others can write is refused (exit 64), and so is
    a lock file that is a symlink; nothing is created where a link leads, the job does not run."""
    run_dir = outside / "run"
    run_dir.mkdir()
    target = outside / "outside" / "made-by-root"
    if folder == "the user's":
        user.give(run_dir)
    else:
        run_dir.chmod(0o1777 if folder.startswith("world") else 0o700)
    link = run_dir / lock_name(leader)
    if folder == "root's with a link in it":
        link.symlink_to(target)  # left there somehow: root's own folder, yet not followed
    else:
        done = user.run(["ln", "-s", str(target), str(link)])
        assert done.returncode == 0, done.stderr
    run = cron(zk_server.hosts, leader, "touch", str(tmp_path / "ran"), env={"ZKHERD_RUN_DIR": str(run_dir)})
    assert not target.exists(), "root created a file where the link led"
    assert run.returncode == 64 and not (tmp_path / "ran").exists(), (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr and str(run_dir) in run.stderr
    expected = {"the user's": "owned by uid %d" % user.uid, "world-writable like /tmp": "writable by others",
                "root's with a link in it": "is a symlink"}[folder]
    assert expected in run.stderr, run.stderr


def test_the_default_folder_and_a_refused_run_says_who_holds_the_lock(zk_server, leader, tmp_path):
    """As root the lock is /run/zkherd/...: the folder 0700, the file 0600 holding the holder's pid
    and start time; a second run of the job is refused with a WARNING that names the job, that
    run's pid and start time, and what to do - and exit 75."""
    first = Zkherd(["cron", "--zk", zk_server.hosts, "--election", leader, "--id", "h0", "--name", NAME, "--",
                    "sleep", "60"], tmp_path / "first.log", env={"ZKHERD_RUN_DIR": ""})
    first.wait_log("started child")
    lock = Path("/run/zkherd") / lock_name(leader)
    folder = lock.parent.stat()
    assert (folder.st_uid, stat.S_IMODE(folder.st_mode)) == (0, 0o700)
    assert (lock.stat().st_uid, stat.S_IMODE(lock.stat().st_mode)) == (0, 0o600)
    assert re.search(r"pid=%d\b" % first.pid, lock.read_text()), lock.read_text()
    second = cron(zk_server.hosts, leader, "true")
    assert second.returncode == 75, second.stderr
    line = [x for x in second.stderr.splitlines() if "WARNING" in x]
    assert len(line) == 1 and "still running on this host" in line[0], second.stderr
    for part in ("job=%s" % NAME, "pid=%d" % first.pid, "started=", str(lock), "kill"):
        assert part in line[0], (part, line[0])
    first.stop()
    lock.unlink()
