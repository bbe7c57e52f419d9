"""Text from other processes (a state file, a znode's name or data) made safe for a terminal: no
control characters (escape sequences, forged lines) and a bounded length."""

from __future__ import annotations


def safe(value, limit=200):
    text = "-" if value is None else str(value)
    return "".join(c if c.isprintable() else "?" for c in text)[:limit]


def short(name, limit=100):
    """*name* cut at *limit* characters, "..." saying so (a key from ZooKeeper may be 1 MB long)."""
    return name if len(name) <= limit else name[:limit] + "..."
