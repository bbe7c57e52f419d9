"""What a long-running command tells about itself: Prometheus metrics (--metrics-listen,
--metrics-file: prom.py) and the runner state file that `zkherd status --local` reads (--state-dir:
statefile.py). The parts of a command record through the one Telemetry of the process (get()); it
costs nothing but a dict when neither is asked for (prometheus_client is imported only then)."""

from zkherd.telemetry.hub import Telemetry, get, setup

__all__ = ["Telemetry", "get", "setup"]
