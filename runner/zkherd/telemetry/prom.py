"""The Prometheus side of telemetry: the metrics (one registry of our own, no process collectors),
the HTTP listener (--metrics-listen) and the textfile (--metrics-file). Kept to prometheus_client
0.16's API (Debian bookworm). Every metric is documented in docs/operations.md "Metrics"."""

from __future__ import annotations

import errno
import math
import os
import secrets
import stat

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from zkherd.configfiles.owners import open_trusted_folder
from zkherd.run.alerts import REJECTIONS
from zkherd.telemetry.listener import serve

NS = "zkherd"
# Counters a command that lives for one tick (cron) carries over from its last metrics file.
CARRIED = ("cron_runs", "session_expirations", "lock_acquisitions", "lock_releases", "fences",
           "child_starts", "config_installs", "config_rejections", "health_checks", "farm_export_writes")
# The label values the code gives (carry-over takes no other: an earlier file is untrusted input).
KNOWN_LABELS = dict(cron_runs=("ok", "lost", "failed", "skipped", "busy", "unavailable", "denied", "error"),
                    child_starts=("start", "restart"), config_rejections=REJECTIONS,
                    health_checks=("pass", "fail"), farm_export_writes=("written", "failed"))
CARRY_MAX = 1 << 20  # bytes read of an earlier metrics file


class Metrics:
    def __init__(self):
        self.registry = r = CollectorRegistry(auto_describe=True)

        def gauge(name, doc, labels=()):
            return Gauge(name, doc, labels, namespace=NS, registry=r)

        def counter(name, doc, labels=()):
            return Counter(name, doc, labels, namespace=NS, registry=r)

        self.build_info = gauge("build_info", "zkherd's version and command (always 1)", ("version", "command"))
        self.session_connected = gauge("session_connected", "1 while connected to ZooKeeper")
        self.session_heard_age = gauge("session_last_heard_age_seconds",
                                       "seconds since the ZooKeeper leader last heard of our session (lower bound)")
        self.session_expirations = counter("session_expirations", "ZooKeeper sessions that expired")
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
        self.cron_runs = counter("cron_runs", "cron invocations, by outcome", ("outcome",))

    def carry_over(self, path, warn):
        """The counters of CARRIED from an earlier metrics file at *path* (cron only). The file is
        untrusted: not followed through a link, no FIFO or device, at most CARRY_MAX bytes, only
        finite non-negative values of known labels; its content is never quoted in a warning. A
        file that cannot be used is ignored (with a warning): a metrics file must never stop the job."""
        try:
            text = _read_regular(path, CARRY_MAX)
            families = list(text_string_to_metric_families(text))
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
                (metric.labels(*labels) if labels else metric).inc(value)

    def listen(self, spec):
        """Serve the registry over HTTP in a daemon thread; ValueError for a bad or busy address."""
        addr, _colon, port = spec.rpartition(":")
        addr = addr.strip("[]") or "0.0.0.0"  # noqa: S104  # the operator's choice; default all, as exporters do
        if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ValueError("--metrics-listen %r: give [ADDR:]PORT, PORT a number 1-65535" % spec)
        serve(addr, int(port), lambda: generate_latest(self.registry), spec)

    def write_file(self, path):
        """node_exporter's textfile format, atomically: a new temporary file of a random name (never
        opened through a link, 0644 on its descriptor), synced, renamed over *path*; only in a
        folder owners.untrusted() accepts (OSError otherwise)."""
        data = generate_latest(self.registry)
        folder, name = os.path.split(os.path.abspath(path))
        dir_fd = open_trusted_folder(folder)
        tmp = ".%s.%s.tmp" % (name, secrets.token_hex(8))  # node_exporter reads only *.prom
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                         dir_fd=dir_fd)
            try:
                os.fchmod(fd, 0o644)  # not the umask's say: node_exporter runs as another user
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
            raise
        finally:
            os.close(dir_fd)


def _read_regular(path, limit):
    """The text of the regular file *path* (not through a link, never blocking on a FIFO), up to
    *limit* bytes; OSError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
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
