"""What a chaos run starts: a 3-server ensemble and the zkherd services around it, each service
behind links of its own (one fault proxy per ZooKeeper server) so that it can be cut off alone.

Services (names are what the fault schedule targets):

- mutex-0..2   `zkherd run --lock /chaos/mutex` (one slot) around exclusive_child
- daemon-0..2  `zkherd run --lock /chaos/daemon` (one slot, session timeout 10 s, --stop-timeout 2)
               around exclusive_child(daemon=True): a wrapper that does not exec, whose setsid
               grandchild ignores SIGTERM and holds the slot's flock; the last one with
               `--containment subreaper`, the others with a cgroup when the runner can make one
- slow-0..1    like the daemons, with a session timeout of 30 s, at /chaos/slow
- pair-0..3    `zkherd run --lock /chaos/pair --slots 2` around exclusive_child with 2 slot files
- roll-0..2    `zkherd run --mirror ... --rolling-lock ... --check-cmd --register /chaos/reg/roll-`
               (rejects kind=bad); the child records a digest of the file it starts with
- tree-0..1    `zkherd run --mirror-dir DIR=/chaos/tree --check-cmd ...` (rejects a set with a
               kind=bad file); the tree changes shape (schedule.SHAPES); the child records a digest of
               the folder it starts with
- lockroll-0..2  `zkherd run --lock /chaos/lockroll --mirror ... --rolling-lock ... --check-cmd`
               together: the child holds the slot's flock like a mutex child and records the digest
               of the file it started with like a roll child
- member-0..3  `zkherd farm join /chaos/farm/web member-N.json`
- host-0..2    `zkherd elect --election /chaos/cron`; the harness fires `zkherd cron` from each
               host's links every tick, and the job records (host, firing), then takes a second
- export       `zkherd farm export` of the farm to export.json (the observer: never faulted)

Every process gets ZKHERD_CHAOS_MARK=RUN:SERVICE:INCARNATION in its environment, which everything
it starts inherits: /proc tells which processes a run left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support import procs
from tests.support.faultproxy import FaultProxy
from tests.support.runner import REPO, Zkherd, exclusive_child
from tests.support.zkserver import ZooKeeperEnsemble

MARK = "ZKHERD_CHAOS_MARK"
ROOT = "/chaos"
MUTEX, PAIR, DAEMON, LOCKROLL = ROOT + "/mutex", ROOT + "/pair", ROOT + "/daemon", ROOT + "/lockroll"
SLOW, TREE, REGISTRY = ROOT + "/slow", ROOT + "/tree", ROOT + "/reg"
CONFIG, ROLLING, LOCKROLL_ROLLING = ROOT + "/config/app", ROOT + "/config/roll", ROOT + "/config/lockroll"
# groups whose children hold a slot flock (how many slots), and those that mirror CONFIG
SLOTS = {"mutex": 1, "pair": 2, "daemon": 1, "lockroll": 1, "slow": 1}
DAEMON_STYLE = ("daemon", "slow")  # children that do not exec: a setsid grandchild holds the slot
MIRRORED = ("roll", "lockroll")
FARM, ELECTION = ROOT + "/farm/web", ROOT + "/cron"
JOB = "job"
CHECK_CMD = 'grep -qx kind=good "$ZKHERD_STAGED_FILE"'
# every staged file of the tree (a line LOCAL=STAGED each) must say kind=good
TREE_CHECK_CMD = ('printf "%s\\n" "$ZKHERD_STAGED_FILES" | while IFS= read -r line; do '
                  '[ -z "$line" ] || grep -qx kind=good "${line#*=}" || exit 1; done')
# the child's record of the folder it started with: each file's path and content, in order
TREE_DIGEST = ("cd \"$1\" && find . -type f ! -path '*/.*' | LC_ALL=C sort | "
               "while IFS= read -r f; do printf '%s\\n' \"$f\"; cat \"$f\"; done | sha256sum | cut -c1-16")


def tree_file(version: int, kind: str, path: str) -> bytes:
    """The file *path* of the tree's version *version*: it names its path, version and kind, so a
    file of another version or place cannot pass for it."""
    lines = ["version=%d" % version, "kind=%s" % kind, "path=%s" % path]
    lines += ["line %02d %s" % (n, hashlib.sha1(b"%d:%s:%d" % (version, path.encode(), n)).hexdigest())
              for n in range(20)]
    return ("\n".join(lines) + "\n").encode()


def tree_files(version: int, good: bool, shape: tuple[str, ...]) -> dict[str, bytes]:
    """Version *version* of the mirrored tree: {relative path: content}; in a bad version the first
    file alone says kind=bad (the check must look at every file)."""
    return {path: tree_file(version, "bad" if not good and i == 0 else "good", path) for i, path in enumerate(shape)}


def tree_digest(files: dict[str, bytes]) -> str:
    """What TREE_DIGEST prints for a folder holding *files*."""
    order = sorted(files, key=lambda path: ("./" + path).encode())
    return hashlib.sha256(b"".join(b"./%s\n%s" % (path.encode(), files[path]) for path in order)).hexdigest()[:16]


def parse_tree_file(path: str, data: bytes) -> tuple[int, str] | None:
    """(version, kind) if *data* is exactly the whole file *path* of some version."""
    match = re.match(rb"version=(\d+)\nkind=(good|bad)\npath=", data)
    if not match:
        return None
    version, kind = int(match.group(1)), match.group(2).decode()
    return (version, kind) if data == tree_file(version, kind, path) else None


def config_content(version: int, good: bool) -> bytes:
    """Version *version* of the mirrored file: about 8 kB, every line naming the version, so that
    a partial or mixed file cannot pass for a whole one."""
    kind = "good" if good else "bad"
    lines = ["version=%d" % version, "kind=%s" % kind]
    lines += ["line %03d of version %d %s" % (i, version, hashlib.sha1(b"%d:%s:%d" % (version, kind.encode(), i))
                                              .hexdigest()) for i in range(100)]
    lines.append("end of version %d" % version)
    return ("\n".join(lines) + "\n").encode()


def parse_config(data: bytes) -> tuple[int, bool] | None:
    """(version, good) if *data* is exactly one whole version, else None."""
    match = re.match(rb"version=(\d+)\nkind=(good|bad)\n", data)
    if not match:
        return None
    version, good = int(match.group(1)), match.group(2) == b"good"
    return (version, good) if data == config_content(version, good) else None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class Link:
    """A service's way to the ensemble: one FaultProxy per server, all faulted together."""

    def __init__(self, ensemble: ZooKeeperEnsemble):
        self.proxies = [FaultProxy(server.hosts) for server in ensemble.servers]

    @property
    def hosts(self) -> str:
        return ",".join(proxy.hosts for proxy in self.proxies)

    def partition(self) -> None:
        for proxy in self.proxies:
            proxy.blackhole()

    def delay(self, seconds: float) -> None:
        for proxy in self.proxies:
            proxy.delay(seconds)

    def lose_reply(self) -> bool:
        """Arm the proxy the service is connected through (the first with a connection): its next
        request (any but pings) is forwarded and the reply cut. False if none is connected."""
        for proxy in self.proxies:
            if proxy.connection_count:
                proxy.lose_reply(None, nth=1, then="pass")
                return True
        return False

    def disarm(self) -> int:
        """Disarm what lose_reply armed; returns how many rules fired so far on this link."""
        for proxy in self.proxies:
            proxy.disarm()
        return sum(proxy.fired for proxy in self.proxies)

    def heal(self, reset: bool = False) -> None:
        for proxy in self.proxies:
            if reset:
                proxy.reset_all()
            proxy.heal()

    def close(self) -> None:
        for proxy in self.proxies:
            proxy.close()


class Service:
    """One long-running zkherd process, restarted when it dies, as systemd would."""

    def __init__(self, cluster: Cluster, name: str, group: str, args: list[str], link: Link, env=None,
                 timeout: float | None = None):
        self.cluster = cluster
        self.name = name
        self.group = group
        self.timeout = timeout or cluster.timeout  # its session timeout
        self.args = args
        self.link = link
        self.env = dict(env or {})
        self.log_path = cluster.work / "logs" / ("%s.log" % name)
        self.proc: Zkherd | None = None
        self.incarnation = 0
        self.fault: str | None = None  # the fault in force on it
        # what the harness knows: "up" (running, links fine), "down" (killed or cut off) or
        # "unknown" (slow links), and since when (monotonic)
        self.state, self.since = "down", time.monotonic()
        self.history: list[tuple[float, str]] = [(self.since, "down")]  # every (since, state)
        self.exits: list[int] = []  # exit codes of incarnations that ended on their own

    @property
    def mark(self) -> str:
        return "%s:%s:%d" % (self.cluster.run_id, self.name, self.incarnation)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.proc.poll() is None

    def set_state(self, state: str) -> None:
        with self.cluster.lock:
            self.state, self.since = state, time.monotonic()
            self.history.append((self.since, state))

    def up_throughout(self, start: float, end: float) -> bool:
        """Whether the service was "up" (running, links fine) all of [start, end] (monotonic)."""
        with self.cluster.lock:
            history = list(self.history)
        state_at_start = "down"
        for since, state in history:
            if since <= start:
                state_at_start = state
            elif since <= end and state != "up":
                return False
        return state_at_start == "up"

    def start(self) -> None:
        """Spawn a new incarnation (from the main thread: see tests/support/procs.py)."""
        self.incarnation += 1
        self.proc = Zkherd(self.args, self.log_path, env=dict(self.env, **{MARK: self.mark}))
        self.set_state("unknown" if self.fault == "delay" else "down" if self.fault == "partition" else "up")

    def kill(self) -> str:
        """SIGKILL the zkherd process alone; returns the mark of the incarnation killed."""
        mark = self.mark
        if self.proc is not None:
            self.proc.kill()
            procs.terminate(self.proc.proc)  # reaped: forget it
            self.proc = None
        self.set_state("down")
        return mark

    def reap(self) -> int | None:
        """The exit code if the process ended on its own since the last look."""
        if self.proc is None or self.proc.proc.poll() is None:
            return None
        code = self.proc.proc.returncode
        procs.terminate(self.proc.proc)
        self.proc = None
        self.exits.append(code)
        self.set_state("down")
        return code

    def child_pids(self) -> list[int]:
        if self.proc is None:
            return []
        return [int(p) for p in re.findall(r"started child pid=(\d+)", self.proc.log())]


class Cluster:
    def __init__(self, work: Path, run_id: str, session_timeout: float, tick: float):
        self.work = work
        self.run_id = run_id
        self.timeout = session_timeout  # of every service but those given one of their own
        self.tick = tick
        self.lock = threading.RLock()
        for sub in ("logs", "mutex", "pair", "daemon", "slow", "lockroll", "roll", "tree", "farm", "cron/fires"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        self.ensemble = ZooKeeperEnsemble(3, work / "zk")
        self.services: dict[str, Service] = {}
        self.links: list[Link] = []
        self.export: Service | None = None
        self.members: list[str] = []
        self.fires: list[tuple[str, str, Zkherd, float]] = []  # (host, fire id, process, started)
        self.finished_fires: list[tuple[str, str, int, float]] = []  # (host, fire id, exit code, took)

    # -- layout ---------------------------------------------------------------------------------

    def link(self) -> Link:
        link = Link(self.ensemble)
        self.links.append(link)
        return link

    def add(self, name: str, group: str, args: list[str], link: Link | None = None, env=None,
            timeout: float | None = None) -> Service:
        link = link or self.link()
        service = Service(self, name, group, args, link, env, timeout)
        self.services[name] = service
        return service

    def common(self, link: Link, timeout: float | None = None) -> list[str]:
        return ["--zk", link.hosts, "--session-timeout", "%g" % (timeout or self.timeout)]

    def build(self, mutex: int = 3, pair: int = 4, roll: int = 3, members: int = 4, hosts: int = 3,
              daemon: int = 3, lockroll: int = 3, daemon_timeout: float = 10.0,
              lockroll_timeout: float | None = None, slow: int = 0, slow_timeout: float = 30.0, tree: int = 0,
              catch_up: float | None = None) -> None:
        self.catch_up = catch_up
        for group, count, path, timeout in (("mutex", mutex, MUTEX, None), ("pair", pair, PAIR, None),
                                            ("daemon", daemon, DAEMON, daemon_timeout),
                                            ("slow", slow, SLOW, slow_timeout)):
            slots = SLOTS[group]
            for i in range(count):
                link = self.link()
                name = "%s-%d" % (group, i)
                child = exclusive_child(self.work / group, slots=slots, name=name, interval=0.2,
                                        daemon=group in DAEMON_STYLE)
                args = ["run", *self.common(link, timeout), "--stop-timeout", "1", "--lock", path, "--slots",
                        str(slots)]
                if group in DAEMON_STYLE:
                    # its holder ignores TERM: a stop ends in SIGKILL of the tree (after 2 s of TERM, or
                    # at once when the wrapper died of it); the last one without a cgroup, so that both
                    # ways of containment (docs/runner.md) meet the faults
                    args[args.index("--stop-timeout") + 1] = "2"
                    if i == count - 1 and count > 1:
                        args += ["--containment", "subreaper"]
                self.add(name, group, [*args, "--", *child], link, timeout=timeout)
        for i in range(roll):
            link = self.link()
            conf = self.roll_conf("roll-%d" % i)
            conf.parent.mkdir(parents=True, exist_ok=True)
            # one read of the file: its digest says which whole version it was (or none)
            record = ('echo "$2 $(sha256sum < "$1" | cut -c1-16)" >> %s; exec sleep 1000000'
                      % self.digest_log("roll"))
            self.add("roll-%d" % i, "roll", [
                "run", *self.common(link), "--stop-timeout", "1", "--change-delay", "0.1",
                "--mirror", "%s=%s" % (conf, CONFIG), "--rolling-lock", ROLLING, "--check-cmd", CHECK_CMD,
                "--register", REGISTRY + "/roll-", "--data", "roll-%d" % i,
                "--", "sh", "-c", record, "roll-child", str(conf), "roll-%d" % i], link)
        for i in range(tree):
            link = self.link()
            name = "tree-%d" % i
            folder = self.tree_dir(name)
            folder.mkdir(parents=True, exist_ok=True)
            record = 'echo "$2 $(%s)" >> %s; exec sleep 1000000' % (TREE_DIGEST, self.digest_log("tree"))
            self.add(name, "tree", [
                "run", *self.common(link), "--stop-timeout", "1", "--change-delay", "0.1",
                "--mirror-dir", "%s=%s" % (folder, TREE), "--check-cmd", TREE_CHECK_CMD,
                "--", "sh", "-c", record, "tree-child", str(folder), name], link)
        for i in range(lockroll):
            link = self.link()
            name = "lockroll-%d" % i
            conf = self.roll_conf(name)
            conf.parent.mkdir(parents=True, exist_ok=True)
            # the slot first (the kernel's referee), then one read of the file it started with
            record = 'echo "%s $(sha256sum < "%s" | cut -c1-16)" >> %s' % (name, conf, self.digest_log("lockroll"))
            child = exclusive_child(self.work / "lockroll", name=name, interval=0.2, on_start=record)
            self.add(name, "lockroll", [
                "run", *self.common(link, lockroll_timeout), "--stop-timeout", "1", "--change-delay", "0.1",
                "--lock", LOCKROLL, "--mirror", "%s=%s" % (conf, CONFIG), "--rolling-lock", LOCKROLL_ROLLING,
                "--check-cmd", CHECK_CMD, "--", *child], link, timeout=lockroll_timeout)
        for i in range(members):
            name = "member-%d" % i
            conf = self.work / "farm" / ("%s.json" % name)
            conf.write_text(json.dumps({"name": name, "enabled": "1", "weight": "0", "tag": "t0"}, indent=2) + "\n")
            link = self.link()
            self.add(name, "member", ["farm", "join", FARM, str(conf), *self.common(link), "--name", name,
                                      "--poll", "0.2"], link)
            self.members.append(name)
        for i in range(hosts):
            link = self.link()
            host = "host-%d" % i
            (self.work / "cron" / host).mkdir(exist_ok=True)
            self.add(host, "host", ["elect", *self.common(link), "--election", ELECTION, "--id", host], link)
        link = self.link()
        self.export = Service(self, "export", "export", [
            "farm", "export", FARM, str(self.export_path), *self.common(link)], link)

    @property
    def export_path(self) -> Path:
        return self.work / "farm" / "export.json"

    def member_conf(self, name: str) -> Path:
        return self.work / "farm" / ("%s.json" % name)

    def roll_conf(self, name: str) -> Path:
        """The mirrored file of a roll or lockroll service."""
        return self.work / name.rsplit("-", 1)[0] / name / "app.conf"

    def tree_dir(self, name: str) -> Path:
        """The --mirror-dir folder of a tree service."""
        return self.work / "tree" / name / "dir"

    def digest_log(self, group: str) -> Path:
        """Where the children of a mirroring group record "name digest" of the file (or, for the
        tree, the folder) they started with."""
        return self.work / group / ("starts.log" if group == "roll" else "digests.log")

    def group(self, group: str) -> list[Service]:
        return [s for s in self.services.values() if s.group == group]

    def slot_groups(self) -> list[str]:
        """The groups of this run whose children hold slot flocks."""
        return [group for group in SLOTS if self.group(group)]

    def slot_files(self, group: str) -> list[Path]:
        return [self.work / group / ("slot%d" % i) for i in range(SLOTS[group])]

    # -- cron -----------------------------------------------------------------------------------

    def fire(self, host: str, fire_id: str) -> None:
        """What a timer on *host* does once a tick: `zkherd cron` through the host's links."""
        service = self.services[host]
        runs = self.work / "cron" / "runs.log"
        catch_up = ["--catch-up", "%g" % self.catch_up] if self.catch_up else []
        args = ["cron", *self.common(service.link), "--election", ELECTION, "--id", host, "--tick", str(self.tick),
                "--timeout", "2", "--name", JOB, "--stop-timeout", "0.5", *catch_up,
                "--", "sh", "-c", 'echo "$1 $2" >> %s; exec sleep 1' % runs, "job", host, fire_id]
        env = {MARK: "%s:cron:%s" % (self.run_id, fire_id), "ZKHERD_RUN_DIR": str(self.work / "cron" / host)}
        proc = Zkherd(args, self.work / "cron" / "fires" / ("%s.log" % fire_id), env=env)
        self.fires.append((host, fire_id, proc, time.monotonic()))

    def reap_fires(self, hung_after: float) -> list[str]:
        """Collect finished cron runs; returns the fire ids of runs that hung (killed)."""
        hung, left = [], []
        now = time.monotonic()
        for host, fire_id, proc, started in self.fires:
            code = proc.proc.poll()
            if code is None and now - started > hung_after:
                procs.kill(proc.proc)
                hung.append(fire_id)
                code = proc.proc.returncode
            if code is None:
                left.append((host, fire_id, proc, started))
            else:
                procs.terminate(proc.proc)
                self.finished_fires.append((host, fire_id, code, now - started))
        self.fires = left
        return hung

    # -- the harness's own zkherd calls -----------------------------------------------------------

    def farm_set(self, member: str, field: str, value: str) -> int:
        env = dict(os.environ, PYTHONUNBUFFERED="1", **{MARK: "%s:farm-set:%s" % (self.run_id, member)})
        try:
            result = subprocess.run([sys.executable, "-m", "zkherd", "farm", "set", "%s/%s" % (FARM, member), field,
                                     value, "--zk", self.ensemble.hosts, "--connect-timeout", "5"],
                                    cwd=REPO, env=env, capture_output=True, timeout=30, check=False)
        except subprocess.TimeoutExpired:
            return -1
        if result.returncode or result.stderr:  # the logs invariant reads it for tracebacks
            with open(self.work / "logs" / "farm-set.log", "ab") as log:
                log.write(b"[%s exit %d]\n%s" % (member.encode(), result.returncode, result.stderr))
        return result.returncode

    # -- the end --------------------------------------------------------------------------------

    def stop_all(self, timeout: float = 20.0) -> dict[str, int | None]:
        """SIGTERM every service at once, then wait; returns exit codes (None: had to be killed)."""
        services = list(self.services.values()) + ([self.export] if self.export else [])
        for service in services:
            if service.running:
                service.proc.signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        deadline = time.monotonic() + timeout
        for service in services:
            if service.proc is None:
                continue
            try:
                codes[service.name] = service.proc.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[service.name] = None
                procs.kill(service.proc.proc)
            procs.terminate(service.proc.proc)
        return codes

    def close(self) -> None:
        for link in self.links:
            link.close()
        self.ensemble.close()


def processes_marked(run_id: str) -> list[tuple[int, str, str]]:
    """(pid, mark, command line) of every live process carrying this run's mark."""
    needle = ("%s=%s:" % (MARK, run_id)).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path("/proc/%s/environ" % entry).read_bytes()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item.startswith(needle) and procs.pid_alive(int(entry)):
                found.append((int(entry), item.split(b"=", 1)[1].decode(), " ".join(procs.pid_cmdline(int(entry)))))
                break
    return found
