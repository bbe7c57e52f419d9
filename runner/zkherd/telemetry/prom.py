"""The Prometheus side of telemetry: the metrics (one registry of our own, no process collectors),
the HTTP listener (--metrics-listen) and the textfile (--metrics-file). Kept to prometheus_client
0.16's API (Debian bookworm). Every metric is documented in docs/operations.md "Metrics"."""

from __future__ import annotations

import errno
import fcntl
import math
import os
import stat
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from zkherd.configfiles.owners import open_trusted_folder
from zkherd.run.alerts import REJECTIONS
from zkherd.telemetry.listener import serve

NS = "zkherd"
# Counters a command that lives for one tick (cron) carries over from its last metrics file.
CARRIED = ("cron_runs", "session_expirations", "session_renewals", "lock_acquisitions", "lock_releases", "fences",
           "child_starts", "config_installs", "config_rejections", "health_checks", "farm_export_writes")
# The label values the code gives (carry-over takes no other: an earlier file is untrusted input).
KNOWN_LABELS = dict(cron_runs=("ok", "lost", "failed", "skipped", "busy", "unavailable", "denied", "error"),
                    child_starts=("start", "restart"), config_rejections=REJECTIONS,
                    health_checks=("pass", "fail"), farm_export_writes=("written", "failed"))
CARRY_MAX = 1 << 20  # bytes read of an earlier metrics file
LOCK_WAIT = 2.0  # seconds a write waits for another writer of the same file


class Metrics:
    def __init__(self):
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.lock = threading.Lock()  # see render()
        self.carry = False  # cron: merge the file's counters before each write
        self._seen = {}  # (metric, labels) -> the file's value already counted in

        def gauge(name, doc, labels=()):
            return Gauge(name, doc, labels, namespace=NS, registry=r)

        def counter(name, doc, labels=()):
            return Counter(name, doc, labels, namespace=NS, registry=r)

        self.build_info = gauge("build_info", "zkherd's version and command (always 1)", ("version", "command"))
        self.session_connected = gauge("session_connected", "1 while connected to ZooKeeper")
        self.session_heard_age = gauge("session_last_heard_age_seconds",
                                       "seconds since the ZooKeeper leader last heard of our session (lower bound)")
        self.session_expirations = counter("session_expirations", "ZooKeeper sessions that expired")
        self.session_renewals = counter("session_renewals", "ZooKeeper sessions closed and made anew because "
                                        "the proof that the leader knows them lapsed")
        self.lock_held = gauge("lock_held", "1 while this runner holds its lock")
        self.lock_queued = gauge("lock_queued", "1 while this runner waits in the lock's line")
        self.lock_place = gauge("lock_queue_place", "place in the lock's line: 1 = next, 0 = holding or not queued")
        self.lock_acquisitions = counter("lock_acquisitions", "times the lock was acquired")
        self.lock_releases = counter("lock_releases", "times the lock was given up (released or lost)")
        self.fences = counter("fences", "times the fence stopped the child for want of contact with ZooKeeper")
        self.child_starts = counter("child_starts", "child starts, by reason (start, restart)", ("reason",))
        self.child_running = gauge("child_running", "1 while the child runs")
        self.state = gauge("run_state", "the state of `zkherd run`: 1 for the current one", ("state",))
        self.config_version = gauge("config_version", "the installed configuration version (newest mzxid)")
        self.config_installs = counter("config_installs", "configuration versions installed")
        self.config_rejections = counter("config_rejections", "configuration versions kept out, by reason",
                                         ("reason",))
        self.health_status = gauge("health_healthy", "1 while the child is healthy, 0 when not (or not yet known)")
        self.health_checks = counter("health_checks", "health checks run, by result (pass, fail)", ("result",))
        self.health_duration = Histogram("health_check_duration_seconds", "how long the health checks took",
                                         namespace=NS, registry=r,
                                         buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30))
        self.farm_export_writes = counter("farm_export_writes", "farm export writes, by result (written, failed)",
                                          ("result",))
        self.farm_join_watch = gauge("farm_join_watch", "how `farm join` follows local edits: 1 for the way "
                                     "used (inotify, poll)", ("mode",))
        self.cron_runs = counter("cron_runs", "cron invocations, by outcome", ("outcome",))

    def carry_over(self, path, warn):
        """Take the counters of CARRIED from the metrics file at *path* now (write_file() with
        carry=True does it again, under the file's lock, right before every write)."""
        try:
            dir_fd = open_trusted_folder(os.path.dirname(os.path.abspath(path)))
        except OSError as exc:
            warn("ignoring the earlier metrics file %s: %s" % (path, exc.strerror or "cannot read it"))
            return
        try:
            self._merge(dir_fd, os.path.basename(path), path, warn)
        finally:
            os.close(dir_fd)

    def _merge(self, dir_fd, name, path, warn):
        """Add to CARRIED what other runs of the job added to the file since we last saw it (cron:
        runs of a job overlap; each adds its own counts, none takes back another's). The file is
        untrusted: read in the trusted folder, not through a link, no FIFO or device, at most
        CARRY_MAX bytes, only finite non-negative values of known labels; its content is never
        quoted in a warning. A file that cannot be used is ignored (with a warning): a metrics file
        must never stop the job."""
        try:
            families = list(text_string_to_metric_families(_read_regular(name, CARRY_MAX, dir_fd)))
        except FileNotFoundError:
            return
        except OSError as exc:
            warn("ignoring the earlier metrics file %s: %s" % (path, exc.strerror or "cannot read it"))
            return
        except Exception:  # noqa: BLE001  # the parser's errors quote the line: never into a log
            warn("ignoring the earlier metrics file %s: not in the Prometheus text format" % path)
            return
        for family in families:
            short = family.name[len(NS) + 1:] if family.name.startswith(NS + "_") else None
            if short not in CARRIED or family.type != "counter":
                continue
            metric = getattr(self, short)
            for sample in family.samples:
                value = sample.value
                if not sample.name.endswith("_total") or not isinstance(value, float) or not math.isfinite(value) \
                        or value < 0:
                    continue
                labels = tuple(sample.labels.get(name, "") for name in metric._labelnames)  # noqa: SLF001
                if any(label not in KNOWN_LABELS.get(short, ()) for label in labels):
                    continue
                key = (short, labels)
                if value > self._seen.get(key, 0.0):  # a file behind us (removed, an older copy) takes nothing
                    (metric.labels(*labels) if labels else metric).inc(value - self._seen.get(key, 0.0))
                    self._seen[key] = value

    def _note_written(self):
        """What the file holds now of CARRIED: the next merge takes only what others add to it."""
        for short in CARRIED:
            for family in getattr(self, short).collect():
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        labels = tuple(sample.labels.get(name, "") for name in getattr(self, short)._labelnames)  # noqa: SLF001
                        self._seen[(short, labels)] = sample.value

    def render(self):
        """The registry in the text format; under self.lock, so that a change of several values
        made under it too (run_state) is seen whole."""
        with self.lock:
            return generate_latest(self.registry)

    def listen(self, spec):
        """Serve the registry over HTTP in a daemon thread; ValueError for a bad or busy address."""
        addr, _colon, port = spec.rpartition(":")
        addr = addr.strip("[]") or "0.0.0.0"  # noqa: S104  # the operator's choice; default all, as exporters do
        if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ValueError("--metrics-listen %r: give [ADDR:]PORT, PORT a number 1-65535" % spec)
        serve(addr, int(port), self.render, spec)

    def write_file(self, path, warn=None):
        """node_exporter's textfile format, atomically, in a folder owners.untrusted() accepts
        (OSError otherwise): under a flock of .NAME.lock (0600: no other user can hold it), the
        file's counters merged in first when self.carry (cron), then .NAME.tmp (a stale one, left
        by a killed writer, removed first; never opened through a link; 0644 on its descriptor)
        written, synced and renamed over *path*."""
        folder, name = os.path.split(os.path.abspath(path))
        dir_fd = open_trusted_folder(folder)
        tmp = ".%s.tmp" % name  # node_exporter reads only *.prom
        try:
            lock_fd = _lock(dir_fd, ".%s.lock" % name)
            try:
                if self.carry:
                    self._merge(dir_fd, name, path, warn or (lambda _msg: None))
                data = self.render()
                _write_new(dir_fd, tmp, data)
                os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                if self.carry:
                    self._note_written()
            except OSError:
                _unlink(dir_fd, tmp)
                raise
            finally:
                os.close(lock_fd)
        finally:
            os.close(dir_fd)


def _lock(dir_fd, name):
    """A descriptor of the lock file *name* in dir_fd, flocked; OSError (EAGAIN) after LOCK_WAIT."""
    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "the lock file %s is not a regular file" % name)
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OSError(errno.EAGAIN, "another process holds %s" % name) from None
                time.sleep(0.02)
    except BaseException:
        os.close(fd)
        raise


def _write_new(dir_fd, name, data):
    _unlink(dir_fd, name)  # a killed writer's: we hold the lock, no live writer uses it
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        os.fchmod(fd, 0o644)  # not the umask's say: node_exporter runs as another user
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(dir_fd, name):
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def _read_regular(name, limit, dir_fd):
    """The text of the regular file *name* in dir_fd (not through a link, never blocking on a
    FIFO), up to *limit* bytes; OSError otherwise."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "it is a symbolic link") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if st.st_size > limit:
            raise OSError(errno.EFBIG, "bigger than %d bytes" % limit)
        data = handle.read(limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise OSError(errno.EINVAL, "not UTF-8 text") from None
