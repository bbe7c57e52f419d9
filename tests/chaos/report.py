"""The report of a chaos run: a JSON document and its text rendering. Figures that come from the
services' logs (fencing stops, session expiries, installs...) are counted here, after the run."""

from __future__ import annotations

import re
import time
from collections import Counter

INVARIANTS = ("slots", "mirror", "tree", "export", "presence", "cron", "outage", "orphans", "znodes", "liveness",
              "stop", "logs", "exits", "harness")


def _count(paths, pattern: str) -> int:
    regex = re.compile(pattern)
    total = 0
    for path in paths:
        try:
            total += len(regex.findall(path.read_text(errors="replace")))
        except FileNotFoundError:
            pass
    return total


def _lines(path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def build(chaos) -> dict:
    cluster, opts, rep = chaos.cluster, chaos.opts, chaos.report
    logs = sorted((cluster.work / "logs").glob("*.log"))
    by_group = {group: [cluster.work / "logs" / ("%s.log" % s.name) for s in cluster.group(group)]
                for group in ("mutex", "pair", "daemon", "slow", "roll", "lockroll", "tree", "member", "host")}
    locks = [path for group in cluster.slot_groups() for path in by_group[group]]
    fire_codes = Counter(code for _host, _fire, code, _took in cluster.finished_fires)
    holders = {}
    for group, samples in chaos.slots.samples.items():
        total = sum(samples.values()) or 1
        slots = len(cluster.slot_files(group))
        holders[group] = {"slots": slots, "polls": total,
                          "share_of_polls_with_all_slots_held": round(samples.get(slots, 0) / total, 3),
                          "share_with_none_held": round(samples.get(0, 0) / total, 3)}
    stats = dict(rep.stats)
    stats.update({
        "lock_holders": holders,
        "child_starts": {group: len(_lines(cluster.work / group / "starts.log")) for group in cluster.slot_groups()},
        # one line per fence (the reason itself is repeated by the stop and the requeue)
        "fencing_stops": _count(locks, "stopping the child before the session can expire"),
        "fencing_stops_by_group": {group: _count(by_group[group], "stopping the child before the session can expire")
                                   for group in cluster.slot_groups()},
        # the daemon's wrapper dies of TERM, its setsid grandchild ignores it: every end of a daemon
        # child (a stop, or the wrapper's exit) leaves the grandchild to containment's SIGKILL
        "daemon_child_exits": _count(by_group["daemon"], "child exited"),
        "daemon_kill_after_stop_timeout": _count(by_group["daemon"], "child did not stop in time, sending SIGKILL"),
        "containment_modes": {mode: _count(locks, "child containment mode=%s" % mode)
                              for mode in ("cgroup", "subreaper")},
        "tree_alive_after_sigkill": _count(logs, "still alive after SIGKILL"),
        "session_expiries_seen": _count(logs, "session expired"),
        "config": {
            "pushed_good": sum(1 for _v, good, ok in chaos.pushes if good and ok),
            "pushed_bad": sum(1 for _v, good, ok in chaos.pushes if not good and ok),
            "push_failed": sum(1 for _v, _good, ok in chaos.pushes if not ok),
            "installs": _count(by_group["roll"], "configuration installed"),
            "rejections": _count(by_group["roll"], "check command rejected the new configuration"),
            "rolling_lock_acquired": _count(by_group["roll"], "rolling lock acquired"),
            "child_starts": len(_lines(cluster.digest_log("roll"))),
            "lockroll_installs": _count(by_group["lockroll"], "configuration installed"),
            "lockroll_rejections": _count(by_group["lockroll"], "check command rejected the new configuration"),
            "lockroll_child_starts": len(_lines(cluster.digest_log("lockroll"))),
        },
        "tree": {
            "pushed_good": sum(1 for _v, good, _at in chaos.tree_pushes if good),
            "pushed_bad": sum(1 for _v, good, _at in chaos.tree_pushes if not good),
            "installs_seen": dict(chaos.tree.installs),
            "installs_logged": _count(by_group["tree"], "configuration installed"),
            "rejections": _count(by_group["tree"], "check command rejected the new configuration"),
            "child_starts": len(_lines(cluster.digest_log("tree"))),
            "errors_logged": _count(by_group["tree"], "ERROR"),
        },
        "farm": {
            "edits_file": sum(1 for _m, via, _c in chaos.edits if via == "file"),
            "edits_set_ok": sum(1 for _m, via, code in chaos.edits if via == "set" and code == 0),
            "edits_set_failed": sum(1 for _m, via, code in chaos.edits if via == "set" and code != 0),
            "joins": _count(by_group["member"], "joined the farm"),
            "export_writes": _count([cluster.work / "logs" / "export.log"], "export written"),
            "export_versions_seen": chaos.export.writes,
            "export_checks_live_member_present": chaos.export.asserted["up"],
            "export_checks_dead_member_absent": chaos.export.asserted["down"],
        },
        "cron": {
            "firings": len(cluster.finished_fires),
            "exit_codes": {str(k): v for k, v in sorted(fire_codes.items())},
            "ticks_run": len(chaos.cron.ticks),
            "runs": sum(len(v) for v in chaos.cron.ticks.values()),
            "jobs_stopped_on_lost_leadership": _count(sorted((cluster.work / "cron" / "fires").glob("*.log")),
                                                      "job stopped: leadership was lost"),
            "leader_changes": _count(by_group["host"], "this member leads the pool"),
        },
        "service_incarnations": sum(s.incarnation for s in cluster.services.values()),
    })
    checks = {name: {"checks": rep.checks.get(name, 0), "violations": rep.violated(name)}
              for name in INVARIANTS if rep.checks.get(name, 0) or rep.violated(name)}
    return {
        "seed": opts.seed,
        "duration": opts.duration,
        "session_timeout": opts.session_timeout,
        "slack": opts.slack,
        "dead_slack": opts.dead_slack,
        "cron_tick": opts.tick,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_seconds": round(time.monotonic() - rep.started, 1),
        "reproduce": opts.command(),
        "faults_planned": len(chaos.plan),
        "faults": {"applied": dict(sorted(chaos.counts["applied"].items())),
                   "skipped": dict(sorted(chaos.counts["skipped"].items()))},
        "checks": checks,
        "checks_total": sum(c["checks"] for c in checks.values()),
        "violations": list(rep.violations),
        "stats": stats,
        "fault_log": chaos.applied,
        "work": str(cluster.work),
    }


def text(result: dict) -> str:
    out = []
    verdict = "PASS" if not result["violations"] else "FAIL"
    out.append("zkherd chaos run: %s - seed %d, %gs of faults, %d violation(s)"
               % (verdict, result["seed"], result["duration"], len(result["violations"])))
    out.append("reproduce: %s" % result["reproduce"])
    out.append("session timeout %gs, export slack %gs (live) / %gs (dead), cron tick %gs; wall time %.0fs"
               % (result["session_timeout"], result["slack"], result["dead_slack"], result["cron_tick"],
                  result["wall_seconds"]))
    applied, skipped = result["faults"]["applied"], result["faults"]["skipped"]
    out.append("")
    out.append("faults injected (%d planned):" % result["faults_planned"])
    for kind in sorted(set(applied) | set(skipped)):
        more = ", %d skipped" % skipped[kind] if kind in skipped else ""
        out.append("  %-10s %4d applied%s" % (kind, applied.get(kind, 0), more))
    out.append("")
    out.append("invariants (checks made, violations):")
    for name, figures in result["checks"].items():
        out.append("  %-9s %8d %4d" % (name, figures["checks"], figures["violations"]))
    out.append("  %-9s %8d %4d" % ("total", result["checks_total"], len(result["violations"])))
    stats = result["stats"]
    out.append("")
    out.append("what happened:")
    for group, figures in stats["lock_holders"].items():
        out.append("  lock %-5s (%d slot%s): %d child starts; all slots held in %.0f%% of polls, none in %.0f%%"
                   % (group, figures["slots"], "s" if figures["slots"] > 1 else "", stats["child_starts"][group],
                      100 * figures["share_of_polls_with_all_slots_held"], 100 * figures["share_with_none_held"]))
    out.append("  fencing stops %d %s, session expiries seen in logs %d, service incarnations %d"
               % (stats["fencing_stops"], stats["fencing_stops_by_group"], stats["session_expiries_seen"],
                  stats["service_incarnations"]))
    out.append("  daemon: %d child exits, each leaving a setsid grandchild that ignores TERM to containment "
               "(%d SIGKILLs at the stop timeout); trees alive 5 s after SIGKILL %d; runner incarnations by "
               "containment %s" % (stats["daemon_child_exits"], stats["daemon_kill_after_stop_timeout"],
                                   stats["tree_alive_after_sigkill"], stats["containment_modes"]))
    cfg = stats["config"]
    out.append("  config: %d good + %d bad pushed (%d failed); roll: %d installs, %d rejections, %d child starts; "
               "lockroll: %d installs, %d rejections, %d child starts"
               % (cfg["pushed_good"], cfg["pushed_bad"], cfg["push_failed"], cfg["installs"], cfg["rejections"],
                  cfg["child_starts"], cfg["lockroll_installs"], cfg["lockroll_rejections"],
                  cfg["lockroll_child_starts"]))
    farm = stats["farm"]
    out.append("  farm: %d file edits, %d farm set (+%d refused), %d joins, %d export writes; export checked "
               "%d times with a live member due in it, %d with a dead one due out"
               % (farm["edits_file"], farm["edits_set_ok"], farm["edits_set_failed"], farm["joins"],
                  farm["export_writes"], farm["export_checks_live_member_present"],
                  farm["export_checks_dead_member_absent"]))
    cron = stats["cron"]
    out.append("  cron: %d firings, %d ticks run, exit codes %s, %d jobs stopped on lost leadership, "
               "%d leadership changes" % (cron["firings"], cron["ticks_run"], cron["exit_codes"],
                                          cron["jobs_stopped_on_lost_leadership"], cron["leader_changes"]))
    tree = stats["tree"]
    out.append("  tree: %d good + %d bad pushed; installs seen %s (%d logged), %d rejections, %d child starts, "
               "%d ERROR lines" % (tree["pushed_good"], tree["pushed_bad"], tree["installs_seen"],
                                   tree["installs_logged"], tree["rejections"], tree["child_starts"],
                                   tree["errors_logged"]))
    if stats.get("cron_exactly_once"):
        out.append("  cron exactly once: %s" % stats["cron_exactly_once"])
    for outage in stats.get("outages", []):
        out.append("  outage of %.0f s: quorum %.1f s after the restart; recovered (s after quorum) %s"
                   % (outage["length"], outage["quorum_after_start"], outage["recovered"]))
    if stats.get("lost_replies_fired") is not None:
        out.append("  lost replies fired: %d" % stats["lost_replies_fired"])
    if stats.get("unexpected_exits"):
        out.append("  services that exited by themselves: %s" % stats["unexpected_exits"])
    if result["violations"]:
        out.append("")
        out.append("violations:")
        for violation in result["violations"][:50]:
            out.append("  [%s %7.2fs] %s" % (violation["invariant"], violation["at"], violation["message"]))
        if len(result["violations"]) > 50:
            out.append("  ... and %d more (see the JSON report)" % (len(result["violations"]) - 50))
    if result.get("work"):
        out.append("")
        out.append("logs and files: %s" % result["work"])
    return "\n".join(out) + "\n"
