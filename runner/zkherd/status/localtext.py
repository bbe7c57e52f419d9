"""The text of `zkherd status --local`: a few lines per runner. Values come from files that other
processes wrote: each is shown through repr-safe text (no control characters reach the terminal)."""

from __future__ import annotations

import math

from zkherd.core.safetext import safe  # the one helper, shared with status/drained.py and drain


def _get(report, key):
    value = report.get(key)
    return value if isinstance(value, dict) else {}


def _drained(kinds):
    """The state file's drained kinds (a list of strings: untrusted, shown only if well formed)."""
    if isinstance(kinds, list) and kinds and all(isinstance(kind, str) for kind in kinds):
        return "  DRAINED: " + safe(",".join(kinds))
    return ""


def render(report, now):
    argv = " ".join("--%s %s" % (safe(k), safe(v)) for k, v in sorted(_get(report, "argv").items()))
    lines = ["zkherd %s (pid %s) %s%s" % (safe(report.get("command")), safe(report.get("pid")), argv,
                                          "  STALE: " + safe(report.get("stale_why")) if report.get("stale") else "")]
    session = _get(report, "session")
    lines.append("  state: %s%s%s" % (safe(report.get("state")), "  FENCED" if report.get("fenced") is True else "",
                                      _drained(report.get("drained"))))
    lines.append("  session: %s %s, last heard %ss ago"
                 % (safe(session.get("state")), safe(session.get("session_id")), safe(session.get("last_heard_age"))))
    lock = _get(report, "lock")
    if lock:
        how = ("held, token %s" % safe(lock.get("token")) if lock.get("held") is True
               else "queued, place %s" % safe(lock.get("queued_place")) if lock.get("queued_place") else "not held")
        lines.append("  lock: %s %s" % (safe(lock.get("path")), how))
    child = _get(report, "child")
    if child:
        since = child.get("since")
        age = " for %ds" % (now - since) if isinstance(since, (int, float)) and math.isfinite(now - since) else ""
        lines.append("  child: pid %s%s" % (safe(child.get("pid")), age))
    if report.get("config_version") is not None:
        lines.append("  config version: %s" % safe(report.get("config_version")))
    if report.get("health") is not None:
        lines.append("  health: %s" % safe(report.get("health")))
    return "\n".join(lines) + "\n"
