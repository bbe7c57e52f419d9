"""Configuration changes on a running child, as zkexec did them and more: --mirror, --mirror-dir,
--check-cmd, --on-change, --rolling-lock, --on-failure.

A change with --rolling-lock: take the rolling lock (at most --rolling-slots hosts restart at once),
then read the newest set, stage and check it (once), install it, restart the child, and release the
lock once the child is healthy (or, without --health, once it started). A version whose restarted
child exits or is not healthy in time is a failed version: the alert runs, the version is recorded
in the znode ROLLING_LOCK/failed, and with --on-failure pause (the default) the lock is kept, so the
rollout stops for everyone until a newer version is pushed, which is then applied; with --on-failure
rollback the previous files are put back and the lock released, and other hosts skip the version
(each host reads the record when it takes the rolling lock, right before it reads the set; see
failedversion.py for why a record is believed or refused).

The component never touches the runner: it is told what happens to the child (child_started,
child_exited, health) and answers with what it wants done - RESTART, RELOAD or START - which the
runner's state machine carries out.
"""

from __future__ import annotations

import time

from zkherd.configfiles import sync as outcomes
from zkherd.configfiles.install import LocalFileError
from zkherd.configfiles.sync import ConfigSync
from zkherd.recipes.lock import Lock, LockLost
from zkherd.run.failedversion import FailedVersions
from zkherd.run.health import HEALTHY
from zkherd.run.wants import APPLYING, IDLE, PAUSED, RELOAD, RESTART, START, WAITING


class Rollout:
    def __init__(self, opts, loop, log, alerts):
        self.opts = opts
        self.log = log
        self.alerts = alerts
        self.sync = ConfigSync(opts.mirror, opts.mirror_dir, opts.check_cmd, opts.check_timeout, opts.change_delay,
                               loop.wakeup.post, log, opts.file_mode, keep_copies=opts.on_failure == "rollback",
                               templates=opts.templates)
        self.rolling = self.failed_versions = None
        if opts.rolling_lock:
            self.rolling = Lock(opts.rolling_lock, opts.rolling_slots, opts.id, loop.wakeup, log, loop.op_timeout,
                                event="rolling", on_foreign=lambda message: alerts.fire("foreign-lock-node", message),
                                kind="rolling")
            self.failed_versions = FailedVersions(opts.rolling_lock, opts.id, log)
        self.phase = IDLE
        self.applying = None  # the version applied under the rolling lock (phase APPLYING)
        self.tried = False  # a child started with it (a drain before that leaves it untried, not failed)
        self.held = False  # the rolling lock is ours
        self.rolling_dirty = False
        self.release_pending = False  # the rolling lock is to be released (on the next turn with a connection)
        self.record_pending = None  # (version, why) of a failure, to record on the next turn with a connection
        self.after_failure = None  # what the runner is to do after a failed version: RESTART (rolled back) or None
        self.local_failure = None  # the last version that a local error kept out (alerted once)
        self.render_alerted = None  # the last version whose render failure was alerted (once per version)

    # -- what the runner tells --------------------------------------------------------------------

    @property
    def ready(self):
        """The first files are in place: the child may start."""
        return self.sync.version is not None

    @property
    def busy(self):
        """A change is on its way to the running child (waiting for the rolling lock, checked)."""
        return self.phase == WAITING or self.sync.busy

    def on_event(self, kind):
        if kind in ("mirror", "template"):
            self.sync.changed()
        elif kind == "rolling":
            self.rolling_dirty = True

    def reconnected(self):
        """kazoo drops watches with the connection: read the set and look at the rolling lock again."""
        self.sync.forget_cache()
        self.sync.changed()
        self.rolling_dirty = True

    def child_started(self, health):
        """The child (re)started; without --health it counts as healthy at once."""
        if self.phase == APPLYING:
            self.tried = True
        if health is None and self.phase == APPLYING:
            self.applied()

    def child_failed(self, why):
        """The child exited on its own, or was not healthy in time, after a new version: True if
        that is the version's fault (a failed version); what to do then is in self.after_failure."""
        if self.phase != APPLYING:
            return False
        self.failed(why)
        return True

    def health_deadline(self, health):
        """While a new version is applied and the child is not healthy yet: (seconds until that is
        too late, None); once it is, a failed version: (None, what the runner is to do after it)."""
        if health.status == HEALTHY:
            return None, None
        late = time.monotonic() - health.healthy_by
        if late < 0:
            return -late, None
        self.child_failed("the child was not healthy in time after the new configuration")
        return None, self.after_failure

    def healthy(self):
        if self.phase == APPLYING:
            self.applied()

    def session_lost(self):
        """Our ephemeral rolling lock nodes went with the session."""
        if self.rolling is not None:
            self.rolling.forget_session()
            self.held = False
            if self.phase in (WAITING, PAUSED):
                self.phase = IDLE
        self.sync.discard()
        self.sync.forget_cache()
        self.sync.dirty = True  # read again on the new session: changes may have been missed

    # -- the work ---------------------------------------------------------------------------------

    def poll(self, loop, child_up, drained=False):
        """ZooKeeper work (call when connected): returns (seconds until due or None, action or None).
        *drained*: the runner is drained (its child stops or is gone): it never takes the rolling lock.
        A local error (a set that cannot be read, staged or installed here) goes up to the runner,
        which logs it and tries again in a second; the alert runs once per version it hits."""
        try:
            return self._poll(loop, child_up, drained)
        except LocalFileError as exc:
            if getattr(exc, "traceback", None):
                self.log.debug("traceback", traceback=exc.traceback)
            version = self.sync.newest_read
            if version != self.local_failure:
                self.local_failure = version
                self.alerts.fire("install-failed", "configuration version %d cannot be installed here, the files in "
                                 "place are kept: %s" % (version, exc.message))
            raise

    def _poll(self, loop, child_up, drained):
        if self.release_pending:
            self.release(loop)
        sync = self.sync
        if sync.check is not None:
            return self.checked(loop, child_up)
        if self.phase == WAITING:
            # no child up (drained, or the lock lost, while it stops): taking the lock now would
            # apply a version no child runs; step_aside leaves the line once the runner is out for
            # sure, or the child comes back up and the lock is taken then (rolling_dirty stays)
            if not self.rolling_dirty or drained or not child_up:
                return None, None
            self.rolling_dirty = False
            try:
                if not self.rolling.step(loop.client):
                    return None, None
            except LockLost as exc:
                self.log.warning("lost our place in the rolling lock", lock=self.opts.rolling_lock, reason=str(exc))
                self.rolling_dirty = True
                return 0.0 if self.rolling.leave(loop.client) else 0.2, None
            except BaseException:
                self.rolling_dirty = True  # look again on the next turn
                raise
            self.log.info("rolling lock acquired", lock=self.opts.rolling_lock)
            self.phase, self.held = IDLE, True
            return self.look(loop, child_up, learn=True)
        due = sync.due_in
        if due is None or due > 0:
            return due, None
        after, action = self.look(loop, child_up, learn=False)
        # nothing more to wait for: the next recheck of missing znodes (ConfigSync.due_in), if any
        return (sync.due_in if after is None else after), action

    def look(self, loop, child_up, learn):
        sync = self.sync
        outcome = sync.look(loop, self.failed_versions if learn else None)
        if outcome == outcomes.MOVING:
            return 0.1, None
        if outcome == outcomes.BROKEN:
            self.render_failed()
        if outcome != outcomes.CHANGED:
            if self.phase == IDLE:  # nothing to apply after all; never while applying or paused
                self.release(loop)
            return None, (START if outcome == outcomes.SAME and not child_up else None)
        if self.needs_lock(child_up):
            sync.forget_pending()  # staged once, after the lock is ours and the newest set read again
            return self.queue_for_lock("configuration changed; waiting for the rolling lock")
        if sync.stage() == "checking":
            return sync.check_timeout, None
        return 0.0, self.install(child_up)

    def needs_lock(self, child_up):
        """A restart of a running child always holds the rolling lock (promise 6)."""
        return self.rolling is not None and child_up and self.opts.on_change == "restart" and not self.held

    def queue_for_lock(self, why):
        self.phase, self.rolling_dirty = WAITING, True
        self.log.info(why, lock=self.opts.rolling_lock)
        return 0.0, None

    def render_failed(self):
        version, message = self.sync.render_failure
        if version != self.render_alerted:
            self.render_alerted = version
            self.alerts.fire("render-failed", message)

    def checked(self, loop, child_up):
        sync = self.sync
        left, ok = sync.poll_check()
        if ok is None:
            return left, None
        if ok and self.needs_lock(child_up):
            # checked without the lock while no child ran (a drained host), and a child started
            # meanwhile (undrained): the restart waits for the lock; the set is read and checked again
            sync.discard()
            return self.queue_for_lock("the child started during the check; waiting for the rolling lock "
                                       "before restarting it")
        if ok:
            return 0.0, self.install(child_up)
        self.alerts.fire("rejected", "the check command rejected configuration version %d" % sync.staged_version)
        if self.phase == IDLE:  # taken for this version only; a paused rollout stays paused
            self.release(loop)
        if sync.version is None and not sync.mirror.missing_files():
            self.log.warning("starting the child with the files already in place")
            sync.version = -1
            return None, START
        if sync.version is None:
            sync.waiting = "waiting for a configuration that the check command accepts"
        return None, None

    def install(self, child_up):
        version = self.sync.install()
        self.alerts.version = version
        if self.held:
            self.phase, self.applying, self.tried = APPLYING, version, False
            self.rolling.publish(version=version, phase="applying")  # for `zkherd status`
        if not child_up:
            return START  # first start, or after a failed version
        if self.opts.on_change == "restart":
            if not self.held:
                self.phase = APPLYING
            return RESTART
        return RELOAD if self.opts.on_change == "reload" else None

    def applied(self):
        self.log.info("new configuration is running", version=self.sync.version)
        self.phase = IDLE
        self.release_pending = self.held

    def failed(self, why):
        version = self.sync.version
        self.log.warning("configuration version failed", version=version, reason=why)
        self.alerts.fire("failed-version", why)
        self.sync.failed_version = version
        self.record_pending = (version, why)
        if self.opts.on_failure == "rollback" and self.sync.last_good:
            self.sync.roll_back()
            self.phase, self.after_failure, self.release_pending = IDLE, RESTART, self.held
        else:  # keep the rolling lock: the rollout pauses until a newer version
            self.phase, self.after_failure = PAUSED, None
            if self.held:
                self.rolling.publish(phase="paused")  # `zkherd status` says so exactly, not inferred
            self.log.warning("rollout paused, holding the rolling lock until a newer version is pushed",
                             lock=self.opts.rolling_lock)

    def step_aside(self, loop, why):
        """The runner is drained, or waits behind another holder of its lock (no child, none to
        come; *why* says which): leave the rolling lock's line, or release the lock if we hold it
        (also paused on a failed version: the record ROLLING_LOCK/failed stays and keeps that
        version out on the other hosts). A new version is then installed here without the lock, as
        for any runner whose child is not up. Out while applying a version that a child ran (no
        verdict yet, none can come): the version is recorded as failed before the lock goes, so
        that an unproven version never rolls on (docs/operations.md); out before a child ran it,
        it is untried: the lock goes, the next holder tries it."""
        if self.phase == APPLYING and self.held and self.tried:
            if not self.unproven(loop, why):
                return  # the record first, then the lock: tried again on the next turn
        elif self.phase == APPLYING:  # no rolling lock, or no child ran it: the next holder tries it
            self.phase = IDLE
        if self.rolling is None or not (self.held or self.rolling.engaged or self.phase in (WAITING, PAUSED)):
            return
        self.log.info(why + ": leaving the rolling lock to the others", lock=self.opts.rolling_lock,
                      phase=self.phase)
        was = self.phase
        self.release(loop)
        if was == WAITING:
            self.phase = IDLE
            self.sync.changed()  # the change we waited for is installed without the lock

    def unproven(self, loop, why):
        """Record the version being applied as failed (no verdict can come): True once done (or
        given up on for good), False if ZooKeeper could not be asked (we keep the lock meanwhile)."""
        # the one we held the lock for (not a newer one installed since)
        version = self.applying if self.applying is not None else self.sync.version
        why = "%s before configuration version %s was proven healthy" % (why, version)
        if self.sync.failed_version != version:  # once per version
            self.log.warning(why + ": recorded as failed, the rollout stops on it until a newer version is "
                             "pushed", version=version, lock=self.opts.rolling_lock)
            self.alerts.fire("failed-version", why)
            self.sync.failed_version = version
            if self.opts.on_failure == "rollback" and self.sync.last_good:
                self.sync.roll_back()
        if not self.failed_versions.record(loop, version, why):
            return False
        self.phase = IDLE  # the next start (after undrain) is a start, not this version's verdict
        return True

    def record_failure(self, loop):
        """Write the failed-version record (on the first turn with a connection after a failure)."""
        if (self.record_pending is not None and self.failed_versions is not None
                and not self.failed_versions.record(loop, *self.record_pending)):
            return  # ZooKeeper could not be asked: kept, tried again on the next turn
        self.record_pending = None

    def release(self, loop):
        if self.rolling is None:
            return
        if self.held or self.rolling.engaged:  # engaged: also a transaction whose answer was lost
            self.release_pending = True  # until it worked: ZooKeeper may be out of reach
            self.rolling.release(loop.client)
            if self.held:
                self.log.info("rolling lock released", lock=self.opts.rolling_lock)
        self.release_pending = self.held = False
        if self.phase == PAUSED:
            self.phase = IDLE

    def close(self):
        self.sync.discard()
