"""The runner's one clock for deadlines that ZooKeeper's own clock races against: CLOCK_BOOTTIME.

The server expires a session by its wall of time, which keeps running while this host is suspended;
CLOCK_MONOTONIC stops during a suspend, so a fence computed on it would fire late by the whole
suspend. CLOCK_BOOTTIME counts the suspend (Linux); elsewhere monotonic is the best there is.
"""

from __future__ import annotations

import time

_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def now():
    """Seconds on the boot clock (suspend included)."""
    return time.clock_gettime(_CLOCK)
