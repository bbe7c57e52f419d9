"""Untrusted values read from ZooKeeper, made safe for `zkherd status`: any client allowed to write
under a path can put anything in its nodes. Numbers are used only when finite and in a sane range,
strings are bounded, and text output shows no control characters or terminal escapes."""

from __future__ import annotations

import math

from zkherd.core.safetext import safe as _printable

SHORT = 200  # an id, a host, a kind, a node's data as shown
LONG = 1000  # a failed record's reason
LINE = 2000  # any line printed
LATEST = 32503680000  # 3000-01-01: a later time stamp is no time zkherd wrote (gmtime fails near 1e11..)
LISTED = 50  # entries of one list shown in text (foreign nodes, waiters, members...)


def text(value, limit=SHORT):
    """*value* as printable text (control characters and escapes become "?") of at most *limit*
    characters, "..." marking a cut; "-" for None."""
    raw = "-" if value is None else str(value)
    cut = raw[:limit]
    shown = "".join(_printable(cut[start:start + 200]) for start in range(0, len(cut), 200))
    return shown + ("..." if len(raw) > limit else "")


def string(value, limit=SHORT):
    """A JSON field that must be a string: *value* bounded, a number as its text, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)) and not _finite(value):
        return None
    if not isinstance(value, (str, int, float)):
        return None
    value = str(value)
    return value if len(value) <= limit else value[:limit] + "..."


def integer(value, low=0, high=2 ** 63 - 1):
    """An int in [low, high] (no bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def stamp(value):
    """Seconds since the epoch, finite and between 1970 and 3000, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
        return None
    return value if 0 <= value <= LATEST else None


def _finite(value):
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too big for a float
        return False


def listed(entries, limit=LISTED):
    """(the first *limit* entries, how many more)."""
    return entries[:limit], max(0, len(entries) - limit)
