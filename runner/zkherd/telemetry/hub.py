"""The one Telemetry of a process: the parts record what happens here (each thing in one place:
the loop its session events, run/states.py the state, the runner the lock...); it keeps the metrics
(prom.py, only when asked for) and the state file's report (statefile.py) and writes them out from
the loop's thread (tick(), close())."""

from __future__ import annotations

import os
import time

from zkherd import __version__
from zkherd.core.settings import ConfigError
from zkherd.telemetry.statefile import REFRESH, StateFile, default_dir

FILE_GAP = 1.0  # the metrics file is written at most once a second


class Telemetry:
    def __init__(self, command="", log=None, argv=None):
        self.log = log
        self.metrics = self.metrics_file = self.statefile = None
        self.heard_age = None  # a callable: seconds since the leader last heard of us (set by the loop)
        self.report = dict(command=command, argv=argv or {}, pid=os.getpid(), started=round(time.time(), 3),
                           state=None, session=dict(state="connecting", session_id=None, last_heard_age=None),
                           lock=None, config_version=None, health=None, child=None, fenced=False, drained=[],
                           watch=None)
        self._dirty = self._file_dirty = True
        self._last_state = self._last_file = 0.0
        self._lock_held = self._file_failed = False

    # -- recording -------------------------------------------------------------------------------

    def _set(self, key, value):
        """Change a field of the report: both files are due when it changed."""
        if self.report.get(key) != value:
            self.report[key] = value
            self._dirty = self._file_dirty = True

    def session(self, state, session_id=None, expired=False, renewed=False):
        """state: connected, suspended, lost (a session that expired, or that we closed to renew
        it: *renewed*), closed."""
        sid = "0x%x" % session_id if session_id else self.report["session"]["session_id"]
        self._set("session", dict(self.report["session"], state=state, session_id=sid))
        if state == "connected":
            self._set("fenced", False)
        if self.metrics:
            self.metrics.session_connected.set(1 if state == "connected" else 0)
            if expired:
                self.metrics.session_expirations.inc()
            if renewed:
                self.metrics.session_renewals.inc()

    def lock(self, path, held, place, token):
        self._set("lock", dict(path=path, held=held, queued_place=place, token=token))
        if self.metrics:
            self.metrics.lock_held.set(1 if held else 0)
            self.metrics.lock_queued.set(1 if place else 0)
            self.metrics.lock_place.set(place or 0)
            if held != self._lock_held:
                (self.metrics.lock_acquisitions if held else self.metrics.lock_releases).inc()
        self._lock_held = held

    def state(self, name, names):
        self._set("state", name)
        if self.metrics:
            with self.metrics.lock:  # a scrape sees one state at 1, never two
                for each in names:
                    self.metrics.state.labels(each).set(1 if each == name else 0)

    def drained(self, kinds):
        """What operators drained (`zkherd drain`, --standby-only): "lock", "register"."""
        self._set("drained", sorted(kinds))

    def fence(self):
        """The fence stopped the child: "fenced" until contact with ZooKeeper is back. Counted once
        per such episode (its stop, its kill of a child that ignores SIGTERM, the session's loss all
        say so)."""
        if self.metrics and not self.report["fenced"]:
            self.metrics.fences.inc()
        self._set("fenced", True)
        self._file_dirty = True

    def child(self, pid, reason=None):
        """A child started (*reason*: start, restart) or, pid None, is gone."""
        self._set("child", dict(pid=pid, since=round(time.time(), 3)) if pid else None)
        if self.metrics:
            self.metrics.child_running.set(1 if pid else 0)
            if pid:
                self.metrics.child_starts.labels(reason).inc()

    def config(self, version=None, installed=False, rejected=None):
        if version is not None:
            self._set("config_version", version)
        if self.metrics:
            if version is not None:
                self.metrics.config_version.set(version)
            if installed:
                self.metrics.config_installs.inc()
            if rejected:
                self.metrics.config_rejections.labels(rejected).inc()
        self._file_dirty = True

    def health(self, status=None, passed=None, seconds=None):
        if status is not None:
            self._set("health", status)
        if self.metrics:
            if status is not None:
                self.metrics.health_status.set(1 if status == "healthy" else 0)
            if passed is not None:
                self.metrics.health_checks.labels("pass" if passed else "fail").inc()
                self.metrics.health_duration.observe(seconds)
        self._file_dirty = True

    def export_write(self, result):
        """written, or failed (rejected, a render error, fewer members than asked for)."""
        if self.metrics:
            self.metrics.farm_export_writes.labels(result).inc()
        self._file_dirty = True

    def watch(self, mode):
        """How `farm join` follows local edits: inotify or poll."""
        self._set("watch", mode)
        if self.metrics:
            for each in ("inotify", "poll"):
                self.metrics.farm_join_watch.labels(each).set(1 if each == mode else 0)
        self._file_dirty = True

    def cron_run(self, outcome):
        if self.metrics:
            self.metrics.cron_runs.labels(outcome).inc()
        self._file_dirty = True

    # -- output ----------------------------------------------------------------------------------

    def tick(self):
        """Write what is due; returns seconds until the next write may be due (None: never)."""
        now = time.monotonic()
        due = []
        if self.statefile is not None:
            if self._dirty or now - self._last_state >= REFRESH:
                self._write_state(now)
            due.append(self._last_state + REFRESH - now)
        if self.metrics_file is not None:
            if (self._file_dirty and now - self._last_file >= FILE_GAP) or now - self._last_file >= REFRESH:
                self._write_metrics(now)
            due.append((self._last_file + FILE_GAP - now) if self._file_dirty else (self._last_file + REFRESH - now))
        return max(0.05, min(due)) if due else None

    def _write_state(self, now):
        self._dirty, self._last_state = False, now
        age = self.heard_age() if self.heard_age is not None else None
        self.report["session"]["last_heard_age"] = None if age is None else round(age, 3)
        self.report["updated"] = round(time.time(), 3)
        self.statefile.write(self.report)

    def _write_metrics(self, now):
        self._file_dirty, self._last_file = False, now
        try:
            self.metrics.write_file(self.metrics_file, self.log.warning)
            self._file_failed = False
        except OSError as exc:  # said once until it works again: a metrics file must never stop the command
            if not self._file_failed:
                self.log.warning("cannot write the metrics file", path=self.metrics_file,
                                 error=exc.strerror or str(exc))
            self._file_failed = True

    def close(self):
        """On the way out (a clean exit): the metrics file once more, the state file removed."""
        if self.metrics_file is not None:
            self._write_metrics(time.monotonic())
        if self.statefile is not None:
            self.statefile.remove()


_current = Telemetry()


def get():
    return _current


def setup(values, log):
    """The process's Telemetry from the command's options; ConfigError (exit 64) for a bad or busy
    --metrics-listen address."""
    global _current
    command = " ".join(filter(None, (values.get("cmd"), values.get("farm_cmd"))))
    argv = {key: values[key] for key in ("lock", "election", "id", "register", "farm", "dest", "path", "config")
            if isinstance(values.get(key), (str, int)) and values.get(key) != ""}
    tm = Telemetry(command, log, argv)
    if values.get("metrics_listen") or values.get("metrics_file"):
        from zkherd.telemetry.prom import Metrics

        tm.metrics = Metrics()
        tm.metrics.build_info.labels(__version__, command).set(1)
        tm.metrics.session_heard_age.set_function(lambda: tm.heard_age() if tm.heard_age else float("nan"))
        if values.get("metrics_file"):
            tm.metrics_file = values["metrics_file"]
            # cron: one tick a process; its counters go on from the file, merged at each write
            # (under the file's lock: runs of a job may overlap)
            tm.metrics.carry = command == "cron"
        if values.get("metrics_listen"):
            try:
                tm.metrics.listen(str(values["metrics_listen"]))
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
    folder = values.get("state_dir")
    folder = default_dir() if folder is None else folder
    if folder:
        tm.statefile = StateFile(folder, log)
    _current = tm
    return tm
