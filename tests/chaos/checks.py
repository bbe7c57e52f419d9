"""Invariant checkers of a chaos run: threads that look every ~50 ms while the run goes on, and
a final look at the end. Each counts its checks and reports violations to the Report.

| checker   | invariant                                                                          |
|-----------|------------------------------------------------------------------------------------|
| slots     | never more children than slots under a lock (the kernel's flock: overlaps.log)     |
| mirror    | a mirrored file is always one whole version, never a rejected (bad) one; a child  |
|           | never starts with a partial file or a rejected version                             |
| export    | export.json is always whole JSON; a live member is in it once the session timeout  |
|           | + slack has passed since it came up, a dead one is not once the session timeout +  |
|           | dead_slack has passed since it went down                                           |
| cron      | each tick of the job ran at most once, and only after a claim of that tick; no     |
|           | cron run hangs                                                                     |
| orphans   | the processes of a SIGKILLed runner are gone 2 s later; none is left at the end    |
| znodes    | (at the end) no ephemeral znode left, nothing but the documented persistent ones  |
| liveness  | (at the end, faults healed) every lock's slots are taken again, the newest config  |
|           | runs everywhere, the export equals every member's file, a cron tick runs again     |
| stop      | (at the end) every service stops on SIGTERM within 20 s                            |
| logs      | (at the end) no zkherd log holds a Python traceback                                |
| exits     | (harness.supervise) no service exits by itself but with 69 (ZooKeeper unreachable |
|           | at start): a runner exiting with its child's code means it took a stop for an exit;|
|           | no cron firing exits with a code but its own (0, 69, 75, 76)                        |
| tree      | a --mirror-dir folder is one whole good set (a set being installed: 2 s at most), |
|           | never a rejected one; the newest good push is installed within 10 s; each child    |
|           | started with a whole good set                                                      |
| presence  | a registration or pool member deleted by hand (or lost) is back within T + slack   |
| outage    | after a whole-ensemble outage, every service is back within OUTAGE_RECOVERY s     |
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter
from pathlib import Path

from kazoo.exceptions import NoNodeError

from tests.chaos.cluster import (
    ELECTION,
    FARM,
    MIRRORED,
    REGISTRY,
    Cluster,
    config_content,
    digest,
    parse_config,
    parse_tree_file,
    processes_marked,
    tree_digest,
    tree_files,
)
from tests.chaos.schedule import LOCK_GROUPS, OUTAGE_RECOVERY


class Report:
    """What the checkers found: checks made and violations, by invariant; thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.checks: Counter = Counter()
        self.violations: list[dict] = []
        self.stats: dict = {}
        self.started = time.monotonic()

    def checked(self, invariant: str, count: int = 1) -> None:
        with self.lock:
            self.checks[invariant] += count

    def violation(self, invariant: str, message: str) -> None:
        with self.lock:
            self.violations.append({"invariant": invariant, "at": round(time.monotonic() - self.started, 2),
                                    "message": message})

    def violated(self, invariant: str) -> int:
        with self.lock:
            return sum(1 for v in self.violations if v["invariant"] == invariant)


class Checker(threading.Thread):
    invariant = "?"
    interval = 0.05

    def __init__(self, cluster: Cluster, report: Report):
        super().__init__(name="check-" + self.invariant, daemon=True)
        self.cluster = cluster
        self.report = report
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.wait(self.interval):
                self.look()
        except BaseException as exc:  # reported as a harness error, never lost
            self.error = exc
            self.report.violation("harness", "checker %s crashed: %r" % (self.invariant, exc))

    def look(self) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Stop the thread and take one last look."""
        self.halt.set()
        self.join(10)
        if self.error is None:
            self.look()


class Tail:
    """New complete lines of a growing file."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self.offset += end
        return data[:end].decode(errors="replace").splitlines()


def held_flocks(keys: dict[str, Path]) -> Counter:
    """How many of the given files (key: "maj:min:inode" as /proc/locks writes it) are flocked."""
    held: Counter = Counter()
    with open("/proc/locks") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] in keys:
                held[fields[5]] += 1
    return held


def lock_key(path: Path) -> str:
    st = os.stat(path)
    return "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)


class SlotChecker(Checker):
    invariant = "slots"

    def __init__(self, cluster: Cluster, report: Report):
        super().__init__(cluster, report)
        self.groups = {group: (len(cluster.slot_files(group)), Tail(cluster.work / group / "overlaps.log"))
                       for group in cluster.slot_groups()}
        self.keys: dict[str, str] = {}  # lock key -> group
        self.samples: dict[str, Counter] = {group: Counter() for group in self.groups}

    def holders(self) -> dict[str, int]:
        if len(self.keys) < sum(slots for slots, _tail in self.groups.values()):
            for group in self.groups:
                for path in self.cluster.slot_files(group):
                    if path.exists():
                        self.keys[lock_key(path)] = group
        held = held_flocks(self.keys)
        counts = dict.fromkeys(self.groups, 0)
        for key, number in held.items():
            counts[self.keys[key]] += number
        return counts

    def look(self) -> None:
        counts = self.holders()
        for group, (slots, tail) in self.groups.items():
            # figures only: /proc/locks is not one snapshot when it is longer than a page (a
            # handover between two reads can show both holders); the referee is flock itself
            self.samples[group][min(counts[group], slots)] += 1
            for line in tail.lines():
                self.report.violation(self.invariant, "%s (%d slot%s): a child found every slot taken: %s"
                                      % (group, slots, "s" if slots > 1 else "", line))
        self.report.checked(self.invariant)


class MirrorChecker(Checker):
    invariant = "mirror"

    def __init__(self, cluster: Cluster, report: Report, max_version: int):
        super().__init__(cluster, report)
        self.digests = {}
        for version in range(max_version + 1):
            for good in (True, False):
                self.digests[digest(config_content(version, good))] = (version, good)
        self.starts = [Tail(cluster.digest_log(group)) for group in MIRRORED]
        self.seen: dict[str, set] = {}  # file -> versions seen installed
        self.started: Counter = Counter()  # versions children started with
        self.last_bad: dict[str, bytes] = {}

    def look(self) -> None:
        for service in self.mirroring():
            path = self.cluster.roll_conf(service.name)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            found = parse_config(data)
            self.report.checked(self.invariant)
            if found is None:
                if self.last_bad.get(service.name) != data:
                    self.last_bad[service.name] = data
                    self.report.violation(self.invariant, "%s: the mirrored file is not one whole version (%d bytes, "
                                          "starts %r)" % (service.name, len(data), data[:40]))
                continue
            version, good = found
            if not good and version not in self.seen.get(service.name + ":bad", set()):
                self.seen.setdefault(service.name + ":bad", set()).add(version)
                self.report.violation(self.invariant, "%s: rejected version %d was installed" % (service.name, version))
            self.seen.setdefault(service.name, set()).add(version)
        for line in [line for tail in self.starts for line in tail.lines()]:
            self.report.checked(self.invariant)
            name, _sep, sha = line.partition(" ")
            found = self.digests.get(sha.strip())
            if found is None:
                self.report.violation(self.invariant, "%s: child started with a file that is no whole version "
                                      "(digest %s)" % (name, sha))
            elif not found[1]:
                self.report.violation(self.invariant, "%s: child started with rejected version %d" % (name, found[0]))
            else:
                self.started[found[0]] += 1

    def mirroring(self) -> list:
        return [service for group in MIRRORED for service in self.cluster.group(group)]

    def newest_start(self, group: str) -> int | None:
        """The version the newest child of *group* started with (None: none started yet)."""
        path = self.cluster.digest_log(group)
        lines = path.read_text().splitlines() if path.exists() else []
        found = self.digests.get(lines[-1].partition(" ")[2].strip()) if lines else None
        return found[0] if found else None

    def last_started(self) -> dict[str, int]:
        """The version each roll or lockroll service's newest child started with."""
        newest: dict[str, int] = {}
        for path in (self.cluster.digest_log(group) for group in MIRRORED):
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                name, _sep, sha = line.partition(" ")
                found = self.digests.get(sha.strip())
                if found:
                    newest[name] = found[0]
        return newest


class ZkHealth(threading.Thread):
    """Watches the ensemble: `quiet_since` is the last moment it was not serving with a leader or
    a ZooKeeper fault was applied; deadlines of the export checker count from then at the earliest."""

    def __init__(self, cluster: Cluster):
        super().__init__(name="zk-health", daemon=True)
        self.cluster = cluster
        self.halt = threading.Event()
        self.quiet_since = time.monotonic()
        self.healthy = False
        self.unhealthy: list[list] = []  # [from, to or None] (monotonic): spans without a leader

    def healthy_throughout(self, start: float, end: float) -> bool:
        return not any(low <= end and (high is None or high >= start) for low, high in list(self.unhealthy))

    def touch(self) -> None:
        self.quiet_since = time.monotonic()

    def run(self) -> None:
        while not self.halt.wait(0.25):
            modes = [s.mode() if s.running else None for s in self.cluster.ensemble.servers]
            self.healthy = modes.count("leader") == 1 and modes.count("follower") >= 1
            open_span = self.unhealthy and self.unhealthy[-1][1] is None
            if not self.healthy:
                self.touch()
                if not open_span:
                    self.unhealthy.append([time.monotonic() - 0.25, None])
            elif open_span:
                self.unhealthy[-1][1] = time.monotonic()


class ExportChecker(Checker):
    invariant = "export"

    def __init__(self, cluster: Cluster, report: Report, zk_health: ZkHealth, slack: float, dead_slack: float):
        super().__init__(cluster, report)
        self.zk_health = zk_health
        # a live member needs its process started and connected: its session timeout + slack; a
        # dead one is gone once the server expires its session (at most a session timeout after
        # the server last heard from it) and the export rewrote the file: timeout + dead_slack
        self.limits = {name: {"up": cluster.services[name].timeout + slack,
                              "down": cluster.services[name].timeout + dead_slack} for name in cluster.members}
        self.flagged: set = set()  # (member, since) already reported
        self.writes = 0
        self.last_text = None
        self.asserted: Counter = Counter()  # "up": must be in it, "down": must not

    def read(self) -> dict | None:
        try:
            text = self.cluster.export_path.read_text()
        except FileNotFoundError:
            return None
        if text != self.last_text:
            self.writes += 1
            self.last_text = text
        try:
            doc = json.loads(text)
        except ValueError:
            self.report.violation(self.invariant, "export.json is not whole JSON: %r" % text[:60])
            return None
        if not isinstance(doc, dict):
            self.report.violation(self.invariant, "export.json is not a JSON object")
            return None
        return doc

    def look(self) -> None:
        doc = self.read()
        if doc is None:
            return
        now = time.monotonic()
        with self.cluster.lock:
            states = [(name, self.cluster.services[name].state, self.cluster.services[name].since)
                      for name in self.cluster.members]
        self.report.checked(self.invariant)  # whole JSON
        for name, state, since in states:
            if state == "unknown" or now - max(since, self.zk_health.quiet_since) <= self.limits[name][state]:
                continue
            self.report.checked(self.invariant)
            self.asserted[state] += 1
            present = name in doc
            if state == "up" and not present and (name, since) not in self.flagged:
                self.flagged.add((name, since))
                self.report.violation(self.invariant, "%s has been up for %.1f s but is not in the export"
                                      % (name, now - since))
            if state == "down" and present and (name, since) not in self.flagged:
                self.flagged.add((name, since))
                self.report.violation(self.invariant, "%s has been down (killed or cut off) for %.1f s but is still in "
                                      "the export" % (name, now - since))


class CronChecker(Checker):
    invariant = "cron"
    interval = 1.0
    CLAIM = re.compile(r"this host leads the pool; running the job .*tick=(\d+)")

    def __init__(self, cluster: Cluster, report: Report):
        super().__init__(cluster, report)
        self.reported: set = set()
        self.ticks: dict[int, list[str]] = {}  # tick -> fire ids that ran the job in it
        self.claimed: dict[str, int | None] = {}
        self.evaluated: set = set()  # runs counted as checked

    def claims(self, fire_ids) -> dict[str, int | None]:
        """The tick each finished firing claimed (None: it claimed none); logs are read once."""
        for fire_id in fire_ids:
            if fire_id not in self.claimed:
                path = self.cluster.work / "cron" / "fires" / ("%s.log" % fire_id)
                try:
                    match = self.CLAIM.search(path.read_text(errors="replace"))
                except FileNotFoundError:
                    match = None
                # the log names the tick by its start (Unix seconds); this checker counts ticks by number
                self.claimed[fire_id] = int(int(match.group(1)) // self.cluster.tick) if match else None
        return self.claimed

    def look(self) -> None:
        done = [fire_id for _host, fire_id, _code, _took in list(self.cluster.finished_fires)]
        claims = self.claims(done)
        runs = []
        path = self.cluster.work / "cron" / "runs.log"
        if path.exists():
            runs = [line.split() for line in path.read_text().splitlines() if len(line.split()) == 2]
        finished = set(done)
        ticks: dict[int, list[str]] = {}
        for host, fire_id in runs:
            if fire_id not in finished:
                continue
            if fire_id not in self.evaluated:
                self.evaluated.add(fire_id)
                self.report.checked(self.invariant)
            tick = claims.get(fire_id)
            if tick is None:
                if ("unclaimed", fire_id) not in self.reported:
                    self.reported.add(("unclaimed", fire_id))
                    self.report.violation(self.invariant, "%s ran the job (firing %s) without claiming a tick"
                                          % (host, fire_id))
                continue
            ticks.setdefault(tick, []).append(fire_id)
        for tick, fire_ids in ticks.items():
            if ("tick", tick) not in self.evaluated:
                self.evaluated.add(("tick", tick))
                self.report.checked(self.invariant)
            if len(fire_ids) > 1 and ("twice", tick) not in self.reported:
                self.reported.add(("twice", tick))
                self.report.violation(self.invariant, "tick %d ran %d times: %s" % (tick, len(fire_ids),
                                                                                    ", ".join(fire_ids)))
        self.ticks = ticks

    def exactly_once(self, chaos, start: float, end: float) -> None:
        """Each tick of the chaos phase that had a live member all along ran (at most once is
        checked as it goes). With --catch-up S: a tick qualifies when some host was up (running,
        links fine) and the ensemble had a leader for its first S seconds (a new leader runs it
        then). Without: when every host was up from a session timeout before the tick to its end,
        the ensemble had a leader and no member was deleted by hand (the leader of the tick's
        start is then the one of its end). Ticks with a live host all along that never ran are
        counted either way (stats)."""
        tick, catch_up = chaos.opts.tick, chaos.catch_up
        offset = time.time() - time.monotonic()
        hosts = self.cluster.group("host")
        health = chaos.zk_health
        unelected = [e["at"] + chaos.t0 for e in chaos.applied if e["kind"] == "unelect" and e["applied"]]
        stats = Counter()
        first, last = int((start + offset) // tick) + 1, int((end + offset) // tick) - 2
        for number in range(first, last + 1):
            low = number * tick - offset
            high = low + tick
            ran = len(self.ticks.get(number, []))
            live = any(h.up_throughout(low, high) for h in hosts) and health.healthy_throughout(low, high)
            if catch_up:
                due = any(h.up_throughout(low, low + catch_up) for h in hosts) and \
                    health.healthy_throughout(low, low + catch_up)
            else:
                timeout = max(h.timeout for h in hosts)
                due = all(h.up_throughout(low - timeout - 1, high) for h in hosts) and \
                    health.healthy_throughout(low - timeout - 1, high) and \
                    not any(low - timeout - 1 <= at <= high for at in unelected)
            stats["ticks"] += 1
            stats["ran"] += bool(ran)
            stats["due"] += due
            stats["live_member_all_along_not_run"] += live and not ran
            if due:
                self.report.checked(self.invariant)
                if not ran:
                    self.report.violation(self.invariant, "tick %d never ran, though %s" % (number, (
                        "a host was up and the ensemble served for its first %g s (--catch-up)" % catch_up
                        if catch_up else "every host was up and the ensemble served all along")))
        stats["catch_up"] = catch_up or 0
        self.report.stats["cron_exactly_once"] = dict(stats)


class OrphanChecker(Checker):
    """After a SIGKILL of a runner, every process of that incarnation must be gone soon."""

    invariant = "orphans"
    interval = 0.25
    GRACE = 2.0

    def __init__(self, cluster: Cluster, report: Report):
        super().__init__(cluster, report)
        self.pending: list[tuple[float, str]] = []
        self.pending_lock = threading.Lock()

    def expect_gone(self, mark: str) -> None:
        with self.pending_lock:
            self.pending.append((time.monotonic() + self.GRACE, mark))

    def look(self) -> None:
        now = time.monotonic()
        with self.pending_lock:
            due = [mark for when, mark in self.pending if when <= now]
            self.pending = [(when, mark) for when, mark in self.pending if when > now]
        if not due:
            return
        alive = processes_marked(self.cluster.run_id)
        for mark in due:
            self.report.checked(self.invariant)
            left = [(pid, cmd) for pid, found, cmd in alive if found == mark]
            if left:
                self.report.violation(self.invariant, "%s was SIGKILLed %.0f s ago but its processes live on: %s"
                                      % (mark.split(":", 1)[1], self.GRACE, left))

    def finish(self) -> None:
        self.halt.set()
        self.join(10)
        with self.pending_lock:
            self.pending = [(0.0, mark) for _when, mark in self.pending]
        self.look()


class TreeChecker(Checker):
    """The --mirror-dir folders: every file is always one whole file of a version; the folder is
    one whole good set (the files of one version, in its shape) except for at most MIXED seconds
    while a set is installed; a rejected version is never installed; once the newest push is good
    and STALE seconds old, it is installed on every tree host that was up meanwhile; each child
    started with a whole good set."""

    invariant = "tree"
    MIXED = 2.0
    STALE = 10.0

    def __init__(self, cluster: Cluster, report: Report, zk_health, pushes: list, versions: dict):
        super().__init__(cluster, report)
        self.zk_health = zk_health
        self.pushes = pushes  # (version, good, written at), appended by the worker
        self.versions = versions  # version -> (good, shape): every version the run may push
        self.digests = {tree_digest(tree_files(v, good, shape)): (v, good) for v, (good, shape) in versions.items()}
        self.starts = Tail(cluster.digest_log("tree"))
        self.installed: dict[str, int] = {}
        self.started: dict[str, int] = {}
        self.mixed_since: dict[str, float] = {}
        self.reported: set = set()
        self.installs: Counter = Counter()

    def once(self, key, message: str) -> None:
        if key not in self.reported:
            self.reported.add(key)
            self.report.violation(self.invariant, message)

    @staticmethod
    def snapshot(folder: Path) -> dict[str, bytes] | None:
        files = {}
        try:
            for top, dirs, names in os.walk(folder):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in names:
                    if not name.startswith("."):
                        path = Path(top) / name
                        files[str(path.relative_to(folder))] = path.read_bytes()
        except OSError:  # changed under the walk: look again
            return None
        return files

    def look(self) -> None:
        now = time.monotonic()
        for service in self.cluster.group("tree"):
            files = self.snapshot(self.cluster.tree_dir(service.name))
            if files is None or not files:
                continue
            self.report.checked(self.invariant)
            parsed = {}
            for rel, data in files.items():
                found = parse_tree_file(rel, data)
                if found is None:
                    self.once((service.name, rel, digest(data)), "%s: %s is no whole file of any version (%d bytes, "
                              "starts %r)" % (service.name, rel, len(data), data[:30]))
                    return
                if found[1] == "bad":
                    self.once((service.name, "bad", found[0]), "%s: %s of rejected version %d was installed"
                              % (service.name, rel, found[0]))
                parsed[rel] = found[0]
            versions = set(parsed.values())
            version = versions.pop() if len(versions) == 1 else None
            if version is not None and version in self.versions and set(files) == set(self.versions[version][1]):
                self.mixed_since.pop(service.name, None)
                if self.installed.get(service.name) != version:
                    self.installs[service.name] += 1
                self.installed[service.name] = version
            else:
                since = self.mixed_since.setdefault(service.name, now)
                if now - since > self.MIXED:
                    self.once((service.name, "mixed", since), "%s: the folder has not been one whole set for %.1f s: %s"
                              % (service.name, now - since, dict(sorted(parsed.items()))))
            self.stale(service, now)
        for line in self.starts.lines():
            self.report.checked(self.invariant)
            name, _sep, sha = line.partition(" ")
            found = self.digests.get(sha.strip())
            if found is None:
                self.report.violation(self.invariant, "%s: child started with a folder that is no whole version "
                                      "(digest %s)" % (name, sha))
            elif not found[1]:
                self.report.violation(self.invariant, "%s: child started with rejected version %d" % (name, found[0]))
            else:
                self.started[name] = found[0]

    def stale(self, service, now: float) -> None:
        if not self.pushes:
            return
        version, good, written = self.pushes[-1]
        due = max(written, self.zk_health.quiet_since)
        if not good or now - due < self.STALE or self.installed.get(service.name) == version:
            return
        if service.up_throughout(written, now):
            errors = [line for line in service.proc.log().splitlines() if "ERROR" in line or "WARNING" in line] \
                if service.proc else []
            self.once((service.name, "stale", version), "%s: good version %d was pushed %.0f s ago and is still not "
                      "installed (installed: %s); its log's last error: %s"
                      % (service.name, version, now - written, self.installed.get(service.name),
                         errors[-1][:300] if errors else "none"))

    def runs(self, version: int, shape) -> bool:
        return all(self.installed.get(s.name) == version and self.started.get(s.name) == version
                   for s in self.cluster.group("tree"))


class PresenceChecker(Checker):
    """Registrations (the roll group's, data: the service's name) and pool members (data: the
    host's id) are there while their service is up: a node deleted by hand, or lost with a session,
    is back within the service's session timeout + slack."""

    invariant = "presence"
    interval = 0.5

    def __init__(self, cluster: Cluster, report: Report, zk_health, client, slack: float):
        super().__init__(cluster, report)
        self.zk_health = zk_health
        self.client = client
        self.slack = slack
        self.last_seen: dict[str, float] = {}
        self.present: set = set()
        self.present_at = 0.0  # when `present` was read (monotonic)
        self.reported: set = set()
        self.watched = [(s, REGISTRY) for s in cluster.group("roll")] + [(s, ELECTION) for s in cluster.group("host")]
        # a registration is there while the child runs: the runner's last state, from its log
        self.logs = {s.name: Tail(s.log_path) for s in cluster.group("roll")}
        self.running_since: dict[str, float | None] = {}

    STATE = re.compile(r"INFO state .* -> (\S+(?: \S+)*?) why=")

    def child_running_since(self, name: str, now: float) -> float | None:
        """When the service's runner last went to `running` (None: it is in another state)."""
        for line in self.logs[name].lines():
            match = self.STATE.search(line)
            if not match or match.group(1) == "checking new files":  # the child runs on meanwhile
                continue
            if match.group(1) != "running":
                self.running_since[name] = None
            elif self.running_since.get(name) is None:
                self.running_since[name] = now
        return self.running_since.get(name)

    def nodes(self, folder: str) -> set[str]:
        found = set()
        names = [n for n in self.client.get_children_async(folder).get(timeout=2)
                 if folder != ELECTION or n.startswith("member-")]
        for reply in [self.client.get_async("%s/%s" % (folder, name)) for name in names]:
            try:
                found.add(reply.get(timeout=2)[0].decode(errors="replace"))
            except NoNodeError:  # gone meanwhile
                pass
        return found

    def look(self) -> None:
        try:
            present = self.nodes(REGISTRY) | self.nodes(ELECTION)
        except Exception:  # the ensemble is failing over: the clock starts again then anyway
            return
        now = time.monotonic()
        self.present, self.present_at = present, now
        for service, _folder in self.watched:
            if service.name in present:
                self.last_seen[service.name] = now
                continue
            with self.cluster.lock:
                state, since = service.state, service.since
            due = max(since, self.last_seen.get(service.name, 0.0), self.zk_health.quiet_since)
            if service.name in self.logs:  # registered while its child runs (--register-when started)
                running = self.child_running_since(service.name, now)
                due = max(due, running if running is not None else now)
            if state != "up" or now - due <= service.timeout + self.slack:
                continue
            self.report.checked(self.invariant)
            if (service.name, due) not in self.reported:
                self.reported.add((service.name, due))
                self.report.violation(self.invariant, "%s has been up for %.1f s but its %s node is missing"
                                      % (service.name, now - due,
                                         "pool member" if service.group == "host" else "registration"))
        self.report.checked(self.invariant)

    def all_present(self, since: float = 0.0) -> bool:
        """Every running service's node (a registration: with its child running) was there at a
        look made after *since*."""
        return self.present_at > since and all(
            service.name in self.present for service, _folder in self.watched
            if service.running and (service.name not in self.logs or self.running_since.get(service.name)))


class OutageWatch:
    """After a whole-ensemble outage: the time from the ensemble having a leader again to every
    lock slot held, every member in the export, every registration and pool member there; each
    within schedule.OUTAGE_RECOVERY seconds."""

    def __init__(self, chaos, slack: float):
        self.chaos = chaos
        self.thread: threading.Thread | None = None
        self.outages: list[dict] = []

    def expect(self, length: float) -> None:
        self.thread = threading.Thread(target=self.watch, args=(length,), name="outage-watch", daemon=True)
        self.thread.start()

    def conditions(self, quorum: float) -> dict:
        """What must hold again; each looks afresh (nothing read before the quorum counts)."""
        chaos = self.chaos

        def exported():
            members = [s.name for s in chaos.cluster.group("member") if s.running]
            try:
                doc = json.loads(chaos.cluster.export_path.read_text())
                joined = set(chaos.client.get_children_async(FARM).get(timeout=1))
            except Exception:  # not written yet, or ZooKeeper not serving our session yet
                return False
            return all(name in doc and name in joined for name in members)

        return {"lock slots held": lambda: chaos.slots.holders() == chaos.all_slots(),
                "members joined and in the export": exported,
                "registrations and pool members there": lambda: chaos.presence.all_present(since=quorum)}

    def watch(self, length: float) -> None:
        chaos, report = self.chaos, self.chaos.report
        started = time.monotonic()
        while not chaos.zk_health.healthy and time.monotonic() - started < 120:
            time.sleep(0.1)
        quorum = time.monotonic()
        entry = {"length": round(length, 1), "quorum_after_start": round(quorum - started, 1), "recovered": {}}
        left = self.conditions(quorum)
        slots_bound = self.slot_bound(started - length)  # *started*: the restart; the outage began *length* before
        while left and time.monotonic() - quorum < slots_bound + 10:
            for name, condition in list(left.items()):
                if condition():
                    entry["recovered"][name] = round(time.monotonic() - quorum, 1)
                    del left[name]
            time.sleep(0.2)
        bounds = {"lock slots held": slots_bound}
        for name in list(entry["recovered"]) + list(left):
            report.checked("outage")
            took, bound = entry["recovered"].get(name), bounds.get(name, OUTAGE_RECOVERY)
            if took is None or took > bound:
                when = "after %.1f s" % took if took is not None else "never"
                report.violation("outage", "after a %.0f s outage of the whole ensemble: %s %s (bound %.0f s)"
                                 % (length, name, when, bound))
        self.outages.append(entry)
        chaos.say("outage of %.0f s: quorum %.1f s after the restart, recovered %s" % (
            length, entry["quorum_after_start"], entry["recovered"]))

    def slot_bound(self, outage_start: float) -> float:
        """OUTAGE_RECOVERY; but a lock service killed less than its session timeout before the
        outage began (*outage_start*) left a session behind that the restored ensemble keeps for a
        whole fresh timeout (the leader restores every session with one): its place in the line goes
        T after quorum, so the slots come back within T + 5 s then."""
        chaos, bound = self.chaos, OUTAGE_RECOVERY
        for event in chaos.applied:
            service = chaos.cluster.services.get(event.get("detail") or event.get("target") or "")
            if event["kind"] == "kill" and event["applied"] and service is not None \
                    and service.group in LOCK_GROUPS and outage_start - (event["at"] + chaos.t0) < service.timeout:
                bound = max(bound, service.timeout + 5.0)
        return bound

    def pending(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def finish_pending(self) -> None:
        if self.thread is not None:
            self.thread.join(OUTAGE_RECOVERY + 140)

    def finish(self) -> None:
        self.finish_pending()
        self.chaos.report.stats["outages"] = self.outages
