"""`zkherd status` as text: one block per path, times as UTC and age."""

from __future__ import annotations

import time

from zkherd.status.drained import lines as drained_lines


def when(stamp, now):
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
    for number, entry in enumerate(status["waiting"], 1):
        lines.append("  waiting  %d. %s session=%s queued %s" % (
            number, _who(entry), entry["session"], when(entry["queued_since"], now)))
    if status["foreign_nodes"]:
        lines.append("  foreign  %s (persistent nodes no runner holds: left out of the line)"
                     % ", ".join(status["foreign_nodes"]))
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


def pool_lines(status, now):
    lines = ["  %s %s session=%s since %s" % ("leader" if m["leader"] else "member", m["id"], m["session"],
                                              when(m["since"], now)) for m in status["members"]]
    if not status["members"]:
        lines.append("  no members")
    for job, ticks in sorted(status["cron"].items()):
        for tick in ticks:
            lines.append("  cron     %s tick %s %s by %s" % (job, when(tick["start"], now), tick["state"], tick["id"]))
    return lines


def farm_lines(status, now):
    return ["  member   %s joined %s, changed %s" % (m["name"], when(m["joined"], now), when(m["changed"], now))
            for m in status["members"]] or ["  no members"]


def registration_lines(status, now):
    return ["  live     %s session=%s since %s: %s" % (r["node"], r["session"], when(r["since"], now), r["data"])
            for r in status["registrations"]] or ["  no live registrations"]


SHOW = {"lock": lock_lines, "rolling-lock": lock_lines, "pool": pool_lines, "farm": farm_lines,
        "registration": registration_lines}


def render(status, now=None):
    now = time.time() if now is None else now
    head = "%s: %s" % (status["path"], status["kind"])
    if status["kind"] in ("lock", "rolling-lock"):
        head += ", %d slot%s" % (status["slots"], "" if status["slots"] == 1 else "s")
    if status["kind"] == "unknown":
        head += " (%d children, %d ephemeral: not nodes zkherd writes)" % (status["children"], status["ephemeral"])
    show = SHOW.get(status["kind"])
    return "\n".join([head] + (show(status, now) if show else []) + drained_lines(status.get("drained", []))) + "\n"
