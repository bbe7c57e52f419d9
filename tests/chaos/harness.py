"""One chaos run: start everything, wait until it works, apply the fault schedule for the duration
while the checkers look, heal everything, check that the services recover, stop them all, check
what is left behind, and return the report.

All processes are spawned from the calling (main) thread: their parent-death signal is tied to it
(tests/support/procs.py). A worker thread does what may block on ZooKeeper (config pushes,
`zkherd farm set`).
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from tests.chaos import checks, report
from tests.chaos.cluster import (
    CONFIG,
    ELECTION,
    FARM,
    JOB,
    LOCKROLL_ROLLING,
    REGISTRY,
    ROLLING,
    ROOT,
    SLOTS,
    TREE,
    Cluster,
    config_content,
    processes_marked,
    tree_files,
)
from tests.chaos.schedule import PROFILES, SHAPES, Fault, make_plan
from tests.support import procs, zkutil
from tests.support.runner import REPO

ROLLING_FAILED = ROLLING + "/failed"  # where a rollout records a failed version
EX_UNAVAILABLE = 69  # zkherd's exit code when ZooKeeper cannot be reached at start (docs/runner.md)
LAYOUT = PROFILES["wide"]["layout"]
CRON_EXITS = (0, 69, 75, 76)  # a firing's own exits: not leader or ran already, unreachable, busy, lost


@dataclass
class Options:
    seed: int
    duration: float
    work: Path | None = None  # default: a temporary directory, removed after a clean run
    keep: bool = False
    session_timeout: float = 3.0
    tick: float = 10.0  # cron tick length: --catch-up (tick - 2) must exceed the pool's session timeout
    slack: float = 5.0  # a live member is in the export within session timeout + slack
    dead_slack: float = 2.5  # a dead member is out of it within session timeout + dead_slack
    settle: float = 60.0  # time allowed to recover once the faults stop
    daemon_timeout: float = 10.0  # the session timeout of the daemon group
    lockroll_timeout: float = 3.0  # and of the lockroll group
    daemons: int | None = None  # services in the daemon group (default: the profile's)
    lockrolls: int | None = None  # and in the lockroll group
    profile: str = "wide"  # schedule.PROFILES: the services per group, the outages' length
    slow_timeout: float = 30.0  # the session timeout of the slow group
    catch_up: str = "auto"  # cron --catch-up: on (3 ticks), off, or auto (on if `zkherd cron --help` has it)
    verbose: bool = False

    def layout(self) -> dict[str, int]:
        layout = dict(PROFILES[self.profile]["layout"])
        if self.daemons is not None:
            layout["daemon"] = self.daemons
        if self.lockrolls is not None:
            layout["lockroll"] = self.lockrolls
        return layout

    def timeouts(self) -> dict[str, float]:
        """Each service's session timeout, by name."""
        own = {"daemon": self.daemon_timeout, "lockroll": self.lockroll_timeout, "slow": self.slow_timeout}
        return {name: own.get(name.rsplit("-", 1)[0], self.session_timeout)
                for name in Chaos.service_names(self.layout())}

    def command(self) -> str:
        """How to run this again: `make chaos`, or the module with the options that differ."""
        extra = ["--%s %g" % (name.replace("_", "-"), getattr(self, name))
                 for name in ("session_timeout", "tick", "slack", "dead_slack", "daemon_timeout",
                              "lockroll_timeout", "slow_timeout", "daemons", "lockrolls")
                 if getattr(self, name) is not None and getattr(self, name) != getattr(Options, name)]
        if self.catch_up != "auto":
            extra.append("--catch-up %s" % self.catch_up)
        if extra:
            return ".venv/bin/python -m tests.chaos --seed %d --duration %g --profile %s %s" % (
                self.seed, self.duration, self.profile, " ".join(extra))
        return "make chaos PROFILE=%s SEED=%d DURATION=%g" % (self.profile, self.seed, self.duration)

    def cron_catch_up(self) -> float | None:
        """The --catch-up of the cron firings (the tick less 2 s: zkherd cron wants it shorter than the
        tick, and longer than the pool's session timeout plus a few seconds), or None when off or not
        there yet."""
        if self.catch_up == "off":
            return None
        if self.catch_up == "auto":
            found = subprocess.run([sys.executable, "-m", "zkherd", "cron", "--help"], cwd=REPO,
                                   capture_output=True, text=True, check=False, timeout=60)
            if "--catch-up" not in found.stdout:
                return None
        return self.tick - 2


def marker_start(name: str) -> int | None:
    """The start (Unix seconds) of the tick a marker znode is named after: START or START-TICK."""
    head = name.split("-", 1)[0]
    return int(head) if head.isdigit() else None


class Worker(threading.Thread):
    """Runs blocking jobs one after the other."""

    def __init__(self):
        super().__init__(name="chaos-worker", daemon=True)
        self.jobs: queue.Queue = queue.Queue()

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            job()

    def submit(self, job) -> None:
        self.jobs.put(job)

    def finish(self) -> None:
        self.jobs.put(None)
        self.join(60)


class Chaos:
    def __init__(self, options: Options, out=None):
        self.opts = options
        self.out = out
        self.report = checks.Report()
        layout = options.layout()
        self.plan = make_plan(options.seed, options.duration, self.service_names(layout),
                              self.member_names(layout), options.timeouts(), profile=options.profile)
        self.max_version = max([f.params["version"] for f in self.plan if f.kind == "push"], default=0) + 1
        self.max_tree = max([f.params["version"] for f in self.plan if f.kind == "tree"], default=0) + 1
        self.tree_pushes: list[tuple[int, bool, float]] = []  # (version, good, written at: monotonic)
        self.frozen: set[int] = set()  # ZooKeeper servers SIGSTOPped right now
        self.applied: list[dict] = []  # what was done, when (for the report)
        self.counts = {"applied": {}, "skipped": {}}
        self.record_lock = threading.Lock()
        self.pushes: list[tuple[int, bool, bool]] = []  # (version, good, written)
        self.edits: list[tuple[str, str, int]] = []  # (member, via, exit code)
        self.actions: list = []
        self.seq = itertools.count()
        self.client: KazooClient | None = None
        self.cluster: Cluster | None = None
        self.t0 = 0.0
        self.next_fire: dict[str, int] = {}  # host -> the last tick its timer fired

    @staticmethod
    def service_names(layout: dict[str, int] | None = None) -> list[str]:
        """The services the fault schedule targets (all but the export), by group."""
        layout = layout or LAYOUT
        return ["%s-%d" % (group, i) for group, count in layout.items() for i in range(count)]

    @staticmethod
    def member_names(layout: dict[str, int] | None = None) -> list[str]:
        return ["member-%d" % i for i in range((layout or LAYOUT)["member"])]

    def say(self, text: str) -> None:
        if self.out is not None:
            self.out.write("[chaos %6.1fs] %s\n" % (time.monotonic() - self.report.started, text))
            self.out.flush()

    # -- the run ------------------------------------------------------------------------------------

    def run(self) -> dict:
        opts = self.opts
        work = Path(opts.work) if opts.work else Path(tempfile.mkdtemp(prefix="zkherd-chaos-%d-" % opts.seed))
        work.mkdir(parents=True, exist_ok=True)
        run_id = os.urandom(4).hex()
        self.cluster = cluster = Cluster(work, run_id, opts.session_timeout, opts.tick)
        (work / "plan.txt").write_text("".join(f.describe() + "\n" for f in self.plan))
        result = None
        try:
            result = self._run(cluster)
        finally:
            if self.client is not None:
                self.client.stop()
                self.client.close()
            cluster.stop_all(timeout=5)
            cluster.close()
        if not opts.keep and not result["violations"] and not opts.work:
            shutil.rmtree(work, ignore_errors=True)
            result["work"] = None
        return result

    def _run(self, cluster: Cluster) -> dict:
        opts = self.opts
        self.say("seed %d, duration %gs, work %s; %d faults planned"
                 % (opts.seed, opts.duration, cluster.work, len(self.plan)))
        cluster.ensemble.start(timeout=90)
        quiet = logging.getLogger("zkherd.chaos.kazoo")  # failovers are expected: not on stderr
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        # back within a second of the ensemble serving again, as the runners are (--reconnect-max-delay)
        self.client = KazooClient(hosts=cluster.ensemble.hosts, timeout=10, logger=quiet,
                                  connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1.0})
        self.client.start(timeout=30)
        self.client.create(CONFIG, config_content(0, True), makepath=True)
        self.client.ensure_path(FARM)
        self.client.ensure_path(REGISTRY)
        self.write_tree(0, True, SHAPES[0])
        baseline = zkutil.list_tree(self.client)
        layout = opts.layout()
        self.catch_up = opts.cron_catch_up()
        self.say("cron firings %s" % ("with --catch-up %g" % self.catch_up if self.catch_up else
                                      "without --catch-up (not in `zkherd cron --help`, or off)"))
        cluster.build(mutex=layout["mutex"], pair=layout["pair"], roll=layout["roll"], members=layout["member"],
                      hosts=layout["host"], daemon=layout["daemon"], lockroll=layout["lockroll"],
                      daemon_timeout=opts.daemon_timeout, lockroll_timeout=opts.lockroll_timeout,
                      slow=layout.get("slow", 0), slow_timeout=opts.slow_timeout, tree=layout.get("tree", 0),
                      catch_up=self.catch_up)
        for service in cluster.services.values():
            service.start()
        cluster.export.start()
        zk_health = checks.ZkHealth(cluster)
        zk_health.start()
        self.zk_health = zk_health
        setup = time.monotonic()
        self.wait_ready(timeout=90)
        self.say("all services ready after %.1fs" % (time.monotonic() - setup))
        self.report.stats["setup_seconds"] = round(time.monotonic() - setup, 1)

        self.orphans = checks.OrphanChecker(cluster, self.report)
        self.mirror = checks.MirrorChecker(cluster, self.report, self.max_version + 1)
        self.slots = checks.SlotChecker(cluster, self.report)
        self.export = checks.ExportChecker(cluster, self.report, zk_health, opts.slack, opts.dead_slack)
        self.cron = checks.CronChecker(cluster, self.report)
        versions = {0: (True, SHAPES[0]), self.max_tree: (True, SHAPES[self.max_tree % len(SHAPES)])}
        versions.update({f.params["version"]: (f.params["good"], SHAPES[f.params["shape"]])
                         for f in self.plan if f.kind == "tree"})
        self.tree = checks.TreeChecker(cluster, self.report, zk_health, self.tree_pushes, versions)
        self.presence = checks.PresenceChecker(cluster, self.report, zk_health, self.client, opts.slack)
        self.outage = checks.OutageWatch(self, opts.slack)
        for checker in (self.slots, self.mirror, self.export, self.cron, self.orphans, self.tree, self.presence):
            checker.start()
        worker = Worker()
        worker.start()
        self.worker = worker

        # the chaos phase
        self.t0 = time.monotonic()
        for fault in self.plan:
            self.at(self.t0 + fault.at, self.apply, fault)
        self.loop(self.t0 + opts.duration)
        while self.outage.pending() or any(func == self.outage_end for _w, _s, func, _a in self.actions):
            self.loop(time.monotonic() + 0.5)  # an outage's recovery is timed to its end (quick profile)
        self.say("faults stop; healing everything")

        # recovery: heal, restart, and the services must come back by themselves
        self.actions = []
        self.recover()
        recovered = time.monotonic()
        self.converge(recovered)
        self.report.stats["recovery_seconds"] = round(time.monotonic() - recovered, 1)

        # stop everything, then what is left behind
        worker.finish()
        self.export.finish()  # members leave the farm now
        self.outage.finish()
        self.say("stopping every service")
        codes = cluster.stop_all()
        for checker in (self.slots, self.mirror, self.orphans, self.tree, self.presence):
            checker.finish()
        for name, code in codes.items():
            if code is None:
                self.report.violation("stop", "%s did not stop within 20 s of SIGTERM" % name)
        self.report.checked("stop", len(codes))
        self.report.checked("exits", len(codes))  # and each exit on its own, as it came (supervise)
        deadline = time.monotonic() + 20
        while cluster.fires and time.monotonic() < deadline:
            cluster.reap_fires(hung_after=20)
            time.sleep(0.1)
        for fire_id in cluster.reap_fires(hung_after=0):
            self.report.violation("cron", "cron run %s still running at the end" % fire_id)
        self.cron.finish()
        self.cron.exactly_once(self, self.t0, self.t0 + opts.duration)
        self.check_fire_exits()
        zk_health.halt.set()
        self.check_logs()
        self.check_leftovers(baseline)
        return self.result()

    def wait_ready(self, timeout: float) -> None:
        cluster = self.cluster
        missing = ["nothing looked at yet"]

        def ready():
            holders = checks.SlotChecker(cluster, self.report).holders()
            starts = cluster.digest_log("roll")
            try:
                exported = sorted(json.loads(cluster.export_path.read_text()))
            except (OSError, ValueError):
                exported = None
            missing[:] = [what for what, fine in (
                ("lock slots held %s" % holders, holders == self.all_slots()),
                ("config children started", starts.exists()
                 and len(starts.read_text().splitlines()) >= len(cluster.group("roll"))),
                ("lockroll child started", not cluster.group("lockroll") or cluster.digest_log("lockroll").exists()),
                ("tree children started", not cluster.group("tree") or (cluster.digest_log("tree").exists() and len(
                    cluster.digest_log("tree").read_text().splitlines()) >= len(cluster.group("tree")))),
                ("export %s" % exported, exported == sorted(cluster.members)),
                ("pool members", all(s.proc is not None and s.proc.has("joined the pool")
                                     for s in cluster.group("host"))),
            ) if not fine]
            return not missing

        zkutil.wait_for(ready, timeout, interval=0.2,
                        message=lambda: "every service to be up and running; missing: %s" % "; ".join(missing))

    # -- scheduling -----------------------------------------------------------------------------

    def at(self, when: float, func, *args) -> None:
        heapq.heappush(self.actions, (when, next(self.seq), func, args))

    def loop(self, until: float) -> None:
        while time.monotonic() < until:
            self.step()
            wait = 0.05
            if self.actions:
                wait = min(wait, max(0.0, self.actions[0][0] - time.monotonic()))
            time.sleep(wait)

    def step(self) -> None:
        """Due actions, restarts of services that died, the hosts' cron timers."""
        now = time.monotonic()
        while self.actions and self.actions[0][0] <= now:
            _when, _seq, func, args = heapq.heappop(self.actions)
            func(*args)
        self.supervise()
        self.timers()
        for fire_id in self.cluster.reap_fires(hung_after=20):
            self.report.violation("cron", "cron run %s hung for 20 s (killed)" % fire_id)

    def timers(self) -> None:
        """Each host's timer fires `zkherd cron` once a tick, the hosts 0.6 s apart."""
        now = time.time()
        tick = self.opts.tick
        for i, host in enumerate(s.name for s in self.cluster.group("host")):
            number = int(now // tick)
            due = number * tick + 0.4 + 0.6 * i
            if now >= due and self.next_fire.get(host, -1) < number:
                self.next_fire[host] = number
                self.cluster.fire(host, "%s-%d" % (host, number))

    def supervise(self) -> None:
        """A service that exited by itself is started again a second later (Restart=always)."""
        for service in list(self.cluster.services.values()) + [self.cluster.export]:
            code = service.reap()
            if code is not None:
                self.say("%s exited by itself with code %d; restarting it in 1 s" % (service.name, code))
                self.report.stats.setdefault("unexpected_exits", []).append(
                    {"service": service.name, "code": code, "at": round(time.monotonic() - self.t0, 1)})
                # no child of the run exits on its own (an overlap's 99 is the slots' violation) and
                # no service is asked to: only "ZooKeeper unreachable at start" (69, restarted into a
                # partition) is an exit of the service's own
                self.report.checked("exits")
                if code != EX_UNAVAILABLE:
                    self.report.violation("exits", "%s exited by itself with code %d (see its log)"
                                          % (service.name, code))
                self.at(time.monotonic() + 1.0, self.restart, service, None)

    # -- faults ---------------------------------------------------------------------------------

    def record(self, fault: Fault, applied: bool, detail: str = "") -> None:
        entry = {"at": round(time.monotonic() - self.t0, 2), "planned": round(fault.at, 2), "kind": fault.kind,
                 "target": fault.target, "params": fault.params, "applied": applied}
        if detail:
            entry["detail"] = detail
        with self.record_lock:  # the worker records too
            bucket = self.counts["applied" if applied else "skipped"]
            bucket[fault.kind] = bucket.get(fault.kind, 0) + 1
            self.applied.append(entry)
        if self.opts.verbose:
            self.say("%s %s%s" % ("fault" if applied else "skipped", fault.describe().strip(),
                                  " (%s)" % detail if detail else ""))

    def resolve(self, target: str):
        """A service by name, or the holder of a lock slot for mutex:holder / pair:holder: the
        newest start in a slot (exclusive_child logs "time name pid slot") whose child lives."""
        cluster = self.cluster
        if ":" not in target:
            return cluster.services[target]
        group = target.split(":")[0]
        newest = {}
        for line in (cluster.work / group / "starts.log").read_text().splitlines():
            fields = line.split()
            if len(fields) == 4:
                newest[fields[3]] = (fields[1], int(fields[2]))
        holders = [cluster.services[name] for name, pid in newest.values() if procs.pid_alive(pid)]
        for service in sorted(holders, key=lambda s: s.name):
            if service.fault is None and service.running:
                return service
        return None

    def apply(self, fault: Fault) -> None:
        kind = fault.kind
        if kind in ("partition", "kill", "delay", "lostreply"):
            service = self.resolve(fault.target)
            if service is None or service.fault is not None or not service.running:
                self.record(fault, False, "target busy, down or no holder")
                return
            detail = service.name if service.name != fault.target else ""
            if kind == "partition":
                service.fault = "partition"
                service.link.partition()
                service.set_state("down")
                self.at(time.monotonic() + fault.params["for"], self.heal, service, fault.params["heal"] == "reset")
            elif kind == "kill":
                service.fault = "kill"
                self.orphans.expect_gone(service.kill())
                self.at(time.monotonic() + fault.params["restart_after"], self.restart, service, "kill")
            elif kind == "lostreply":
                if not service.link.lose_reply():
                    self.record(fault, False, "%s has no connection right now" % service.name)
                    return
                service.fault = "lostreply"  # a blip: the service stays "up"
                self.at(time.monotonic() + fault.params["for"], self.heal, service, False)
            else:
                service.fault = "delay"
                service.link.delay(fault.params["seconds"])
                service.set_state("unknown")
                self.at(time.monotonic() + fault.params["for"], self.heal, service, False)
            self.record(fault, True, detail)
        elif kind in ("zk", "freeze"):
            self.zk_fault(fault)
        elif kind == "outage":
            self.outage_fault(fault)
        elif kind == "tree":
            params = fault.params
            self.worker.submit(lambda: self.push_tree(params["version"], params["good"], SHAPES[params["shape"]]))
            self.record(fault, True)
        elif kind in ("unelect", "unregister", "marker"):
            self.worker.submit(lambda: self.hand_edit(fault))
        elif kind == "push":
            self.worker.submit(lambda: self.push(fault.params["version"], fault.params["good"]))
            self.record(fault, True)
        elif kind == "edit":
            self.edit(fault)
        elif kind == "unlock":
            self.worker.submit(lambda: self.unlock(fault))

    def unlock(self, fault: Fault) -> None:
        """Delete a holder's lock- or run- znode by hand (worker thread)."""
        path = ROOT + "/" + fault.target
        line, place = fault.params["line"], fault.params["place"]
        try:
            names = sorted((n for n in self.client.get_children(path) if n.startswith(line)), key=lambda n: n[-10:])
            node = "%s/%s" % (path, names[place])
            self.client.delete(node)
        except (IndexError, NoNodeError) as exc:
            self.record(fault, False, "no such node: %r" % exc)
            return
        except Exception as exc:  # ZooKeeper failing over
            self.record(fault, False, repr(exc))
            return
        self.record(fault, True, node)

    def hand_edit(self, fault: Fault) -> None:
        """Delete a pool member or a registration node, or edit a tick marker, by hand (worker)."""
        try:
            detail = {"unelect": self.unelect, "unregister": self.unregister, "marker": self.edit_marker}[fault.kind](
                fault)
        except Exception as exc:  # NoNode, or ZooKeeper failing over
            self.record(fault, False, repr(exc))
            return
        self.record(fault, detail is not None, detail or "nothing to edit")

    def unelect(self, fault: Fault) -> str | None:
        members = sorted((n for n in self.client.get_children(ELECTION) if n.startswith("member-")),
                         key=lambda n: n[-10:])
        for name in members:
            ident = self.client.get("%s/%s" % (ELECTION, name))[0].decode(errors="replace")
            if fault.target in ("leader", ident):
                self.client.delete("%s/%s" % (ELECTION, name))
                return "%s (%s)" % (name, ident)
        return None

    def unregister(self, fault: Fault) -> str | None:
        for name in self.client.get_children(REGISTRY):
            if self.client.get("%s/%s" % (REGISTRY, name))[0] == fault.target.encode():
                self.client.delete("%s/%s" % (REGISTRY, name))
                return name
        return None

    def edit_marker(self, fault: Fault) -> str | None:
        """Garbage into the newest marker; or delete an old one: older than the catch-up window and
        two ticks, so that no rule of the cron may run its tick again (docs/reliability.md)."""
        folder = "%s/ticks/%s" % (ELECTION, JOB)
        ticks = sorted((marker_start(n), n) for n in self.client.get_children(folder) if marker_start(n) is not None)
        if not ticks:
            return None
        if fault.params["how"] == "garbage":
            self.client.set("%s/%s" % (folder, ticks[-1][1]), b"\xff\x00garbage by hand \xfe")
            return "garbage in %s" % ticks[-1][1]
        window = (self.catch_up or 0.0) + 2 * self.opts.tick
        old = [name for start, name in ticks if start + self.opts.tick < time.time() - window]
        if not old:
            return None
        self.client.delete("%s/%s" % (folder, old[-1]))
        return "deleted %s" % old[-1]

    def write_tree(self, version: int, good: bool, shape: tuple[str, ...]) -> None:
        """Make the tree's znodes version *version* in one transaction: gone paths deleted (deepest
        first), new ones created (folders first), leaves given their content."""
        files = {"%s/%s" % (TREE, path): data for path, data in tree_files(version, good, shape).items()}
        wanted = {TREE: b""}
        for path, data in files.items():
            parts = path.split("/")
            for i in range(3, len(parts)):
                wanted.setdefault("/".join(parts[:i]), b"")
            wanted[path] = data
        have = set(zkutil.list_tree(self.client, TREE)) | {TREE} if self.client.exists(TREE) else set()
        txn = self.client.transaction()
        for path in sorted(have - set(wanted), key=lambda p: -p.count("/")):
            txn.delete(path)
        for path in sorted(wanted, key=lambda p: p.count("/")):
            if path not in have:
                txn.create(path, wanted[path])
            elif path in files:
                txn.set_data(path, wanted[path])
        results = txn.commit()
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise failed[0]

    def push_tree(self, version: int, good: bool, shape: tuple[str, ...]) -> None:
        """A new version of the tree (worker); retried across failovers. A retry after a lost
        reply finds the tree already made and does nothing (set_data of equal data)."""
        deadline = time.monotonic() + 15
        while True:
            try:
                self.write_tree(version, good, shape)
                self.tree_pushes.append((version, good, time.monotonic()))
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    self.say("tree push of version %d failed: %r" % (version, exc))
                    return
                time.sleep(0.2)

    def check_fire_exits(self) -> None:
        """Every exit of a `zkherd cron` firing is one of its documented own exits."""
        for host, fire_id, code, _took in self.cluster.finished_fires:
            self.report.checked("exits")
            if code not in CRON_EXITS:
                self.report.violation("exits", "cron firing %s on %s exited with code %s (see cron/fires/%s.log)"
                                      % (fire_id, host, code, fire_id))

    def heal(self, service, reset: bool) -> None:
        if service.fault == "lostreply":
            fired = service.link.disarm()
            service.fault = None
            self.report.stats["lost_replies_fired"] = self.report.stats.get("lost_replies_fired", 0) + (fired > 0)
            return
        if service.fault not in ("partition", "delay"):
            return
        service.link.heal(reset=reset)
        service.fault = None
        service.set_state("up" if service.running else "down")

    def restart(self, service, reason) -> None:
        """Start *service* again: after its kill fault (reason "kill"), or after it exited by
        itself (reason None; then a pending kill fault restarts it in its own time)."""
        if reason == "kill":
            if service.fault != "kill":
                return
            service.fault = None
        elif service.fault == "kill":
            return
        if not service.running:
            service.start()

    def zk_fault(self, fault: Fault) -> None:
        ensemble = self.cluster.ensemble
        running = [s for s in ensemble.servers if s.running]
        if len(running) < len(ensemble.servers) or not self.zk_health.healthy:
            if fault.tries < 10:  # the ensemble is still recovering: a second later
                fault.tries += 1
                self.at(time.monotonic() + 1.0, self.zk_fault, fault)
            else:
                self.record(fault, False, "ensemble not whole yet")
            return
        modes = {ensemble.index(s): s.mode() for s in running}
        wanted = [i for i, mode in modes.items() if mode == fault.target]
        if not wanted:
            self.record(fault, False, "no %s found" % fault.target)
            return
        index = wanted[0]
        server = ensemble.servers[index]
        self.zk_health.touch()
        if fault.kind == "freeze":
            os.kill(server.pid, signal.SIGSTOP)
            self.frozen.add(index)
            self.record(fault, True, "zk%d" % (index + 1))
            self.at(time.monotonic() + fault.params["down_for"], self.zk_thaw, index)
            return
        if fault.params["how"] == "crash":
            server.kill()
        else:
            server.stop(timeout=10)
        self.record(fault, True, "zk%d" % (index + 1))
        self.at(time.monotonic() + fault.params["down_for"], self.zk_start, index)

    def zk_thaw(self, index: int) -> None:
        if index in self.frozen:
            self.frozen.discard(index)
            os.kill(self.cluster.ensemble.servers[index].pid, signal.SIGCONT)
        self.zk_health.touch()

    def outage_fault(self, fault: Fault) -> None:
        """Every ZooKeeper server down for the fault's length; then OutageWatch times the recovery."""
        for index in list(self.frozen):
            self.zk_thaw(index)
        for server in self.cluster.ensemble.servers:
            if server.running:
                if fault.params["how"] == "crash":
                    server.kill()
                else:
                    server.stop(timeout=10)
        self.zk_health.touch()
        self.record(fault, True)
        self.at(time.monotonic() + fault.params["down_for"], self.outage_end, fault)

    def outage_end(self, fault: Fault) -> None:
        for index in range(len(self.cluster.ensemble.servers)):
            self.zk_start(index)
        self.outage.expect(fault.params["down_for"])

    def zk_start(self, index: int) -> None:
        server = self.cluster.ensemble.servers[index]
        if not server.running:
            server.launch()
        self.zk_health.touch()

    def push(self, version: int, good: bool) -> None:
        """A new version of the mirrored configuration (worker thread); retried across failovers."""
        deadline = time.monotonic() + 15
        while True:
            try:
                self.client.set_async(CONFIG, config_content(version, good)).get(timeout=5)
                self.pushes.append((version, good, True))
                return
            except Exception as exc:  # connection loss or timeout during a failover: try again
                if time.monotonic() > deadline:
                    self.pushes.append((version, good, False))
                    self.say("push of version %d failed: %r" % (version, exc))
                    return
                time.sleep(0.2)

    def edit(self, fault: Fault) -> None:
        member, params = fault.target, fault.params
        if params["via"] == "file":
            conf = self.cluster.member_conf(member)
            try:
                doc = json.loads(conf.read_text())
            except (OSError, ValueError) as exc:
                self.record(fault, False, "cannot read %s: %s" % (conf.name, exc))
                return
            doc[params["field"]] = params["value"]
            temp = conf.with_name(".%s.edit" % conf.name)
            temp.write_text(json.dumps(doc, indent=2) + "\n")
            os.rename(temp, conf)
            self.edits.append((member, "file", 0))
            self.record(fault, True)
        else:
            def farm_set():
                code = self.cluster.farm_set(member, params["field"], params["value"])
                self.edits.append((member, "set", code))

            self.worker.submit(farm_set)
            self.record(fault, True)

    # -- recovery and liveness ------------------------------------------------------------------

    def recover(self) -> None:
        cluster = self.cluster
        for service in cluster.services.values():
            if service.fault in ("partition", "delay"):
                self.heal(service, reset=False)
            elif service.fault == "kill" or not service.running:
                service.fault = "kill"
                self.restart(service, "kill")
        if not cluster.export.running:
            cluster.export.start()
        for index in list(self.frozen):
            self.zk_thaw(index)
        for index, server in enumerate(cluster.ensemble.servers):
            if not server.running:
                self.zk_start(index)
        cluster.ensemble.wait_healthy(timeout=60, members=range(len(cluster.ensemble.servers)))
        self.zk_health.touch()

    def converge(self, since: float) -> None:
        """Liveness once the faults have stopped: everything recovers without help."""
        opts = self.opts
        final = self.max_version
        self.worker.submit(lambda: self.push(final, True))
        wanted = config_content(final, True)
        tick_now = int(time.time() // opts.tick)
        conditions = {
            "every lock slot is taken again": lambda: self.slots.holders() == self.all_slots(),
            "the newest configuration (version %d) is installed everywhere, running on every roll host "
            "and the lockroll holder" % final: lambda: self.runs_newest(final, wanted),
            "the export equals every member's file and znode": self.farm_agrees,
            "a cron tick runs again": lambda: any(t > tick_now for t in self.cron.ticks),
        }
        if cluster_has(self.cluster, "tree"):
            tree_final = self.max_tree
            self.worker.submit(lambda: self.push_tree(tree_final, True, SHAPES[tree_final % len(SHAPES)]))
            conditions["the newest tree (version %d) is installed and running on every tree host" % tree_final] = \
                lambda: self.tree.runs(tree_final, SHAPES[tree_final % len(SHAPES)])
        conditions["every registration and every pool member is there"] = self.presence.all_present
        left = dict(conditions)
        deadline = time.monotonic() + opts.settle
        while left and time.monotonic() < deadline:
            self.step()
            for name, condition in list(left.items()):
                if condition():
                    self.report.checked("liveness")
                    self.say("recovered in %.1fs: %s" % (time.monotonic() - since, name))
                    del left[name]
            time.sleep(0.2)
        for name in left:
            self.report.checked("liveness")
            self.report.violation("liveness", "not within %.0f s of the faults' end: %s" % (opts.settle, name))

    def all_slots(self) -> dict[str, int]:
        return {group: SLOTS[group] for group in self.cluster.slot_groups()}

    def runs_newest(self, final: int, wanted: bytes) -> bool:
        """Every mirrored file is version *final*; every roll host's child, and the newest lockroll
        child (only the lock holder runs one), started with it."""
        cluster, started = self.cluster, self.mirror.last_started()
        mirroring = cluster.group("roll") + cluster.group("lockroll")
        if not all(cluster.roll_conf(s.name).exists() and cluster.roll_conf(s.name).read_bytes() == wanted
                   for s in mirroring):
            return False
        if any(started.get(s.name) != final for s in cluster.group("roll")):
            return False
        newest = self.mirror.newest_start("lockroll")
        return newest is None or newest == final

    def farm_agrees(self) -> bool:
        cluster = self.cluster
        try:
            exported = json.loads(cluster.export_path.read_text())
            for member in cluster.members:
                local = json.loads(cluster.member_conf(member).read_text())
                znode = json.loads(self.client.get("%s/%s" % (FARM, member))[0])
                if not exported.get(member) == local == znode:
                    return False
        except Exception:  # not there yet, or ZooKeeper failing over (NoNode, SessionExpired...)
            return False
        return sorted(exported) == sorted(cluster.members)

    # -- what is left behind --------------------------------------------------------------------

    def check_logs(self) -> None:
        """No zkherd process wrote a Python traceback: every error is a clean message."""
        work = self.cluster.work
        for path in sorted((work / "logs").glob("*.log")) + sorted((work / "cron" / "fires").glob("*.log")):
            self.report.checked("logs")
            text = path.read_text(errors="replace")
            if "Traceback (most recent call last)" in text:
                last = text[text.index("Traceback (most recent call last)"):].splitlines()
                error = next((line for line in last[1:] if not line.startswith(" ")), "?")
                self.report.violation("logs", "%s: %d traceback(s), the first: %s"
                                      % (path.relative_to(work), text.count("Traceback (most recent"), error))

    def check_leftovers(self, baseline: list[str]) -> None:
        cluster, client = self.cluster, self.client
        alive = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            alive = processes_marked(cluster.run_id)
            if not alive:
                break
            time.sleep(0.2)
        self.report.checked("orphans")
        for pid, mark, cmd in alive:
            self.report.violation("orphans", "process left after every service stopped: pid %d (%s) %s"
                                  % (pid, mark.split(":", 1)[1], cmd[:200]))

        def ephemerals():
            found = []
            for path in zkutil.list_tree(client, ROOT):
                stat = client.exists(path)
                if stat is not None and stat.ephemeralOwner:
                    found.append(path)
            return found

        left = ephemerals()
        longest = max(s.timeout for s in cluster.services.values())
        deadline = time.monotonic() + longest + 5
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = ephemerals()
        self.report.checked("znodes")
        for path in left:
            self.report.violation("znodes", "ephemeral znode still there %.0f s after every service stopped: %s"
                                  % (longest + 5, path))
        leftover = zkutil.leftover_znodes(client, baseline)
        self.report.checked("znodes", len(leftover) + 1)
        for path in leftover:
            if not self.allowed(path) and path not in left:
                self.report.violation("znodes", "znode left by zkherd: %s" % path)
        self.report.stats["znodes_left_by_design"] = len(leftover)
        self.report.stats["failed_version_recorded"] = ROLLING_FAILED in leftover

    @staticmethod
    def allowed(path: str) -> bool:
        """The persistent znodes zkherd leaves by design: lock and pool parents, cron tick markers."""
        documented = (ROOT + "/mutex", ROOT + "/pair", ROOT + "/daemon", ROOT + "/lockroll", ROLLING, ROLLING_FAILED,
                      LOCKROLL_ROLLING, LOCKROLL_ROLLING + "/failed", ELECTION,
                      ELECTION + "/ticks", "%s/ticks/%s" % (ELECTION, JOB))
        if path in (ROOT + "/slow", REGISTRY) or path == TREE or path.startswith(TREE + "/"):
            return True  # the slow lock's parent, the registrations' folder, the tree the harness pushes
        return path in documented or re.match(r"^%s/ticks/%s/\d+(-\d+)?$" % (ELECTION, JOB), path) is not None

    # -- the report -----------------------------------------------------------------------------

    def result(self) -> dict:
        return report.build(self)


def cluster_has(cluster: Cluster, group: str) -> bool:
    return bool(cluster.group(group))


def run(options: Options, out=None) -> dict:
    return Chaos(options, out).run()
