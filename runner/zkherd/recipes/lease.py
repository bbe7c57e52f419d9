"""The leadership lease: how `zkherd cron` fences its job on the session of the `zkherd elect` member
it leads under, which is another process's (docs/cron.md, "Fenced by the leadership it claimed under").

`elect` knows, from its own syncs through the ZooKeeper leader (core/session.py), a moment before
which the leader cannot expire its session, and so cannot delete its member node. It writes that
moment (CLOCK_BOOTTIME, the same clock for every process of the host) to the lease file of its member
node in the run folder (recipes/cronlock.py run_dir: the folder of cron's local locks), at each
change. `cron` reads the lease of the member node it claims the tick under, and its fence
(core/fence.py) kills the job that much before the moment, as `zkherd run` does with its own
session: the job is dead before the member's session can expire, so before another member can lead.

    DIR/zkherd-lease-HASH   node=PATH session=0xID timeout=4.000 expires=12345.678

A lease that is not updated any more (the member is frozen, cut off, killed) keeps its old moment:
the job is stopped early, never late.
"""

from __future__ import annotations

import hashlib
import os
import threading

from zkherd.common.connection import ZkError
from zkherd.core import clock
from zkherd.recipes.cronlock import open_run_dir, run_dir

WRITE_EVERY = 0.05


def lease_name(node):
    return "zkherd-lease-%s" % hashlib.sha1(node.encode("utf-8")).hexdigest()[:16]


class LeaseWriter:
    """In `elect`: a thread that keeps the lease file of our member node up to date."""

    def __init__(self, session, log):
        self.session = session
        self.log = log
        self._cond = threading.Condition()
        self._node = self._owner = None
        self._closed = False
        self._folder = None
        try:
            self._folder = run_dir()
            os.close(open_run_dir(self._folder))
        except ZkError as exc:
            self._folder = None
            log.info("no leadership lease for `zkherd cron` (its jobs are then stopped when they see this member's "
                     "node go, not before): %s" % exc.message)
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
        if self._folder is None:
            return
        with self._cond:
            self._closed = True
            self._remove(self._node)
            self._node = None
            self._cond.notify()

    def _run(self):
        written = None
        with self._cond:
            while not self._closed:
                line = self._line()
                if line is not None and line != written:
                    written = line if self._write(line) else None
                self._cond.wait(WRITE_EVERY)

    def _line(self):
        session = self.session
        if self._node is None or session.last_heard is None or session.session_id != self._owner:
            return None
        return "node=%s session=0x%x timeout=%.3f expires=%.3f\n" % (
            self._node, self._owner, session.timeout, session.expires_no_earlier_than())

    def _write(self, line):
        path = os.path.join(self._folder, lease_name(self._node))
        temp = path + ".new"
        try:
            with open(temp, "w", encoding="utf-8") as out:
                out.write(line)
            os.replace(temp, path)
            return True
        except OSError as exc:
            self.log.debug("could not write the leadership lease", path=path, error=exc.strerror)
            return False

    def _remove(self, node):
        if node is not None and self._folder is not None:
            try:
                os.unlink(os.path.join(self._folder, lease_name(node)))
            except OSError:
                pass


class LeaseReader:
    """In `cron`: the lease of the member node it leads under. bound() -> (expires, timeout) or None;
    once read, the last good value stays (a lease that goes or turns unreadable only ages)."""

    def __init__(self, node):
        self.node = node
        self.last = None
        try:
            self.path = os.path.join(run_dir(), lease_name(node))
        except ZkError:
            self.path = None

    def bound(self):
        if self.path is None:
            return None
        try:
            with open(self.path, encoding="utf-8") as lease:
                fields = dict(part.split("=", 1) for part in lease.read(4096).split() if "=" in part)
            if fields.get("node") == self.node:
                self.last = (float(fields["expires"]), float(fields["timeout"]))
        except (OSError, ValueError, KeyError, UnicodeDecodeError):
            pass
        return self.last

    def left(self):
        """Seconds until the member's session may expire, None without a lease."""
        found = self.bound()
        return None if found is None else found[0] - clock.now()
