"""The leadership lease: how `zkherd cron` fences its job on the session of the `zkherd elect` member
it leads under, which is another process's (docs/cron.md, "Fenced by the leadership it claimed under").

`elect` knows, from its own syncs through the ZooKeeper leader (core/session.py), a moment before
which the leader cannot expire its session, and so cannot delete its member node. It writes that
moment (CLOCK_BOOTTIME, the same clock for every process of the host) to the lease file of its member
node in the lease folder (--lease-dir: lease_dir() below), at each change. `cron` reads the lease of
the member node it claims the tick under, and its fence (core/fence.py) kills the job that much before
the moment, as `zkherd run` does with its own session: the job is dead before the member's session can
expire, so before another member can lead.

    DIR/zkherd-lease-HASH   node=PATH session=0xID timeout=4.000 expires=12345.678

A lease that is not updated any more (the member is frozen, cut off, killed) keeps its old moment:
the job is stopped early, never late. The folder and the files are never followed through a link,
and cron trusts only a folder and files of root or of its own user that nobody else can write.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading

from zkherd.common.connection import ZkError
from zkherd.configfiles.owners import untrusted
from zkherd.core import clock
from zkherd.recipes.cronlock import run_dir

WRITE_EVERY = 0.05
COLLECT_EVERY = 60.0  # seconds between looks for the stale leases of elects that were SIGKILLed
STALE_AFTER = 600.0  # a lease whose moment is this far in the past: its session is long gone
BEAT_EVERY = 0.25  # seconds: a live elect rewrites its lease at least this often (its beat= field)
ROOT_LEASE_DIR = "/run/zkherd-leases"
PREFIX = "zkherd-lease-"
OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def lease_name(node):
    return PREFIX + hashlib.sha1(node.encode("utf-8")).hexdigest()[:16]


def lease_dir(given=None, env=None, euid=None):
    """--lease-dir, else ZKHERD_RUN_DIR, else /run/zkherd-leases for root (readable by the jobs' users),
    else the run folder ($XDG_RUNTIME_DIR/zkherd). ZkError if there is none."""
    env = os.environ if env is None else env
    euid = os.geteuid() if euid is None else euid
    if given:
        return given
    if euid == 0 and not env.get("ZKHERD_RUN_DIR"):
        return ROOT_LEASE_DIR
    return run_dir(env, euid)


def trusted(st, euid):
    """Why a folder or lease file with this stat is not to be trusted, or None (configfiles.owners)."""
    return untrusted(st, euid)


def open_folder(path, make):
    """A descriptor of the lease folder (made 0755 if *make* and missing); ZkError unless trusted."""
    if make:
        try:
            os.mkdir(path, 0o755)
            made = True
        except FileExistsError:
            made = False
        except OSError as exc:
            raise ZkError("cannot make the lease folder %s: %s" % (path, exc.strerror)) from None
    try:
        fd = os.open(path, OPEN_DIR)
    except OSError as exc:
        raise ZkError("cannot open the lease folder %s: %s" % (
            path, "it is a symlink" if os.path.islink(path) else exc.strerror)) from None
    if make and made:
        try:
            os.fchmod(fd, 0o755)  # whatever the umask: cron jobs of other users read it (never through a link)
        except OSError:
            pass
    problem = trusted(os.fstat(fd), os.geteuid())
    if problem:
        os.close(fd)
        raise ZkError("refusing the lease folder %s: %s" % (path, problem))
    return fd


def read_lease(folder_fd, name):
    """The fields of lease file *name* in the folder, or None (missing, a link, untrusted, unreadable)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or trusted(st, os.geteuid()):
            return None
        text = os.read(fd, 4096).decode("utf-8")
        return dict(part.split("=", 1) for part in text.split() if "=" in part)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    finally:
        os.close(fd)


class LeaseWriter:
    """In `elect`: a thread that keeps the lease file of our member node up to date in the lease
    folder (lease_dir(*given*): --lease-dir)."""

    def __init__(self, session, log, given=None):
        self.session = session
        self.log = log
        self._cond = threading.Condition()
        self._node = self._owner = None
        self._closed = False
        self._fd = None
        self._failing = False  # a write failed: warned once, until one works again
        try:
            self.folder = lease_dir(given)
        except ZkError as exc:  # a user without a run folder: no lease, as documented
            log.info("no leadership lease for `zkherd cron` (its jobs are then stopped when they see this "
                     "member's node go, not before): %s" % exc.message)
            return
        try:
            self._fd = open_folder(self.folder, make=True)
        except ZkError as exc:
            log.warning("no leadership lease for `zkherd cron` (its jobs are then stopped when they see this "
                        "member's node go, not before): %s" % exc.message)
            return
        self._thread = threading.Thread(target=self._run, name="zkherd-lease", daemon=True)
        self._thread.start()

    def hold(self, node, owner):
        """Our member node is *node*, of session *owner* (None: we have none)."""
        with self._cond:
            if node != self._node:
                self._remove(self._node)
            self._node, self._owner = node, owner
            self._cond.notify()

    def close(self):
        if self._fd is None:
            return
        with self._cond:
            self._closed = True
            self._remove(self._node)
            self._node = None
            self._cond.notify()

    def _run(self):
        written, collected = None, None
        with self._cond:
            while not self._closed:
                line = self._line()
                if line is not None and line != written:
                    written = line if self._write(line) else None
                if collected is None or clock.now() - collected >= COLLECT_EVERY:
                    collected = clock.now()
                    self._collect()
                self._cond.wait(WRITE_EVERY)

    def _line(self):
        session = self.session
        if self._node is None or session.last_heard is None or session.session_id != self._owner:
            return None
        beat = int(clock.now() / BEAT_EVERY) * BEAT_EVERY  # moves every BEAT_EVERY while we live
        return "node=%s session=0x%x timeout=%.3f expires=%.3f beat=%.2f\n" % (
            self._node, self._owner, session.timeout, session.expires_no_earlier_than(), beat)

    def _write(self, line):
        """Write the lease to a new file and rename it over the old one, in the folder we checked,
        never through a link; 0644: cron jobs of other users read it."""
        name = lease_name(self._node)
        temp = name + ".new"
        try:
            try:
                os.unlink(temp, dir_fd=self._fd)
            except FileNotFoundError:
                pass
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                         dir_fd=self._fd)
            try:
                os.fchmod(fd, 0o644)
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
            os.replace(temp, name, src_dir_fd=self._fd, dst_dir_fd=self._fd)
        except OSError as exc:
            if not self._failing:
                self.log.warning("cannot write the leadership lease: `zkherd cron` jobs under this member are stopped "
                                 "early (an old lease) or only when they see its node go (none)",
                                 path=os.path.join(self.folder, name), error=exc.strerror)
            self._failing = True
            return False
        if self._failing:
            self.log.info("the leadership lease is written again", path=os.path.join(self.folder, name))
        self._failing = False
        return True

    def _collect(self):
        """Remove the leases of members long gone (an elect that was SIGKILLed leaves its lease)."""
        try:
            names = [n for n in os.listdir(self._fd) if n.startswith(PREFIX) and not n.endswith(".new")]
        except OSError:
            return
        mine = None if self._node is None else lease_name(self._node)
        for name in names:
            fields = read_lease(self._fd, name)
            try:
                stale = name != mine and float(fields["expires"]) < clock.now() - STALE_AFTER
            except (TypeError, KeyError, ValueError):
                continue
            if stale:
                try:
                    os.unlink(name, dir_fd=self._fd)
                except OSError:
                    pass

    def _remove(self, node):
        if node is not None and self._fd is not None:
            try:
                os.unlink(lease_name(node), dir_fd=self._fd)
            except OSError:
                pass


class LeaseReader:
    """In `cron`: the lease of the member node it leads under, in *folder*. bound() -> (expires,
    timeout) or None; once read, the last good value stays (a lease that goes or turns unreadable
    only ages). Once *owner* is set (the node's ephemeralOwner), a lease of another session is not
    the node's and is ignored."""

    def __init__(self, node, given, log):
        self.node = node
        self.owner = None
        self.last = None
        self.beat = None  # the lease's beat= as last read: it moves while the elect lives
        self.fd = None
        try:
            self.fd = open_folder(lease_dir(given), make=False)
        except ZkError as exc:
            log.info("no leadership lease to read: %s" % exc.message)

    def bound(self):
        if self.fd is None:
            return None
        fields = read_lease(self.fd, lease_name(self.node))
        try:
            if fields is not None and fields.get("node") == self.node and (
                    self.owner is None or int(fields["session"], 16) == self.owner):
                self.last = (float(fields["expires"]), float(fields["timeout"]))
                self.beat = fields.get("beat", fields["expires"])  # an elect without beats: its proofs
        except (KeyError, ValueError):
            pass
        return self.last

    def own(self, owner):
        """The member node's session is *owner*: forget a bound read from another session's lease."""
        self.owner = owner
        self.last = None
        return self.bound()

    def left(self):
        """Seconds until the member's session may expire, None without a lease."""
        found = self.bound()
        return None if found is None else found[0] - clock.now()


class Liveness:
    """Before a claim: is the member that leads alive right now? A live elect rewrites its lease
    every BEAT_EVERY (its beat= field); the run waits for one beat newer than its first look before
    it claims - an elect SIGKILLed just before the tick would otherwise claim the tick for a job its
    fence kills a moment later, and a --catch-up member would find it "already ran". It waits as
    long as the lease leaves a job time to run (a live elect on a loaded host beats late, not never);
    a dead one's lease runs out, and the run leaves the tick to the next leader. *need(timeout)*:
    the seconds a job needs before the lease's moment (the fence's margin and stop time)."""

    def __init__(self, reader, need):
        self.reader, self.need = reader, need
        self.first = None

    def verdict(self):
        """"ok", "dead", or the seconds until asking again (no new beat yet)."""
        found = self.reader.bound()
        if found is None:
            return "ok"  # no lease: nothing to tell from it
        expires, timeout = found
        if expires - clock.now() <= self.need(timeout):
            return "dead"
        if self.first is None:
            self.first = self.reader.beat
        return "ok" if self.reader.beat != self.first else 0.05
