"""The path of a configuration change, from a watch firing to files in place:

    changed -> (quiet period) -> read one consistent snapshot -> stage the files that differ
            -> --check-cmd on the staged set (a Task, never blocking the loop) -> install

A burst of changes within the quiet period gives one pass with the newest content (promise 5).
A rejected set is discarded, logged and reported; the old files stay. A version (the newest
mzxid of the snapshot) that failed is remembered and not applied again; a newer one is.
"""

from __future__ import annotations

import time

from zkherd.mirror import Mirror
from zkherd.tasks import Task, command_env

MAX_DELAY = 2.0  # a steady stream of changes still gets applied this often


class ConfigSync:
    def __init__(self, pairs, dir_pairs, check_cmd, check_timeout, quiet, wakeup, log, op_timeout):
        self.mirror = Mirror(pairs, wakeup, log, op_timeout, dir_pairs)
        self.check_cmd = check_cmd
        self.check_timeout = check_timeout
        self.quiet = quiet
        self.log = log
        self.dirty = True
        self.first_change = self.last_change = time.monotonic() - quiet
        self.check = None  # the running --check-cmd Task
        self.staged = None  # [(local, tmp)] waiting for the check
        self.stale = []  # files of mirrored directories to delete with the install
        self.staged_version = None
        self.version = None  # installed (or found already in place)
        self.failed_version = None
        self.last_good = None  # {local: bytes} before the last install, for --on-failure rollback
        self.waiting = None  # why the first files cannot be installed yet (for the service manager's status)

    def changed(self):
        now = time.monotonic()
        if not self.dirty:
            self.first_change = now
        self.dirty = True
        self.last_change = now

    @property
    def due_in(self):
        """Seconds until a dirty set should be read (0: now), None if nothing to do."""
        if not self.dirty or self.check is not None:
            return None
        now = time.monotonic()
        return max(0.0, min(self.last_change + self.quiet, self.first_change + MAX_DELAY) - now)

    def read(self, client):
        """Read and stage. Returns 'same' (nothing to install), 'missing' (a file cannot be made
        yet), 'failed' (the newest version already failed), 'checking' or 'staged'."""
        self.dirty = False
        snap, version = self.mirror.snapshot(client)
        missing = self.mirror.missing(snap)
        self.waiting = None
        if missing:
            znodes = ",".join(pair[1] for pair in missing)
            self.log.warning("waiting for mirrored znodes that do not exist yet", znodes=znodes)
            self.waiting = "waiting for mirrored znodes " + znodes
            return "missing"
        if self.failed_version is not None and version <= self.failed_version:
            self.log.info("the newest configuration is the version that failed; waiting for a newer one",
                          version=version)
            self.waiting = "waiting for a configuration newer than failed version %d" % version
            return "failed"
        changes, stale = self.mirror.changes(snap), self.mirror.stale(snap)
        if not changes and not stale:
            self.version = version
            return "same"
        self.discard()
        self.staged = Mirror.stage(changes)
        self.stale = stale
        self.staged_version = version
        self.log.info("configuration changed", version=version, files=",".join(pair[0] for pair in changes),
                      removed=",".join(stale) or "-")
        if not self.check_cmd:
            return "staged"
        env = command_env(ZKHERD_CONFIG_VERSION=str(version), ZKHERD_STAGED_FILE=self.staged[0][1],
                          ZKHERD_STAGED_FILES="\n".join("%s=%s" % pair for pair in self.staged))
        self.check = Task("check command", self.check_cmd, env, self.check_timeout, self.log)
        return "checking"

    def poll_check(self):
        """While --check-cmd runs: (seconds to its deadline, None), then (None, True/False)."""
        left = self.check.poll()
        if self.check.done is None:
            return left, None
        ok, code = self.check.ok, self.check.done
        self.check = None
        if not ok:
            self.log.warning("check command rejected the new configuration; keeping the old files",
                             version=self.staged_version, code=code)
            self.discard()
        return None, ok

    def install(self):
        """Rename the staged files into place; returns the version installed."""
        self.last_good = {}
        for local in [pair[0] for pair in self.staged] + self.stale:
            try:
                with open(local, "rb") as handle:
                    self.last_good[local] = handle.read()
            except FileNotFoundError:
                pass
        Mirror.install(self.staged, self.stale)
        self.log.info("configuration installed", version=self.staged_version,
                      files=",".join(pair[0] for pair in self.staged))
        self.staged = None
        self.version = self.staged_version
        return self.version

    def roll_back(self):
        """Put back the files the last install replaced."""
        if self.last_good:
            Mirror.install(Mirror.stage(sorted(self.last_good.items())))
            self.log.warning("rolled back to the last good configuration", files=",".join(sorted(self.last_good)))

    def discard(self):
        if self.staged:
            Mirror.discard(self.staged)
        self.staged = None
        if self.check is not None:
            self.check.kill()
            self.check = None
