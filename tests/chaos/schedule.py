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

`unlock` deletes the znode of a lock holder by hand (its place in the lock- or the run- line).
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
}
LOCK_GROUPS = ("mutex", "pair", "daemon", "lockroll")  # a role `GROUP:holder` each, when the run has the group
CALM = 1.0  # seconds a service is left alone after its fault ended
ZK_RECOVERY = 8.0  # seconds after a server is back before the next ZooKeeper fault


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


def make_plan(seed: int, duration: float, services: list[str], members: list[str],
              session_timeout: float | dict[str, float], intervals: dict | None = None) -> list[Fault]:
    """The faults of a run, sorted by time. *services* can be partitioned, killed and delayed;
    *members* are the farm members whose data is edited. *session_timeout*: one for all, or each
    service's own (by name)."""
    intervals = dict(INTERVALS, **(intervals or {}))
    groups = [group for group in LOCK_GROUPS if any(group_of(s) == group for s in services)]
    roles = ["%s:holder" % group for group in groups]

    def timeout_of(target: str) -> float:
        if not isinstance(session_timeout, dict):
            return session_timeout
        if target in roles:  # the group's first member speaks for it
            target = next(s for s in services if group_of(s) == target.split(":")[0])
        return session_timeout[target]

    rng = random.Random(seed)
    # Arrival times first, kind by kind, each from its own generator: the times of one kind do not
    # depend on the others.
    arrivals = []
    for kind in INTERVALS:
        times = _arrivals(random.Random("%d:%s" % (seed, kind)), intervals[kind], duration)
        if not times and duration > 4:  # every kind at least once
            times = [random.Random("%d:%s:once" % (seed, kind)).uniform(0.15, 0.6) * duration]
        arrivals += [(t, kind) for t in times]
    arrivals.sort()

    plan: list[Fault] = []
    busy: dict[str, float] = {}  # service -> free again at
    zk_free, zk_count, version = 0.0, 0, 0
    for at, kind in arrivals:
        if kind in ("partition", "kill", "delay"):
            free = [s for s in services if busy.get(s, 0.0) <= at]
            if not free:
                continue
            target = rng.choice(roles) if kind != "delay" and rng.random() < 0.35 else rng.choice(free)
            params = _service_fault(rng, kind, timeout_of(target))
            span = params.get("for", 0.0) + params.get("restart_after", 0.0) + CALM
            if target in roles:  # resolved later: keep the group's members out of the way meanwhile
                for name in free:
                    if name.startswith(target.split(":")[0] + "-"):
                        busy[name] = max(busy.get(name, 0.0), at + 0.5)
            else:
                busy[target] = at + span
            plan.append(Fault(at, kind, target, params))
        elif kind == "zk":
            if at < zk_free:
                continue
            down = rng.uniform(1.0, 8.0)
            which = "leader" if zk_count == 0 or rng.random() < 0.5 else "follower"
            how = "crash" if rng.random() < 0.75 else "stop"
            plan.append(Fault(at, kind, which, {"how": how, "down_for": down}))
            zk_free = at + down + ZK_RECOVERY
            zk_count += 1
        elif kind == "unlock":
            group = rng.choice(groups)
            plan.append(Fault(at, kind, group, {"line": rng.choice(["lock-", "run-"]),
                                                "place": rng.randrange(2 if group == "pair" else 1)}))
        elif kind == "push":
            version += 1
            plan.append(Fault(at, kind, None, {"version": version, "good": rng.random() >= 0.3}))
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
    return {"for": rng.uniform(2.0, 8.0), "seconds": rng.uniform(0.02, 0.3)}


def counts(plan: list[Fault]) -> dict[str, int]:
    found: dict[str, int] = {}
    for fault in plan:
        found[fault.kind] = found.get(fault.kind, 0) + 1
    return found
