"""The fault schedule of a chaos run: drawn in advance from random.Random(seed), so the same seed
and duration give the same faults at the same offsets, whatever happens while they run.

A fault names its target by service name (`mutex-1`, `member-3`, `host-0`...) or by role, resolved
when it is applied: `mutex:holder`, `pair:holder`, `daemon:holder`, `lockroll:holder` (a runner
whose child holds a slot right then). ZooKeeper faults name `leader` or `follower`. Partition
lengths are in units of the target's own session timeout (services differ: 3 s, 10 s). Rules the
schedule keeps:

- one fault at a time per service (a partition, a kill or a delay), and a second of calm after it;
- one ZooKeeper server down at a time, with time for the ensemble to recover before the next;
- every kind of fault at least once (a ZooKeeper fault on the leader first), however short the run.

`unlock` deletes the znode of a lock holder by hand (its place in the lock- or the run- line);
`unelect` a pool member's znode, `unregister` a registration node, `marker` edits a cron tick
marker (deletes an old one, or writes garbage into the newest). `freeze` SIGSTOPs a ZooKeeper
server (SIGCONT later); `outage` stops the whole ensemble, and nothing else happens from its start
until the recovery bound after it (the recovery is measured alone). `lostreply` arms the proxy of
one of a service's links: its next request is forwarded and the reply cut (the connection reset).
`tree` pushes a new version of the `--mirror-dir` tree, in a shape of SHAPES.

A profile (PROFILES) sets the services per group and the outage's length: `quick` (the short run
of `make test`), `wide` (the long run): the same kinds of faults.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

# Mean seconds between two faults of a kind (a Poisson process each).
INTERVALS = {
    "partition": 5.0,  # blackhole a service's links, heal later
    "kill": 6.0,  # SIGKILL a service, restart it later (as systemd would)
    "delay": 15.0,  # latency on a service's links for a while
    "zk": 12.0,  # crash or stop a ZooKeeper server, start it again later
    "unlock": 15.0,  # a lock holder's lock- or run- znode deleted by hand
    "push": 4.0,  # a new version of the mirrored configuration, good or bad
    "edit": 4.0,  # a farm member's data changed: its local file, or `zkherd farm set`
    "freeze": 30.0,  # SIGSTOP a ZooKeeper server (the leader in half), SIGCONT later
    "lostreply": 8.0,  # the next request on one of a service's links goes through, its reply is cut
    "unelect": 20.0,  # a cron pool member's znode deleted by hand
    "unregister": 15.0,  # a registration node deleted by hand
    "marker": 15.0,  # a cron tick marker deleted (an old one) or overwritten with garbage (the newest)
    "tree": 5.0,  # a new version of the --mirror-dir tree, often in another shape
}
ZK_KINDS = ("zk", "freeze")  # one ZooKeeper server faulted at a time
LOCK_GROUPS = ("mutex", "pair", "daemon", "lockroll", "slow")  # a role `GROUP:holder` each, when the run has the group
CALM = 1.0  # seconds a service is left alone after its fault ended
ZK_RECOVERY = 8.0  # seconds after a server is back before the next ZooKeeper fault
# Every service is back within this many seconds of the ensemble having a leader again after a
# whole-ensemble outage (docs/reliability.md): reconnects back off to 1 s at most
# (--reconnect-max-delay), a session outlives the outage (the leader restores it with a fresh
# timeout), the fenced children start again, the export and the registrations are rewritten.
OUTAGE_RECOVERY = 20.0

# The --mirror-dir tree's shapes (file paths under the tree's znode): a file becomes a folder and
# back (a <-> a/sub), a subtree appears and vanishes (c/x/y), a file's parent becomes a file (c/x).
SHAPES = (("a", "b"), ("a/sub", "b"), ("a", "b", "c/x/y"), ("a/sub", "a/more", "c/x"), ("b",),
          ("a", "c/x/y", "c/z"))

PROFILES = {
    # the short run of `make test`: fewer services, a 20-30 s outage
    "quick": {"layout": {"mutex": 2, "pair": 3, "daemon": 2, "slow": 1, "roll": 2, "lockroll": 2, "tree": 2,
                         "member": 3, "host": 3},
              "outage": (20.0, 25.0), "outage_every": 1e9},
    # the long run: 1-3 minute outages, one per 300 s of faults
    "wide": {"layout": {"mutex": 3, "pair": 4, "daemon": 3, "slow": 2, "roll": 3, "lockroll": 3, "tree": 2,
                        "member": 4, "host": 3},
             "outage": (60.0, 180.0), "outage_every": 300.0},
}


@dataclass
class Fault:
    at: float  # seconds after the chaos phase began
    kind: str
    target: str | None = None
    params: dict = field(default_factory=dict)
    tries: int = 0  # times it was put off (a ZooKeeper fault waits for a whole ensemble)

    def describe(self) -> str:
        bits = " ".join("%s=%s" % (k, ("%.2f" % v) if isinstance(v, float) else v) for k, v in self.params.items())
        return "%7.2fs %-9s %-13s %s" % (self.at, self.kind, self.target or "-", bits)

    def as_dict(self) -> dict:
        return asdict(self)


def _arrivals(rng: random.Random, mean: float, duration: float) -> list[float]:
    times, now = [], 0.0
    while True:
        now += rng.expovariate(1.0 / mean)
        if now >= duration:
            return times
        times.append(now)


def group_of(service: str) -> str:
    return service.rsplit("-", 1)[0]


def outages(seed: int, duration: float, profile: str) -> list[tuple[float, float]]:
    """(start, length) of the whole-ensemble outages. `quick`: one, ending 2 s before the faults
    stop (its recovery is timed while the run ends). `wide`: one per PROFILES["wide"]["outage_every"]
    seconds, each with its recovery bound inside its period."""
    rng = random.Random("%d:outage" % seed)
    low, high = PROFILES[profile]["outage"]
    every = PROFILES[profile]["outage_every"]
    if duration < 2 * low:
        return []
    if every >= duration:
        length = rng.uniform(low, high)
        return [(max(duration / 3, duration - length - 2.0), length)]
    found, base = [], 0.0
    while base + every <= duration + 1e-9:
        length = rng.uniform(low, high)
        found.append((base + rng.uniform(0.2, 0.8) * (every - length - OUTAGE_RECOVERY), length))
        base += every
    return found


def make_plan(seed: int, duration: float, services: list[str], members: list[str],
              session_timeout: float | dict[str, float], intervals: dict | None = None,
              profile: str = "wide") -> list[Fault]:
    """The faults of a run, sorted by time. *services* can be partitioned, killed and delayed;
    *members* are the farm members whose data is edited. *session_timeout*: one for all, or each
    service's own (by name)."""
    intervals = dict(INTERVALS, **(intervals or {}))
    groups = [group for group in LOCK_GROUPS if any(group_of(s) == group for s in services)]
    roles = ["%s:holder" % group for group in groups]
    hosts = [s for s in services if group_of(s) == "host"]
    registered = [s for s in services if group_of(s) == "roll"]

    def timeout_of(target: str) -> float:
        if not isinstance(session_timeout, dict):
            return session_timeout
        if target in roles:  # the group's first member speaks for it
            target = next(s for s in services if group_of(s) == target.split(":")[0])
        return session_timeout[target]

    rng = random.Random(seed)
    windows = [(at - 1.0, at + length + OUTAGE_RECOVERY) for at, length in outages(seed, duration, profile)]
    # Arrival times first, kind by kind, each from its own generator: the times of one kind do not
    # depend on the others. Nothing else happens during an outage and its recovery.
    arrivals = [(at, "outage") for at, _length in outages(seed, duration, profile)]
    for kind in INTERVALS:
        times = _arrivals(random.Random("%d:%s" % (seed, kind)), intervals[kind], duration)
        if not times and duration > 4:  # every kind at least once
            times = [random.Random("%d:%s:once" % (seed, kind)).uniform(0.05, 0.3) * duration]
        arrivals += [(t, kind) for t in times if not any(low <= t <= high for low, high in windows)]
    arrivals.sort()
    lengths = dict(outages(seed, duration, profile))

    plan: list[Fault] = []
    busy: dict[str, float] = {}  # service -> free again at
    zk_free, zk_count, version, tree_version = 0.0, 0, 0, 0
    for at, kind in arrivals:
        if kind in ("partition", "kill", "delay", "lostreply"):
            free = [s for s in services if busy.get(s, 0.0) <= at]
            if not free:
                continue
            target = rng.choice(roles) if kind not in ("delay", "lostreply") and rng.random() < 0.35 \
                else rng.choice(free)
            params = _service_fault(rng, kind, timeout_of(target))
            span = params.get("for", 0.0) + params.get("restart_after", 0.0) + CALM
            if any(at < low < at + span for low, _high in windows):  # over by the outage
                continue
            if target in roles:  # resolved later: keep the group's members out of the way meanwhile
                for name in free:
                    if name.startswith(target.split(":")[0] + "-"):
                        busy[name] = max(busy.get(name, 0.0), at + 0.5)
            else:
                busy[target] = at + span
            plan.append(Fault(at, kind, target, params))
        elif kind in ZK_KINDS:
            if at < zk_free:
                continue
            if any(at < low < at + 10.0 + ZK_RECOVERY for low, _high in windows):
                continue
            which = "leader" if zk_count == 0 or rng.random() < 0.5 else "follower"
            if kind == "zk":
                down = rng.uniform(1.0, 8.0)
                plan.append(Fault(at, kind, which, {"how": "crash" if rng.random() < 0.75 else "stop",
                                                    "down_for": down}))
            else:  # frozen long enough for requests (and often the followers' link to it) to time out
                down = rng.uniform(2.0, 10.0)
                plan.append(Fault(at, kind, which, {"down_for": down}))
            zk_free = at + down + ZK_RECOVERY
            zk_count += 1
        elif kind == "outage":
            plan.append(Fault(at, kind, None, {"down_for": lengths[at], "how": rng.choice(["stop", "crash"])}))
            zk_free = max(zk_free, at + lengths[at] + OUTAGE_RECOVERY)
        elif kind == "unlock":
            group = rng.choice(groups)
            plan.append(Fault(at, kind, group, {"line": rng.choice(["lock-", "run-"]),
                                                "place": rng.randrange(2 if group == "pair" else 1)}))
        elif kind == "unelect" and hosts:
            plan.append(Fault(at, kind, rng.choice(hosts + ["leader"])))
        elif kind == "unregister" and registered:
            plan.append(Fault(at, kind, rng.choice(registered)))
        elif kind == "marker":
            plan.append(Fault(at, kind, None, {"how": rng.choice(["delete", "garbage"])}))
        elif kind == "push":
            version += 1
            plan.append(Fault(at, kind, None, {"version": version, "good": rng.random() >= 0.3}))
        elif kind == "tree":
            tree_version += 1
            plan.append(Fault(at, kind, None, {"version": tree_version, "good": rng.random() >= 0.25,
                                               "shape": rng.randrange(len(SHAPES))}))
        elif kind == "edit":
            plan.append(Fault(at, kind, rng.choice(members), {
                "via": rng.choice(["file", "set"]), "field": rng.choice(["weight", "tag"]),
                "value": str(rng.randrange(1000))}))
    return plan


def _service_fault(rng: random.Random, kind: str, session_timeout: float) -> dict:
    if kind == "partition":
        # short ones keep the session (the child must not restart), long ones make it expire
        if rng.random() < 0.4:
            length = rng.uniform(0.2, 0.8) * session_timeout
        else:
            length = rng.uniform(1.2, 4.0) * session_timeout
        return {"for": length, "heal": rng.choice(["deliver", "reset"])}
    if kind == "kill":
        # mostly a quick restart; sometimes a slow one (a host that reboots)
        return {"restart_after": rng.uniform(0.2, 3.0) if rng.random() < 0.7 else rng.uniform(5.0, 12.0)}
    if kind == "lostreply":  # armed on one link (the one in use) until it fires, for at most this long
        return {"for": 10.0}
    return {"for": rng.uniform(2.0, 8.0), "seconds": rng.uniform(0.02, 0.3)}


def counts(plan: list[Fault]) -> dict[str, int]:
    found: dict[str, int] = {}
    for fault in plan:
        found[fault.kind] = found.get(fault.kind, 0) + 1
    return found
