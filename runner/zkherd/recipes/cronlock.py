"""The local lock of `zkherd cron`: one run of a job at a time on a host (docs/cron.md, point 1).

A flock on DIR/zkherd-cron-HASH.lock, held for the life of the run. DIR is a folder only our user
can write (run_dir: /run/zkherd for root) and nothing is opened through a link: no other user can
hold the lock or redirect it (docs/security.md, "The cron job's local lock").
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import hashlib
import os
import re
import stat

from zkherd.common.connection import ZkError
from zkherd.common.errors import USAGE


def job_name(command):
    return "job-" + hashlib.sha1("\0".join(command).encode("utf-8")).hexdigest()[:12]


def run_dir(env=None, euid=None):
    """The folder of the jobs' local locks: ZKHERD_RUN_DIR, else /run/zkherd for root, else
    $XDG_RUNTIME_DIR/zkherd - never a folder that other users can write, such as /tmp."""
    env = os.environ if env is None else env
    euid = os.geteuid() if euid is None else euid
    if env.get("ZKHERD_RUN_DIR"):
        return env["ZKHERD_RUN_DIR"]
    if euid == 0:
        return "/run/zkherd"
    if env.get("XDG_RUNTIME_DIR"):
        return os.path.join(env["XDG_RUNTIME_DIR"], "zkherd")
    raise ZkError("no private folder for the job's local lock: uid %d has no XDG_RUNTIME_DIR; set ZKHERD_RUN_DIR "
                  "to a folder that only this user can write (under systemd: RuntimeDirectory=)" % euid, USAGE)


def open_run_dir(path):
    """A descriptor of PATH, made 0700 if missing; refused (UserError, exit 64) unless it is a
    folder - not a link - of ours that nobody else can write."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ZkError("cannot make %s for the job's local lock: %s" % (path, exc.strerror), USAGE) from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ZkError("refusing to keep the job's local lock in %s: %s" % (
            path, "it is a symlink" if os.path.islink(path) else exc.strerror), USAGE) from None
    st, problem = os.fstat(fd), None
    if st.st_uid != os.geteuid():
        problem = "it is owned by uid %d, not by this user (uid %d)" % (st.st_uid, os.geteuid())
    elif st.st_mode & 0o022:
        problem = "it is writable by others (mode %04o)" % stat.S_IMODE(st.st_mode)
    if problem:
        os.close(fd)
        raise ZkError("refusing to keep the job's local lock in %s: %s, so another user could hold the lock for "
                      "ever or make zkherd write elsewhere; use a folder that only this user can write (remove it "
                      "and zkherd makes it 0700, or set ZKHERD_RUN_DIR)" % (path, problem), USAGE)
    return fd


def local_lock(election, name, wait, log):
    """A flock held for the life of this process, on DIR/zkherd-cron-HASH.lock (DIR: run_dir()),
    opened without following a link; it holds the holder's pid and start time. None if the job
    already runs here (a WARNING says which run holds it)."""
    directory = run_dir()
    digest = hashlib.sha1(("%s\0%s" % (election, name)).encode("utf-8")).hexdigest()[:16]
    filename = "zkherd-cron-%s.lock" % digest
    path = os.path.join(directory, filename)
    folder = open_run_dir(directory)
    try:
        fd = os.open(filename, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600,
                     dir_fd=folder)
    except OSError as exc:
        raise ZkError("refusing to open the job's local lock %s: %s; remove it" % (
            path, "it is a symlink" if exc.errno == errno.ELOOP else exc.strerror), USAGE) from None
    finally:
        os.close(folder)
    handle = os.fdopen(fd, "r+b")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        handle.close()
        raise ZkError("refusing to use the job's local lock %s: it is not a regular file of this user; remove it"
                      % path, USAGE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = dict(re.findall(r"(\w+)=(\S+)", os.pread(fd, 512, 0).decode("utf-8", "replace")))
        who = {"pid": holder.get("pid", "?"), "started": holder.get("started", "?"), "lock": path}
        if not wait:
            log.warning("this job is still running on this host: an earlier run holds its local lock, so this start "
                        "is skipped (exit 75); if that run hangs, stop it (kill PID) and the next start runs",
                        job=name, election=election, **who)
            handle.close()
            return None
        log.info("this job is still running on this host; waiting for that run to finish", job=name, **who)
        fcntl.flock(fd, fcntl.LOCK_EX)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    os.ftruncate(fd, 0)
    os.pwrite(fd, ("pid=%d started=%s job=%s\n" % (os.getpid(), started, name)).encode("utf-8"), 0)
    return handle
