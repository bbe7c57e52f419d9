"""The path of a configuration change, from a watch firing to files in place:

    changed -> (quiet period) -> look: read one consistent snapshot, compare with the files
            -> stage the files that differ (once) -> --check-cmd on the staged set (a Task, never
            blocking the loop) -> install

A burst of changes within the quiet period gives one pass with the newest content (promise 5).
`look` only reads and compares; nothing is written before the caller says `stage` (after it took
the rolling lock, say), so a set is staged and checked once. A rejected set is discarded, logged
and reported; the old files stay. A version (the newest mzxid of the snapshot) that failed - here,
or on another host as its failed-version record says - is not applied again: exactly that version,
whatever is pushed after it is.
"""

from __future__ import annotations

import time

from zkherd import telemetry
from zkherd.common.tree import MAX_VALUE_BYTES
from zkherd.configfiles.install import DEFAULT_FILE_MODE, FileSet, LocalFileError
from zkherd.configfiles.mirror import Mirror, Moving
from zkherd.configfiles.zkreads import RenderError
from zkherd.core.shellcmd import Task, command_env

MAX_DELAY = 2.0  # a steady stream of changes still gets applied this often
ABSENT_RECHECK = 10.0  # seconds between reads of the znodes templates found missing
SAME, MISSING, FAILED, MOVING, CHANGED = "same", "missing", "failed", "moving", "changed"
BROKEN = "broken"  # a template raised while rendering: self.render_failure says which version and why


class ConfigSync:
    def __init__(self, pairs, dir_pairs, check_cmd, check_timeout, quiet, post, log, file_mode=DEFAULT_FILE_MODE,
                 keep_copies=False, templates=()):
        self.mirror = Mirror(pairs, dir_pairs, post, log, templates)
        self.keep_copies = keep_copies  # --on-failure rollback: keep what an install replaces to put it back
        self.mirrored = set()  # the Targets of the set last installed (or found in place)
        self.staged_wanted = set()  # the Targets of the set staged
        self.swept = False  # our leftovers in the mirrored folders are swept on the first look
        self.file_mode = file_mode
        self.check_cmd = check_cmd
        self.check_timeout = check_timeout
        self.quiet = quiet
        self.log = log
        self.dirty = True
        self.first_change = self.last_change = time.monotonic() - quiet
        self.last_recheck = time.monotonic()  # when the missing znodes were last read again
        self.pending = None  # (FileSet, version, changes, stale, wanted) from the last look, not staged yet
        self.check = None  # the running --check-cmd Task
        self.staged = None  # the FileSet staged (and being checked)
        self.staged_version = None
        self.version = None  # installed (or found already in place)
        self.failed_version = None  # the one version not to apply: it failed here or elsewhere
        self.newest_read = 0  # the newest version of a snapshot read so far
        self.last_good = None  # {Target: bytes} before the last install, for --on-failure rollback
        self.waiting = None  # why the first files cannot be installed yet (for the service manager's status)
        self.render_failure = None  # (version, message) of the last template that raised

    def changed(self):
        now = time.monotonic()
        if not self.dirty:
            self.first_change = now
        self.dirty = True
        self.last_change = now

    @property
    def due_in(self):
        """Seconds until a dirty set should be looked at (0: now), None if nothing to do. A set whose
        templates found a znode missing is looked at again every ABSENT_RECHECK seconds (see
        ZnodeCache.recheck_absent)."""
        if self.check is not None or self.staged is not None:
            return None
        now = time.monotonic()
        if not self.dirty:
            if not self._absent():
                return None
            return max(0.0, self.last_recheck + ABSENT_RECHECK - now)
        return max(0.0, min(self.last_change + self.quiet, self.first_change + MAX_DELAY) - now)

    def _absent(self):
        templates = self.mirror.templates
        return templates is not None and templates.cache.absent_in_use()

    @property
    def busy(self):
        """A set is staged or being checked."""
        return self.staged is not None

    def look(self, loop, failed_record=None):
        """Read the newest set and compare it with the files: SAME (nothing to install), MISSING
        (a first file cannot be made yet), FAILED (the newest version already failed), MOVING (it
        changed while being read: look again in a moment) or CHANGED (look again with stage()).
        *failed_record* (failedversion.FailedVersions): another host's failed version to learn,
        read before the snapshot, so that a genuine one is never newer than it."""
        self.forget_pending()
        recorded = failed_record.read(loop) if failed_record else None
        if time.monotonic() >= self.last_recheck + ABSENT_RECHECK and self._absent():
            self.mirror.templates.cache.recheck_absent()
            self.last_recheck = time.monotonic()  # its own clock: looks for other changes never starve it
        self.dirty = False
        try:
            snap, version = self.mirror.snapshot(loop)
        except Moving as exc:
            self.log.debug("mirror: " + str(exc))
            self.dirty = True
            return MOVING
        except RenderError as exc:  # the files in place stay; a change of what it read renders again
            self.newest_read = max(self.newest_read, exc.version)
            self.render_failure = (exc.version, exc.message)
            self.log.error(exc.message + "; keeping the files in place", version=exc.version)
            self.waiting = "waiting for templates that render: " + exc.message
            return BROKEN
        except BaseException:
            self.dirty = True  # the loop tries again
            raise
        self.newest_read = max(self.newest_read, version)
        if failed_record is not None:
            recorded = failed_record.check(recorded, self.newest_read)
            if recorded is not None and recorded > (self.failed_version or -1):
                self.failed_version = recorded
        missing = self.mirror.missing(snap)
        self.waiting = None
        if missing:
            znodes = ",".join(pair[1] for pair in missing)
            self.log.warning("waiting for mirrored znodes that do not exist yet", znodes=znodes)
            self.waiting = "waiting for mirrored znodes " + znodes
            return MISSING
        if version == self.failed_version:
            self.log.info("the newest configuration is the version that failed; waiting for a newer one",
                          version=version)
            self.waiting = "waiting for a configuration newer than failed version %d" % version
            return FAILED
        files = FileSet(self.file_mode)
        try:
            self.prepare(snap, files)
            changes, stale = self.mirror.changes(snap, files), self.mirror.stale(snap, files)
        except BaseException:
            files.discard()
            raise
        wanted = {target for target, _data in self.mirror.desired_files(snap)}
        if not changes and not stale:
            files.discard()
            self.version, self.mirrored = version, wanted
            return SAME
        self.pending = (files, version, changes, stale, wanted)
        return CHANGED

    def prepare(self, snap, files):
        """Before the first set: sweep our leftovers (a runner killed half way through an install) in
        every folder of the mirrored trees; make the folder of a mirrored root that has no children."""
        if not self.swept:
            self.swept = True
            removed = files.sweep(self.mirror.folders(snap))
            if removed:
                self.log.info("removed leftovers of an interrupted install", folders=",".join(removed))
        for local_dir in self.mirror.empty_roots(snap):
            files.folders.open(local_dir, (), create=True)

    def stage(self):
        """Write the set found by the last look beside its files; start --check-cmd. Returns
        "checking", or "staged" (no check command: install() may follow at once)."""
        files, version, changes, stale, self.staged_wanted = self.pending
        self.pending = None
        try:
            for target in stale:  # their folders are opened (and pinned) before anything is staged
                files.remove(target)
            for target, data in changes:
                files.stage(target, data)
        except BaseException:
            files.discard()
            raise
        self.staged, self.staged_version = files, version
        self.log.info("configuration changed", version=version, files=",".join(t.path for t, _d in changes),
                      removed=",".join(t.path for t in stale) or "-")
        if not self.check_cmd:
            return "staged"
        staged = files.staged_paths()  # through the private folders' descriptors: see staging.py
        env = command_env(ZKHERD_CONFIG_VERSION=str(version), ZKHERD_STAGED_FILE=staged[0][1] if staged else "",
                          ZKHERD_STAGED_FILES="\n".join("%s=%s" % pair for pair in staged))
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
        """Rename the staged files into place; returns the version installed. LocalFileError if
        a file or folder was swapped meanwhile: nothing is installed then."""
        files, self.staged = self.staged, None
        try:
            last_good = self.copies(files) if self.keep_copies else {}
            written = ",".join(path for path, _tmp in files.staged_paths())
            files.install()
        except BaseException:
            files.discard()
            raise
        if files.left_alone:
            self.log.warning("folders moved aside by the install were not deleted: a folder of another owner is "
                             "inside (see docs/security.md); remove them by hand", folders=",".join(files.left_alone))
        self.last_good, self.mirrored = last_good, self.staged_wanted
        self.log.info("configuration installed", version=self.staged_version, files=written)
        self.version = self.staged_version
        telemetry.get().config(self.version, installed=True)  # run's and render's installs, counted here once
        return self.version

    def copies(self, files):
        """{Target: bytes} of the mirrored files - those of the last set and of this one, which came
        from ZooKeeper - that the install replaces or removes, to roll back to. Nothing else in the way
        (what a local user planted) is read; a file bigger than a znode can be is not kept, so the
        copies never hold more than the mirrored znodes do."""
        last_good = {}
        for target in sorted(self.mirrored | self.staged_wanted):
            if not files.affects(target):
                continue
            try:
                data = files.copy(target, MAX_VALUE_BYTES)
            except LocalFileError as exc:
                self.log.warning("not kept for --on-failure rollback: " + exc.message, file=target.path)
                continue
            if data is not None:
                last_good[target] = data
        return last_good

    def roll_back(self):
        """Put back the files the last install replaced."""
        if not self.last_good:
            return
        files = FileSet(self.file_mode)
        try:
            for target, data in sorted(self.last_good.items()):
                files.remove(target)  # a folder the install put in its place goes (a file is simply replaced)
                files.stage(target, data)
            files.install()
        except LocalFileError as exc:
            files.discard()
            self.log.error("cannot roll back to the last good configuration: " + exc.message)
            return
        self.log.warning("rolled back to the last good configuration",
                         files=",".join(sorted(t.path for t in self.last_good)))

    def forget_cache(self):
        """A new connection: the templates' cached znodes are read again (their watches may be gone)."""
        if self.mirror.templates is not None:
            self.mirror.templates.cache.forget()

    def forget_pending(self):
        if self.pending is not None:
            self.pending[0].discard()
            self.pending = None

    def discard(self):
        self.forget_pending()
        if self.staged is not None:
            self.staged.discard()
        self.staged = None
        if self.check is not None:
            self.check.kill()
            self.check = None
