"""The Prometheus side of telemetry: the metrics (one registry of our own, no process collectors),
the HTTP listener (--metrics-listen) and the textfile (--metrics-file). Kept to prometheus_client
0.16's API (Debian bookworm). Every metric is documented in docs/operations.md "Metrics"."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

NS = "zkherd"
# Counters a command that lives for one tick (cron) carries over from its last metrics file.
CARRIED = ("cron_runs", "session_expirations", "lock_acquisitions", "lock_releases", "fences",
           "child_starts", "config_installs", "config_rejections", "health_checks", "farm_export_writes")


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
        """The counters of CARRIED from an earlier metrics file at *path*; a file that cannot be read
        is ignored (with a warning): a metrics file must never stop the job."""
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read(1 << 20)
            families = list(text_string_to_metric_families(text))
        except FileNotFoundError:
            return
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            warn("ignoring the earlier metrics file %s: %s" % (path, exc))
            return
        for family in families:
            short = family.name[len(NS) + 1:] if family.name.startswith(NS + "_") else None
            if short not in CARRIED or family.type != "counter":
                continue
            metric = getattr(self, short)
            for sample in family.samples:
                if not sample.name.endswith("_total") or not isinstance(sample.value, float) or sample.value < 0:
                    continue
                labels = tuple(sample.labels.get(name, "") for name in metric._labelnames)  # noqa: SLF001
                (metric.labels(*labels) if labels else metric).inc(sample.value)

    def listen(self, spec):
        """Serve the registry over HTTP in a daemon thread; ValueError for a bad or busy address."""
        addr, _colon, port = spec.rpartition(":")
        addr = addr.strip("[]") or "0.0.0.0"  # noqa: S104  # the operator's choice; default all, as exporters do
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("--metrics-listen %r: give [ADDR:]PORT, PORT 1-65535" % spec)
        try:
            start_http_server(int(port), addr=addr, registry=self.registry)
        except OSError as exc:
            raise ValueError("--metrics-listen %s: cannot listen: %s" % (spec, exc.strerror or exc)) from None

    def write_file(self, path):
        """node_exporter's textfile format, atomically (a temporary file and a rename)."""
        write_to_textfile(path, self.registry)
        os.chmod(path, 0o644)
