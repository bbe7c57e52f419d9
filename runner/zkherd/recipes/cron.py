"""`zkherd cron --election PATH -- CMD`: run CMD now only if this host leads the pool, once per tick.

Put the same line in every host's crontab (`* * * * * zkherd cron --election /cron/pool -- job`)
and run `zkherd elect --election /cron/pool` on each host. Then, each time cron fires:

1. A second run of the same job on the same host while one runs is refused (exit 75, with a
   WARNING naming the run that holds it), or waits for it with --if-running wait (a local flock,
   so runs never pile up). The lock file lives in a folder only our user can write (run_dir:
   /run/zkherd for root) and is opened without following links: no other user can hold it or
   redirect it.
2. If ZooKeeper does not answer within --timeout, exit 69 at once: cron runs never hang (77 if it
   denies access).
3. A host that does not lead the pool exits 0 quietly.
4. The leader creates ELECTION/ticks/NAME/TICK (TICK: the time divided by --tick, 60 s by default).
   If it exists, this tick already ran (say, leadership moved during the minute): exit 0. So a tick
   runs at most once, even when the hosts' cron starts are seconds apart.
5. While the job runs, leadership is watched: if the leader's member node goes, or ZooKeeper has
   not heard from us for too long (the fencing rule of `zkherd run`), the job is stopped (stop
   signal, --stop-timeout, SIGKILL) and the exit code is 76. Otherwise the job's own code.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import hashlib
import os
import re
import signal
import stat
import time

from kazoo.exceptions import NodeExistsError
from kazoo.protocol.states import EventType, KazooState

from zkherd.common import paths
from zkherd.common.connection import ZkError, translate
from zkherd.common.errors import AUTH, USAGE
from zkherd.core import clock
from zkherd.core.fence import margin as fence_margin
from zkherd.core.session import Session
from zkherd.core.shellcmd import command_env
from zkherd.core.wakeup import Wakeup
from zkherd.recipes.election import pool
from zkherd.run.child import Child, ChildError
from zkherd.run.containment import Containment

EX_USAGE, EX_UNAVAILABLE, EX_TEMPFAIL, EX_LOST, EX_NOPERM = 64, 69, 75, 76, 77
KEEP_TICKS = 20  # older tick markers of a job are deleted


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


def run(opts, settings, log):
    name = opts.name or job_name(opts.command)
    try:
        held = local_lock(opts.election, name, opts.if_running == "wait", log)
    except ZkError as exc:
        log.error(exc.message)
        return EX_USAGE
    if held is None:
        return EX_TEMPFAIL
    wakeup = Wakeup()
    session = Session(settings, wakeup, log, quiet=True)
    try:
        session.connect()
    except ZkError as exc:
        log.error(exc.message)
        return EX_UNAVAILABLE
    try:
        return Cron(opts, name, session, wakeup, log).main()
    finally:
        session.close()
        wakeup.close()
        held.close()


class Cron:
    def __init__(self, opts, name, session, wakeup, log):
        self.opts = opts
        self.name = name
        self.session = session
        self.wakeup = wakeup
        self.log = log
        self.client = session.client
        self.op_timeout = max(0.2, min(session.settings.connect_timeout, session.timeout / 3.0))
        self.leader_node = None

    def main(self):
        opts = self.opts
        try:
            members = pool(self.client, opts.election, self.op_timeout)
            if not members or members[0][1] != opts.id:
                self.log.debug("not the leader of the pool; nothing to do", election=opts.election,
                               leader=members[0][1] if members else "-")
                return 0
            self.leader_node = leader_node = paths.join(opts.election, members[0][0])
            if not self.claim_tick():
                return 0
            if self.client.exists_async(leader_node, watch=self._lost).get(timeout=self.op_timeout) is None:
                self.log.warning("leadership moved while the job was starting; not running it")
                return EX_LOST
        except ZkError as exc:
            self.log.error(exc.message)
            return EX_NOPERM if exc.kind == AUTH else EX_UNAVAILABLE
        except Exception as exc:
            if isinstance(exc, self.client.handler.timeout_exception):
                self.log.error("ZooKeeper did not answer in time")
                return EX_UNAVAILABLE
            raise
        return self.run_job()

    def claim_tick(self):
        tick = int(time.time() // self.opts.tick)
        base = paths.join(paths.join(self.opts.election, "ticks"), self.name)
        node = paths.join(base, str(tick))
        try:
            self.client.create_async(node, self.opts.id.encode("utf-8"), makepath=True).get(timeout=self.op_timeout)
        except NodeExistsError:
            self.log.info("this tick already ran", job=self.name, tick=tick)
            return False
        except Exception as exc:
            if isinstance(exc, self.client.handler.timeout_exception):
                raise
            raise translate(exc, "mark the tick at", node) from None
        ticks = self.client.get_children(base)
        old = sorted((t for t in ticks if t.isascii() and t.isdigit()), key=int)[:-KEEP_TICKS]  # not '²'
        for stale in old:
            self.client.delete_async(paths.join(base, stale))
        self.log.info("this host leads the pool; running the job", job=self.name, tick=tick)
        return True

    def _lost(self, event):
        if event.type == EventType.NONE:
            # not a change of the node: kazoo drops every watch when the connection is lost (and
            # does not set them again on the next one); watch again once connected (see rewatch)
            self.wakeup.post("rewatch", None)
        else:
            self.wakeup.post("lost", event.path)

    def rewatch(self):
        """Watch the leader's member node again after a connection loss. Returns True if it is
        gone, False once watched, None if that has to wait (not connected, or no answer yet)."""
        if not self.client.connected:
            return None
        try:
            found = self.client.exists_async(self.leader_node, watch=self._lost).get(timeout=self.op_timeout)
        except Exception:  # no answer (yet): the fencing rule covers a connection that stays bad
            return None
        return found is None

    def run_job(self):
        self.wakeup.install_signals((signal.SIGTERM, signal.SIGINT, signal.SIGHUP))  # state events: Session
        containment = Containment(self.log, "zkherd-cron")
        try:
            return self._run_job(containment)
        finally:
            containment.sweep(5.0)
            containment.close()

    def _run_job(self, containment):
        opts = self.opts
        child = Child(opts.command, command_env(ZKHERD_CRON_JOB=self.name), self.log, containment, opts.stop_signal)
        try:
            child.start()
        except ChildError as exc:
            self.log.error(str(exc))
            return 127
        lost, rewatch = None, False
        while True:
            while self.wakeup.signals:
                signum = self.wakeup.signals.popleft()
                child.stop(opts.stop_timeout, "received %s" % signal.Signals(signum).name)
            for kind, value in self.wakeup.events():
                if kind == "lost" or kind == "state" and value == KazooState.LOST:
                    lost = lost or "the leader's member node is gone"
                elif kind == "rewatch" or kind == "state" and value == KazooState.CONNECTED:
                    rewatch = True
            if rewatch and not lost:
                gone = self.rewatch()
                if gone:
                    lost = "the leader's member node is gone"
                rewatch = gone is None
            code = child.reap()
            if code is not None:
                if lost:
                    self.log.warning("job stopped: leadership was lost", reason=lost)
                    return EX_LOST
                return code
            margin = fence_margin(self.session.timeout)
            kill_at = self.session.expires_no_earlier_than() - margin
            kill_at = time.monotonic() + (kill_at - clock.now())  # the child's deadlines are monotonic
            stop = min(opts.stop_timeout, max(0.0, 0.5 * self.session.timeout - margin))
            if time.monotonic() >= kill_at - stop:
                lost = lost or "no contact with ZooKeeper for too long"
            if lost:
                child.stop(opts.stop_timeout, "leadership lost: " + lost, deadline=kill_at)
            waits = [t for t in (child.tick(), kill_at - stop - time.monotonic(), 0.2 if rewatch else None)
                     if t is not None]
            self.wakeup.wait(max(0.0, min(waits)) if waits else None)
