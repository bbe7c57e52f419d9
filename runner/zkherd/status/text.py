"""`zkherd status` as text: one block per path, times as UTC and age. Every line goes through
safe.text (no control characters or escapes from the nodes reach the terminal; bounded); long
lists show their first safe.LISTED entries and "... and N more"."""

from __future__ import annotations

import time

from zkherd.status import safe
from zkherd.status.drained import lines as drained_lines


def when(stamp, now):
    stamp = safe.stamp(stamp)
    if stamp is None:
        return "-"
    age = max(0, int(now - stamp))
    if age < 120:
        ago = "%ds" % age
    elif age < 7200:
        ago = "%dm" % (age // 60)
    elif age < 172800:
        ago = "%dh" % (age // 3600)
    else:
        ago = "%dd" % (age // 86400)
    return "%s (%s ago)" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)), ago)


def _who(entry):
    return "%s host=%s pid=%s" % (entry["id"], entry["host"] or "-", entry["pid"] if entry["pid"] is not None else "-")


def _applies(entry):
    """What a rolling-lock holder says it does (nothing for a plain lock's holder)."""
    if entry["version"] is None and entry["phase"] is None:
        return ""
    return ", version %s %s" % (entry["version"] if entry["version"] is not None else "-", entry["phase"] or "")


def lock_lines(status, now):
    lines = []
    for entry in status["holders"]:
        lines.append("  holder   %s token=%s session=%s since %s, queued %s%s" % (
            _who(entry), entry["fencing_token"], entry["session"], when(entry["since"], now),
            when(entry["queued_since"], now), _applies(entry)))
    if not status["holders"]:
        lines.append("  holder   none")
    for entry in status["stopping"]:
        lines.append("  stopping %s token=%s (its lock- node is gone: its child is being stopped)" % (
            _who(entry), entry["fencing_token"]))
    waiting, more = safe.listed(status["waiting"])
    label = "waiting " if status["slots"] is not None else "in line "  # unknown slots: it may hold
    for number, entry in enumerate(waiting, 2 if status["slots"] is None else 1):
        lines.append("  %s %d. %s session=%s queued %s" % (
            label, number, _who(entry), entry["session"], when(entry["queued_since"], now)))
    lines += _more(more)
    if status["foreign_nodes"]:
        shown = status["foreign_nodes"][:safe.LISTED]
        rest = status.get("foreign_count", len(status["foreign_nodes"])) - len(shown)
        lines.append("  foreign  %s%s (persistent nodes no runner holds: left out of the line)"
                     % (", ".join(shown), " ... and %d more" % rest if rest > 0 else ""))
    if status["kind"] == "rolling-lock":
        failed = status["failed"]
        if failed is None:
            lines.append("  failed   none")
        elif failed["refused"]:
            lines.append("  failed   record refused by the runners: %s" % failed["refused"])
        else:
            lines.append("  failed   version %s on %s (%s) at %s: %s" % (
                failed["version"], failed["id"], failed["host"], when(failed["time"], now), failed["reason"]))
        if status["paused"]:
            lines.append("  PAUSED   by %s: holding the rolling lock until a newer version is pushed%s"
                         % (", ".join(status["paused_by"]), "" if status["paused_exact"] else " (inferred)"))
        else:
            lines.append("  rollout  %s" % ("restarting: " + ", ".join(status["restarting"])
                                            if status["restarting"] else "idle"))
    return lines


def _more(count):
    return ["  ... and %d more" % count] if count else []


def pool_lines(status, now):
    members, more = safe.listed(status["members"])
    lines = ["  %s %s session=%s since %s" % ("leader" if m["leader"] else "member", m["id"], m["session"],
                                              when(m["since"], now)) for m in members] + _more(more)
    if not status["members"]:
        lines.append("  no members")
    jobs, more = safe.listed(sorted(status["cron"].items()))
    for job, ticks in jobs:
        for tick in ticks:
            lines.append("  cron     %s tick %s %s by %s" % (job, when(tick["start"], now), tick["state"], tick["id"]))
    return lines + _more(more)


def farm_lines(status, now):
    members, more = safe.listed(status["members"])
    return ["  member   %s joined %s, changed %s" % (m["name"], when(m["joined"], now), when(m["changed"], now))
            for m in members] + _more(more) or ["  no members"]


def registration_lines(status, now):
    live, more = safe.listed(status["registrations"])
    return ["  live     %s session=%s since %s: %s" % (r["node"], r["session"], when(r["since"], now), r["data"])
            for r in live] + _more(more) or ["  no live registrations"]


SHOW = {"lock": lock_lines, "rolling-lock": lock_lines, "pool": pool_lines, "farm": farm_lines,
        "registration": registration_lines}


def render(status, now=None):
    now = time.time() if now is None else now
    head = "%s: %s" % (status["path"], status["kind"])
    if status["kind"] in ("lock", "rolling-lock"):
        head += (", slots unknown (runners older than zkherd 16 in line: the first holds, those after it "
                 "may hold too)" if status["slots"] is None
                 else ", %d slot%s" % (status["slots"], "" if status["slots"] == 1 else "s"))
    if status["kind"] == "unknown":
        head += " (%d children, %d ephemeral: not nodes zkherd writes)" % (status["children"], status["ephemeral"])
    show = SHOW.get(status["kind"])
    lines = [head] + (show(status, now) if show else []) + drained_lines(status.get("drained", []))
    return "\n".join(safe.text(line, safe.LINE) for line in lines) + "\n"
