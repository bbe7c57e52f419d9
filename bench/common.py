"""What the benchmarks share: a scratch ZooKeeper server and percentiles."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from tests.support.zkserver import ZooKeeperServer


@contextlib.contextmanager
def scratch_server():
    """(server, work directory): a local ZooKeeper in a temporary directory, gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="zkherd-bench-") as tmp:
        work = Path(tmp)
        server = ZooKeeperServer(work / "zk").start()
        try:
            yield server, work
        finally:
            server.stop()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]
