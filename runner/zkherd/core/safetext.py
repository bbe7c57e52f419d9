"""Text from other processes (a state file, a znode's name or data) made safe for a terminal: no
control characters (escape sequences, forged lines) and a bounded length."""

from __future__ import annotations


def safe(value, limit=200):
    text = "-" if value is None else str(value)
    return "".join(c if c.isprintable() else "?" for c in text)[:limit]
