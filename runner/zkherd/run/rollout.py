"""Configuration changes on a running child, as zkexec did them and more: --mirror, --check-cmd,
--on-change, --rolling-lock, --health, --alert, --register-when healthy.

A change with --rolling-lock: take the rolling lock (at most --rolling-slots hosts restart at once),
read the newest set, check and install it, restart the child, and release the lock once the child
is healthy (or, without --health, once it started). A version whose restarted child exits or is
not healthy in time is a failed version: the alert runs, the version is recorded in the znode
ROLLING_LOCK/failed, and with --on-failure pause (the default) the lock is kept, so the rollout
stops for everyone until a newer version is pushed, which is then applied; with --on-failure
rollback the previous files are put back and the lock released, and other hosts skip the version
(each host reads the record when it takes the rolling lock, right before it reads the set; see
failedversion.py for why a record is believed or refused).
"""

from __future__ import annotations

import socket
import time

from kazoo.exceptions import ConnectionLoss, SessionExpiredError

from zkherd.common.connection import ZkError
from zkherd.configfiles.sync import ConfigSync
from zkherd.core.shellcmd import Task, command_env
from zkherd.recipes.lock import Lock, LockLost
from zkherd.run.failedversion import FailedVersions
from zkherd.run.health import HEALTHY, UNHEALTHY, Health

IDLE, WAITING, APPLYING, FAILED = "idle", "waiting for the rolling lock", "applying", "failed"


class Rollout:
    def __init__(self, runner):
        self.runner = runner
        opts = runner.opts
        self.opts = opts
        self.log = runner.log
        timeout = runner.op_timeout
        self.sync = (ConfigSync(opts.mirror, opts.mirror_dir, opts.check_cmd, opts.check_timeout, opts.change_delay,
                                runner.wakeup, self.log, timeout, opts.file_mode)
                     if opts.mirror or opts.mirror_dir else None)
        self.health = (Health(opts.health, opts.health_delay, opts.health_interval, opts.health_timeout,
                              opts.health_rise, opts.health_fall, command_env(), self.log) if opts.health else None)
        self.rolling = (Lock(opts.rolling_lock, opts.rolling_slots, opts.id, runner.wakeup, self.log, timeout,
                             event="rolling", on_foreign=lambda message: self.alert("foreign-lock-node", message))
                        if opts.rolling_lock else None)
        self.failed_versions = FailedVersions(opts.rolling_lock, opts.id, self.log) if opts.rolling_lock else None
        self.phase = IDLE
        self.rolling_held = False
        self.rolling_dirty = False
        self.learn_pending = False  # the rolling lock was just taken: read the failed-version record
        self.retry_at = 0.0
        self.release_pending = False  # the rolling lock could not be released yet
        self.restarting = False  # we stopped the child to restart it with new files
        self.alerts = []

    # -- what the runner asks ---------------------------------------------------------------

    def may_start(self):
        """The child's first start waits for the mirrored files."""
        return self.sync is None or self.sync.version is not None

    def child_started(self):
        if self.health is not None:
            self.health.child_started()
        elif self.phase == APPLYING:
            self.applied()

    def child_exited(self, code, reason):
        """True if the exit is ours to handle (a restart, or a failed version)."""
        if self.health is not None:
            self.health.stop()
        if self.restarting:
            self.restarting = False
            self.runner.restart_child()
            return True
        if self.phase == APPLYING and reason is None and self.runner.exit_code is None:
            self.failed("the child exited with code %d after the new configuration" % code)
            return True
        if reason is None and code != 0:
            self.alert("exited", "the child exited with code %d" % code)
        return False

    def on_event(self, kind):
        if kind == "mirror" and self.sync is not None:
            self.sync.changed()
        elif kind == "rolling":
            self.rolling_dirty = True

    # -- the loop's work --------------------------------------------------------------------

    def poll(self, client, connected):
        """Returns seconds until something is due, or None. ZooKeeper errors here are retried."""
        for task in self.alerts:
            task.poll()
        self.alerts = [task for task in self.alerts if task.done is None]
        timeouts = []
        try:
            self._poll(client, connected, timeouts)
        except LockLost as exc:
            self.log.warning("lost our place in the rolling lock", lock=self.opts.rolling_lock, reason=str(exc))
            self.rolling_held = False
            # what is left of our nodes goes now, or on the next try (the next step finds them lost again)
            timeouts.append(self.retry(0.0 if self.rolling.leave(client) else 0.2))
        except ZkError as exc:
            self.log.error(exc.message)
            timeouts.append(self.retry(1.0))
        except (ConnectionLoss, SessionExpiredError, client.handler.timeout_exception) as exc:
            self.log.debug("ZooKeeper request did not complete, trying again", error=type(exc).__name__)
            timeouts.append(self.retry(0.2))
        return min((t for t in timeouts if t is not None), default=None)

    def _poll(self, client, connected, timeouts):
        if self.health is not None and self.runner.child_running:
            left, changed = self.health.poll()
            timeouts.append(left)
            if changed:
                self.health_changed(changed)
            if self.phase == APPLYING and not self.restarting and self.health.status != HEALTHY:
                left = self.health.healthy_by - time.monotonic()
                if left <= 0:
                    self.failed("the child was not healthy in time after the new configuration")
                else:
                    timeouts.append(left)
        if not connected or self.runner.exit_code is not None:
            return
        if self.release_pending:
            self.release_rolling(client)
        if self.sync is not None:
            if time.monotonic() >= self.retry_at:
                timeouts.append(self.config_step(client))
            elif self.sync.dirty:
                timeouts.append(self.retry_at - time.monotonic())  # waiting to retry

    def retry(self, delay):
        """Try the configuration step again after *delay* (a change may be lost otherwise)."""
        self.retry_at = time.monotonic() + delay
        self.sync.dirty = True
        if self.phase == WAITING:
            self.rolling_dirty = True
        return delay

    def session_lost(self):
        """Our ephemeral rolling lock nodes went with the session."""
        if self.rolling is not None:
            self.rolling.forget_session()
            self.rolling_held = False
            if self.phase in (WAITING, FAILED):
                self.phase = IDLE
        if self.sync is not None:
            self.sync.dirty = True  # read again on the new session: changes may have been missed

    def config_step(self, client):
        sync = self.sync
        if sync.check is not None:
            left, ok = sync.poll_check()
            if ok is None:
                return left
            if ok:
                self.install()
            else:
                self.alert("rejected", "the check command rejected configuration version %d" % sync.staged_version)
                if self.phase == IDLE:  # taken for this version only; a paused rollout stays paused
                    self.release_rolling(client)
                if sync.version is None and not self.sync.mirror.missing_files():
                    self.log.warning("starting the child with the files already in place")
                    sync.version = -1
                    self.runner.dirty = True
                elif sync.version is None:
                    sync.waiting = "waiting for a configuration that the check command accepts"
            return None
        if self.phase == WAITING:
            if not self.rolling_dirty:
                return None
            self.rolling_dirty = False
            if not self.rolling.step(client):
                return None
            self.log.info("rolling lock acquired", lock=self.opts.rolling_lock)
            self.phase = IDLE
            self.rolling_held = True
            self.learn_pending = True
            sync.dirty = True  # read the newest set now that it is our turn
        due = sync.due_in
        if due is None or due > 0:
            return due
        outcome = sync.read(client, self.failed_versions if self.learn_pending else None)
        self.learn_pending = False
        if outcome in ("same", "failed", "missing"):
            if outcome == "same" and not self.runner.child_running:
                self.runner.dirty = True  # the first files are in place: the child may start
            if self.phase == IDLE:  # nothing to apply after all; never while applying or paused
                self.release_rolling(client)
            return None
        needs_lock = self.rolling is not None and self.runner.child_running and self.opts.on_change == "restart"
        if needs_lock and not self.rolling_held:
            sync.discard()
            self.phase = WAITING
            self.rolling_dirty = True
            self.log.info("configuration changed; waiting for the rolling lock", lock=self.opts.rolling_lock)
            return 0.0
        if outcome == "staged":
            self.install()
        return 0.0 if outcome == "staged" else None

    def install(self):
        self.sync.install()
        runner = self.runner
        if not runner.child_running:
            runner.dirty = True  # first start, or a restart after a failed version
            if self.rolling_held:
                self.phase = APPLYING
            return
        action = self.opts.on_change
        if action == "restart":
            self.restarting = True
            if self.rolling_held:
                self.phase = APPLYING
            runner.stop_child("the configuration changed")
        elif action == "reload":
            self.log.info("configuration changed, signalling the child", signal=self.opts.reload_signal.name)
            runner.child.signal(self.opts.reload_signal)

    def health_changed(self, status):
        runner = self.runner
        if self.opts.register_when == "healthy" and runner.registration is not None and runner.connected:
            client = runner.session.client
            if status == HEALTHY:
                runner.registration.ensure(client, runner.op_timeout)
            else:
                runner.registration.remove(client, runner.op_timeout)
        if status == HEALTHY and self.phase == APPLYING:
            self.applied()
        elif status == UNHEALTHY and self.phase != APPLYING:
            self.alert("health", "the child failed its health checks")

    def applied(self):
        self.log.info("new configuration is running", version=self.sync.version if self.sync else None)
        self.phase = IDLE
        self.release_pending = True  # on the next poll that has a connection

    def failed(self, why):
        version = self.sync.version if self.sync else None
        self.log.warning("configuration version failed", version=version, reason=why)
        self.alert("failed-version", why)
        if self.sync is not None:
            self.sync.failed_version = version
        self.record_failed(version, why)
        if self.opts.on_failure == "rollback" and self.sync is not None and self.sync.last_good:
            self.sync.roll_back()
            self.phase = IDLE
            if self.runner.child_running:
                self.restarting = True
                self.runner.stop_child("rolling back to the last good configuration")
            else:
                self.runner.dirty = True
            self.release_pending = True
        else:
            self.phase = FAILED  # keep the rolling lock: the rollout pauses until a newer version
            self.log.warning("rollout paused, holding the rolling lock until a newer version is pushed",
                             lock=self.opts.rolling_lock)

    # -- ZooKeeper bookkeeping --------------------------------------------------------------

    def release_rolling(self, client):
        if self.rolling_held or self.rolling is not None and self.rolling.place is not None:
            self.release_pending = True  # until it worked: ZooKeeper may be out of reach
            self.rolling.release(client)
            self.release_pending = False
            if self.rolling_held:
                self.log.info("rolling lock released", lock=self.opts.rolling_lock)
            self.rolling_held = False
        if self.phase == FAILED:
            self.phase = IDLE

    def record_failed(self, version, why):
        if self.failed_versions is not None and self.runner.connected:
            self.failed_versions.record(self.runner.session.client, version, why, self.runner.op_timeout)

    def alert(self, kind, message):
        if not self.opts.alert:
            return
        if kind == "health" and self.health is not None and self.health.in_delay:
            return
        env = command_env(ZKHERD_ALERT=kind, ZKHERD_ALERT_MESSAGE=message, ZKHERD_ALERT_HOST=socket.gethostname(),
                          ZKHERD_CONFIG_VERSION=str(self.sync.version if self.sync else ""))
        self.log.warning("running the alert command", alert=kind, message=message)
        self.alerts.append(Task("alert command", self.opts.alert, env, 60.0, self.log))

    def close(self):
        if self.sync is not None:
            self.sync.discard()
        if self.health is not None:
            self.health.stop()
