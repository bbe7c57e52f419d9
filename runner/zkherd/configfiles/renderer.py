"""`zkherd render`: the templates' pipeline without a child (consul-template's other mode), on the one
loop skeleton (core/loop.py).

    change -> (quiet period) -> render + mirrored reads (one state) -> stage -> --check-cmd -> install
           -> --on-change (a Task: its failure is logged and alerted, never fatal)

--once does that once and exits: 0 when the files are in place (changed or not; --on-change ran and
ended if they changed), 65 when a template raised or the check rejected the set, 73 when a file
cannot be written, 75 when a znode a template reads (without default) does not exist - nothing is
written then, 69 when ZooKeeper stops answering for longer than the session (or connect) timeout -
never a silent wait. Long-running, SIGTERM or SIGINT exits 0 (also during a render: renderguard.py),
SIGHUP reads everything again and renders now; a failure keeps the files in place and is alerted
once per version, and the next change tries again. One --on-change command at a time: while one
runs nothing is read or installed; the newest change is applied after it ended.
"""

from __future__ import annotations

import signal
import time

from kazoo.protocol.states import KazooState

from zkherd.configfiles import sync as outcomes
from zkherd.configfiles.install import LocalFileError
from zkherd.configfiles.sync import ConfigSync
from zkherd.core import exits
from zkherd.core.loop import Loop, Program
from zkherd.core.shellcmd import Task, command_env
from zkherd.run.alerts import Alerts

ON_CHANGE_TIMEOUT = 300.0


class Renderer(Program):
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self, opts, log):
        self.opts, self.log = opts, log
        self.alerts = Alerts(opts.alert, log)
        self.sync = None
        self.on_change = None  # the running --on-change Task
        self.alerted = set()  # (kind, version) already alerted: once per version
        self.finished = None  # --once: the exit code, once --on-change is done
        self.dark_since = None  # --once: since when ZooKeeper has not answered

    def start(self, loop):
        opts = self.opts
        self.sync = ConfigSync(opts.mirror, opts.mirror_dir, opts.check_cmd, opts.check_timeout, opts.change_delay,
                               loop.wakeup.post, self.log, opts.file_mode, templates=opts.templates)

    def on_event(self, kind, value):
        if kind == "signal" and value == signal.SIGHUP:
            self.log.info("received SIGHUP, reading the znodes again and rendering now")
            self.sync.forget_cache()
            self.sync.changed()
        elif kind == "signal":
            self.log.info("received a stop signal, exiting")
            self.exit_code = exits.OK
        elif kind in ("mirror", "template"):
            self.sync.changed()
        elif kind == "state" and value == KazooState.CONNECTED:  # watches may be gone: read it all again
            self.sync.forget_cache()
            self.sync.changed()
        elif kind == "state" and value == KazooState.LOST:
            self.sync.discard()
            self.sync.forget_cache()

    def turn(self, loop):
        left = self.dark_left(loop) if self.opts.once and self.finished is None else None
        if left is not None and left <= 0:
            self.log.error("ZooKeeper stopped answering for longer than %gs; nothing was written"
                           % self.dark_limit(loop))
            self.exit_code = exits.UNAVAILABLE
            return 0.0
        due = _sooner(left, self.work(loop))
        self.alerts.poll()
        if self.finished is not None:  # --once: done when what it started has ended
            if self.on_change is None and not self.alerts.tasks:
                self.exit_code = self.finished
            return 0.0 if self.exit_code is not None else 0.05
        return due

    def dark_limit(self, loop):
        return max(loop.session.timeout, loop.settings.connect_timeout or 0.0)

    def dark_left(self, loop):
        """--once: seconds left before giving up on a ZooKeeper that does not answer (None: it does).
        Transient errors are retried by the loop and never reach on_error: this is the bound."""
        if loop.connected and loop.session.may_talk():
            self.dark_since = None
            return None
        now = time.monotonic()
        if self.dark_since is None:
            self.dark_since = now
        return self.dark_since + self.dark_limit(loop) - now

    def work(self, loop):
        due = self.poll_on_change()
        if self.finished is not None or self.on_change is not None:  # one --on-change at a time
            return due
        if self.sync.check is not None:
            return _sooner(due, self.checked())
        if not loop.connected:
            return due
        wait = self.sync.due_in
        if wait is None or wait > 0:
            return _sooner(due, wait)
        try:
            after = self.look(loop)
        except LocalFileError as exc:
            return self.cannot_install(exc)
        # nothing more to wait for: the next recheck of missing znodes (ConfigSync.due_in), if any
        return _sooner(due, self.sync.due_in if after is None else after)

    def look(self, loop):
        sync = self.sync
        outcome = sync.look(loop)
        if outcome == outcomes.MOVING:
            return 0.1
        if outcome == outcomes.SAME:
            self.done(exits.OK)
        elif outcome == outcomes.MISSING:
            self.done(exits.TEMPFAIL, "a znode a template reads does not exist; nothing was written")
        elif outcome == outcomes.BROKEN:
            version, message = sync.render_failure
            self.alert("render-failed", version, message)
            self.done(exits.DATAERR)
        elif outcome == outcomes.CHANGED:
            if sync.stage() == "checking":
                return sync.check_timeout
            self.install()
        return None

    def checked(self):
        left, ok = self.sync.poll_check()
        if ok is None:
            return left
        if ok:
            try:
                self.install()
            except LocalFileError as exc:
                return self.cannot_install(exc)
        else:
            version = self.sync.staged_version
            self.alert("rejected", version, "the check command rejected configuration version %s" % version)
            self.done(exits.DATAERR)
        return None

    def install(self):
        written = [path for path, _tmp in self.sync.staged.staged_paths()]
        version = self.sync.install()
        self.alerts.version = version
        if self.opts.on_change_cmd:
            env = command_env(ZKHERD_CONFIG_VERSION=str(version), ZKHERD_CHANGED_FILES="\n".join(written))
            self.on_change = Task("on-change command", self.opts.on_change_cmd, env, ON_CHANGE_TIMEOUT, self.log)
        self.done(exits.OK)

    def poll_on_change(self):
        if self.on_change is None:
            return None
        left = self.on_change.poll()
        if self.on_change.done is None:
            return min(0.05, left) if left is not None else 0.05
        if self.on_change.done != 0:
            self.log.warning("the on-change command failed", code=self.on_change.done)
            self.alert("on-change-failed", self.sync.version,
                       "the on-change command failed with code %d" % self.on_change.done)
        self.on_change = None
        return None

    def cannot_install(self, exc):
        self.log.error(exc.message)
        self.sync.discard()
        self.alert("install-failed", self.sync.newest_read, "the files cannot be installed here: " + exc.message)
        self.sync.dirty = True  # long-running: try again in a second
        self.done(exits.CANTCREAT)
        return 1.0

    def alert(self, kind, version, message):
        if (kind, version) not in self.alerted:
            self.alerted.add((kind, version))
            self.alerts.fire(kind, message)

    def done(self, code, why=None):
        """--once: this is the outcome (once --on-change and the alerts ended)."""
        if self.opts.once and self.finished is None:
            if why:
                self.log.error(why)
            self.finished = code

    def on_error(self, loop, error):
        if self.opts.once:  # a cron job: say it and end, never wait for ZooKeeper to come back
            self.log.error(error.message)
            self.exit_code = exits.for_error(error)
            return None
        return super().on_error(loop, error)

    def close(self, loop):
        if self.sync is not None:
            self.sync.discard()
        if self.on_change is not None and self.on_change.done is None:
            self.on_change.kill()


def _sooner(first, second):
    return second if first is None else first if second is None else min(first, second)


def run(opts, settings, log):
    return Loop(settings, log).run(Renderer(opts, log))
