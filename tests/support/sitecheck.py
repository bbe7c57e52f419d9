"""What `make demo` shows and the molecule scenario verifies, on the boxes that playbooks/site.yml
converged: each capability, seen from outside with systemctl, journalctl and ZooKeeper reads.

    python -m tests.support.sitecheck --state DIR --zk HOSTS [--strict]
        [--tls-ca PEM --tls-cert PEM --tls-key PEM --anonymous-cert PEM --anonymous-key PEM]
        [--closed HOST:PORT,...]

prints a few readable lines per capability; with --strict (molecule verify) any check that does
not hold makes the exit code 1. The names below are the ones playbooks/site.yml deploys. It reads
ZooKeeper with the deployment's credentials, the ones the runner role wrote to /etc/zkherd/auth;
an anonymous client (over TLS: one with another certificate) must be denied what the services made.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from tests.support.consumercheck import Consumers

SINGLETON_UNIT, SINGLETON_REGISTRY = "zkherd-hello.service", "/services/hello"
FORKING_UNIT, FORKING_REGISTRY, FORKING_DAEMON = "zkherd-forking.service", "/services/forking", "zkherd-forking-daemon"
ROLLING_UNIT, ROLLING_ZNODE, ROLLING_FILE = "zkherd-web.service", "/config/web/web.conf", "/etc/demo/web.conf"
FARM, EXPORTS = "/services/db", ("/etc/haproxy/db-backend.cfg", "/srv/www/database.php")
CRON_UNIT, CRON_TICKS = "zkherd-cron-tick.service", "/cron/demo/ticks/tick"
LOCK, ROLLING_LOCK, CONFIG = "/locks/hello", "/rolling/web", "/config"
AUTH_FILE, ZOO_CFG = "/etc/zkherd/auth", "/etc/zookeeper/conf_zookeeper/zoo.cfg"


class CheckFailed(Exception):
    pass


def alive(pid):
    """Neither gone nor a zombie (a box's init may reap late)."""
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


class Site:
    def __init__(self, state, hosts, tls=None, anonymous_tls=None, closed=(), kept_plain=()):
        self.boxes = {name: box["pid"] for name, box in json.loads((Path(state) / "boxes.json").read_text()).items()}
        self.hosts, self.tls, self.closed = hosts, tls, closed
        # Plain ports kept deliberately on these addresses (reconfig on ZooKeeper 3.8 needs one).
        self.kept_plain = kept_plain
        credentials = self.sh(sorted(self.boxes)[0], "cat", AUTH_FILE).stdout.strip()  # none: an open site
        self.zk = self.client(tls, auth_data=[("digest", credentials)] if credentials else None)
        self.anonymous = self.client(anonymous_tls)

    def client(self, tls, **kwargs):
        if tls:
            kwargs.update(use_ssl=True, ca=tls[0], certfile=tls[1], keyfile=tls[2])
        client = KazooClient(hosts=self.hosts, timeout=10, **kwargs)
        client.start(timeout=30)
        return client

    def close(self):
        for client in (self.zk, self.anonymous):
            client.stop()
            client.close()

    def sh(self, box, *cmd, check=False, timeout=60):
        done = subprocess.run(["nsenter", "-t", str(self.boxes[box]), "-a", *cmd], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise CheckFailed("%s: %s failed: %s" % (box, " ".join(cmd), done.stderr.strip()))
        return done

    def journal(self, box, unit, since):
        """[(seconds since the epoch, message)] of *unit* in *box* since *since*."""
        out = self.sh(box, "journalctl", "-u", unit, "-o", "json", "--no-pager", "--since", "@%d" % int(since)).stdout
        entries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return [(int(e["__REALTIME_TIMESTAMP"]) / 1e6, e.get("MESSAGE", "")) for e in entries
                if int(e["__REALTIME_TIMESTAMP"]) / 1e6 >= since and isinstance(e.get("MESSAGE"), str)]

    def wait(self, what, func, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = func()
            if value:
                return value
            time.sleep(0.2)
        raise CheckFailed("%s within %.0f s" % (what, timeout))

    # --- the capabilities -------------------------------------------------------------------

    def holders(self, registry=SINGLETON_REGISTRY):
        """Boxes registered under a service's registry (the one running it)."""
        return sorted(self.registered(registry))

    def registered(self, registry):
        """{box: when its registration node was made (s since the epoch, the server's clock)}."""
        found = {}
        for child in self.zk.get_children(registry) if self.zk.exists(registry) else []:
            try:
                data, stat = self.zk.get(registry + "/" + child)
                found[json.loads(data)["host"]] = stat.ctime / 1000.0
            except Exception:  # pylint: disable=broad-except  # left while we read
                pass
        return found

    def active(self, unit):
        return sorted(b for b in self.boxes if self.sh(b, "systemctl", "is-active", unit).stdout.strip() == "active")

    def singleton(self):
        holders = self.wait("one box registered for %s" % SINGLETON_REGISTRY,
                            lambda: self.holders() if len(self.holders()) == 1 else None, 60)
        running = [b for b in self.boxes if self.sh(b, "pgrep", "-f", "zkherd-hello-child").returncode == 0]
        if running != holders:
            raise CheckFailed("the singleton's child runs on %s, but %s is registered" % (running, holders))
        yield "singleton: %s runs on %s only (units active on %s, the others wait for the lock)" % (
            SINGLETON_UNIT, holders[0], ", ".join(self.active(SINGLETON_UNIT)))

    def takeover(self):
        old = self.holders()[0]
        started = time.monotonic()
        self.sh(old, "systemctl", "stop", SINGLETON_UNIT, check=True)
        new = self.wait("another box takes over", lambda: [h for h in self.holders() if h != old], 30)[0]
        took = time.monotonic() - started
        self.sh(old, "systemctl", "start", SINGLETON_UNIT, check=True)
        yield "takeover: systemctl stop on %s -> %s runs it %.1f s later (%s started again, now on standby)" % (
            old, new, took, old)

    def daemons(self):
        """{box: [pid]} of the live daemons the forking service's command left behind, read from this
        machine's /proc: the boxes share its kernel, each in a PID namespace of its own."""
        boxes = {os.readlink("/proc/%d/ns/pid" % pid): box for box, pid in self.boxes.items()}
        found = {box: [] for box in self.boxes}
        for entry in (e for e in os.listdir("/proc") if e.isdigit()):
            try:
                if Path("/proc/%s/cmdline" % entry).read_bytes().split(b"\0")[-2:-1] != [FORKING_DAEMON.encode()]:
                    continue
                box = boxes.get(os.readlink("/proc/%s/ns/pid" % entry))
            except OSError:  # gone meanwhile
                continue
            if box is not None and alive(int(entry)):
                found[box].append(int(entry))
        return found

    def containment(self):
        """systemctl kill -s KILL of the runner alone (its main process): the daemon its command left
        behind - setsid, ignoring SIGTERM - must be gone before another box takes the lock."""
        def one_daemon(box):
            daemons = self.daemons()
            return daemons if daemons[box] and sum(map(len, daemons.values())) == 1 else None

        old = self.wait("one box registered under %s" % FORKING_REGISTRY,
                        lambda: self.holders(FORKING_REGISTRY) if len(self.holders(FORKING_REGISTRY)) == 1 else None,
                        60)[0]
        daemon = self.wait("the daemon of %s running on %s alone" % (FORKING_UNIT, old),
                           lambda: one_daemon(old), 30)[old][0]
        killed = time.time()
        self.sh(old, "systemctl", "kill", "-s", "KILL", "--kill-whom=main", FORKING_UNIT, check=True)
        while alive(daemon) and time.time() < killed + 60:
            time.sleep(0.005)
        gone = time.time()
        new, took = self.wait("another box takes the lock of %s" % FORKING_UNIT, lambda: next(
            iter((b, t) for b, t in self.registered(FORKING_REGISTRY).items() if b != old), None), 60)
        modes = {box: sorted(set(re.findall(r"child containment mode=(\S+)", " ".join(
            m for _when, m in self.journal(box, FORKING_UNIT, killed - 3600))))) for box in self.boxes}
        self.wait("%s active again on %s" % (FORKING_UNIT, old), lambda: old in self.active(FORKING_UNIT), 60)
        self.wait("the daemon of %s running on %s alone" % (FORKING_UNIT, new), lambda: one_daemon(new), 30)
        if gone >= took:
            raise CheckFailed("the daemon of the SIGKILLed runner on %s lived %.2f s, until after %s took the lock "
                              "(%.2f s after the kill)" % (old, gone - killed, new, took - killed))
        if any(mode != ["cgroup"] for mode in modes.values()):
            raise CheckFailed("the runners of %s do not all contain their command in a cgroup: %s" % (
                FORKING_UNIT, modes))
        yield ("containment: systemctl kill -s KILL of %s's runner on %s -> the setsid daemon its command left (it "
               "ignores SIGTERM) was gone %.2f s later, %s took the lock %.1f s later (mode=cgroup on every box)"
               % (FORKING_UNIT, old, gone - killed, new, took - killed))

    def roll(self):
        version = "version %d" % time.time()
        since = time.time()
        deployed = self.zk.get(ROLLING_ZNODE)[0]
        self.zk.set(ROLLING_ZNODE, ("# pushed by sitecheck\ngreeting = %s\n" % version).encode())
        self.wait("every box mirrors the new config", lambda: all(
            version in self.sh(b, "cat", ROLLING_FILE).stdout for b in self.boxes), 120)
        windows = {}
        for box in self.boxes:
            # From taking the rolling lock to the restarted child being healthy; the release is
            # logged after the lock node is gone, so the next host may log its start first.
            def restart_window(box=box):
                lines = self.journal(box, ROLLING_UNIT, since)
                got = [t for t, m in lines if "rolling lock acquired" in m]
                running = [t for t, m in lines if "new configuration is running" in m]
                return (got[0], running[-1]) if got and running else None
            windows[box] = self.wait("%s restarts under the rolling lock" % box, restart_window, 60)
        order = sorted(windows, key=lambda b: windows[b][0])
        for first, second in zip(order, order[1:]):
            if windows[second][0] < windows[first][1]:
                raise CheckFailed("%s restarted while %s held the rolling lock" % (second, first))
        steps = ", ".join("%s +%.1f s" % (b, windows[b][0] - since) for b in order)
        yield "config roll: %s changed in ZooKeeper -> boxes restarted one at a time: %s" % (ROLLING_ZNODE, steps)
        # Put the deployed config back (another roll), so that the site is as the playbooks left it
        # and a second `make demo` finds nothing to change.
        self.zk.set(ROLLING_ZNODE, deployed)
        self.wait("every box mirrors the deployed config again", lambda: all(
            self.sh(b, "cat", ROLLING_FILE).stdout.encode() == deployed for b in self.boxes), 120)
        yield "config roll: the deployed %s put back, mirrored by every box (another roll follows)" % ROLLING_ZNODE

    def export(self):
        members = sorted(self.zk.get_children(FARM))
        if sorted(members) != sorted(self.boxes):
            raise CheckFailed("farm %s has members %s, not one per box" % (FARM, members))
        for dest in EXPORTS:
            for box in self.boxes:
                self.wait("%s:%s lists every member" % (box, dest),
                          lambda box=box, dest=dest: all(m in self.sh(box, "cat", dest).stdout for m in members), 30)
        box = sorted(self.boxes)[0]
        yield "farm: %s has %s; every box's %s and %s list them all. On %s:" % (
            FARM, ", ".join(members), *EXPORTS, box)
        for dest in EXPORTS:
            yield "  %s" % dest
            for line in self.sh(box, "cat", dest).stdout.strip().splitlines():
                yield "    " + line

    def consumers(self):
        """haproxy and nginx fed from the farm /services/web, through real requests (consumercheck.py)."""
        yield from Consumers(self, CheckFailed).checks()

    def cron(self, ticks=2):
        def markers():  # one per tick that ran, made by the leader's run
            return self.zk.get_children(CRON_TICKS) if self.zk.exists(CRON_TICKS) else []

        since = time.time()
        done = markers()
        self.wait("%d more cron ticks" % ticks, lambda: len(markers()) >= len(done) + ticks, 60)
        time.sleep(1)  # let the journals catch up
        ran = {}
        for box in self.boxes:
            for _when, message in self.journal(box, CRON_UNIT, since - 1):
                match = re.search(r"running the job.*tick=(\S+)", message)
                if match:
                    ran.setdefault(match.group(1), []).append(box)
        twice = {tick: boxes for tick, boxes in ran.items() if len(boxes) > 1}
        if twice or not ran:
            raise CheckFailed("cron ticks ran on several boxes: %s" % twice if twice else "no cron run seen")
        # A tick is named by its start (Unix seconds): shown as this machine's clock time.
        yield "cron: leader-only timer, one box per tick: %s" % ", ".join(
            "tick %s on %s" % (time.strftime("%H:%M:%S", time.localtime(int(tick))), boxes[0])
            for tick, boxes in sorted(ran.items())[-4:])

    def denied(self):
        """What the services made belongs to the deployment's credentials: an anonymous client may
        neither read, list, delete nor squat it (docs/security.md, "Secure by default")."""
        def first(path):
            children = sorted(self.zk.get_children(path)) if self.zk.exists(path) else []
            if not children:
                raise CheckFailed("nothing under %s to try" % path)
            return path + "/" + children[0]

        members = [first(LOCK), first(SINGLETON_REGISTRY), first(FARM),
                   self.wait("a cron tick marker", lambda: self.zk.exists(CRON_TICKS) and first(CRON_TICKS), 60)]
        tries = [("read %s" % node, lambda node=node: self.anonymous.get(node)) for node in members + [ROLLING_ZNODE]]
        tries += [("list %s" % path, lambda path=path: self.anonymous.get_children(path))
                  for path in (LOCK, SINGLETON_REGISTRY, FARM, ROLLING_LOCK, CONFIG)]
        squat, record = LOCK + "/lock-0000000000", ROLLING_LOCK + "/failed"
        tries += [("delete %s" % members[0], lambda: self.anonymous.delete(members[0])),
                  ("squat %s" % LOCK, lambda: self.anonymous.create(squat)),
                  ("write %s" % record, lambda: self.anonymous.create(record, b'{"version": 1}')),
                  ("change %s" % ROLLING_ZNODE, lambda: self.anonymous.set(ROLLING_ZNODE, b"greeting = x\n"))]
        allowed = []
        for what, attempt in tries:
            try:
                attempt()
                allowed.append(what)
            except NoAuthError:
                pass
        if allowed:
            for path in (squat, record):  # undo what an open ACL let through
                if any(path in what for what in allowed):
                    self.zk.delete(path)
            raise CheckFailed("an anonymous client could %s" % ", ".join(allowed))
        yield "acls: an anonymous client may not %s, %s, ... (%d tries, all denied)" % (
            tries[0][0], tries[-1][0], len(tries))

    def ports(self):
        """Each server's client ports from its zoo.cfg: bound to one address, and with TLS on, no
        plain port; the plain ports given with --closed refuse connections."""
        seen = []
        for box in sorted(self.boxes):
            cfg = dict(line.split("=", 1) for line in self.sh(box, "cat", ZOO_CFG, check=True).stdout.splitlines()
                       if "=" in line and not line.startswith("#"))
            if "clientPort" in cfg and "clientPortAddress" not in cfg:
                raise CheckFailed("%s: the client port %s listens on every address" % (box, cfg["clientPort"]))
            kept = cfg.get("clientPortAddress") in self.kept_plain
            if "secureClientPort" in cfg and "clientPort" in cfg and not kept:
                raise CheckFailed("%s: TLS is on, and the plain port %s is open too" % (box, cfg["clientPort"]))
            if "secureClientPort" in cfg and "secureClientPortAddress" not in cfg:
                raise CheckFailed("%s: the TLS port %s listens on every address" % (box, cfg["secureClientPort"]))
            seen.append("%s %s" % (box, "TLS only on %s:%s" % (cfg["secureClientPortAddress"], cfg["secureClientPort"])
                                   if "secureClientPort" in cfg else
                                   "plain on %s:%s" % (cfg["clientPortAddress"], cfg["clientPort"])))
        for address in self.closed:
            host, port = address.rsplit(":", 1)
            try:
                socket.create_connection((host, int(port)), timeout=3).close()
            except OSError:
                continue
            raise CheckFailed("the plain client port %s accepts connections" % address)
        closed = " (plain ports %s refuse connections)" % ", ".join(self.closed) if self.closed else ""
        yield "ports: %s%s" % ("; ".join(seen), closed)

    def units(self):
        for box in self.boxes:
            units = "ls /etc/systemd/system/zkherd-*.service /etc/systemd/system/zkherd-*.timer " \
                    "/etc/systemd/system/zookeeper*.service 2>/dev/null"
            names = self.sh(box, "sh", "-c", units).stdout.split()
            if not names:
                raise CheckFailed("%s has no zkherd units" % box)
            out = self.sh(box, "systemd-analyze", "verify", *names)
            noise = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
            if noise:
                raise CheckFailed("systemd-analyze verify on %s: %s" % (box, "; ".join(noise)))
        yield "units: systemd-analyze verify is clean for the %d units on each box" % len(names)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.support.sitecheck",
                                     description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--state", required=True, help="the boxes' state folder (tests/support/boxes.py)")
    parser.add_argument("--zk", required=True, help="the ensemble, host:port,...")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any check fails")
    parser.add_argument("--tls-ca", help="TLS to ZooKeeper: the CA (PEM file)")
    parser.add_argument("--tls-cert", help="the deployment's client certificate (PEM file)")
    parser.add_argument("--tls-key", help="its key (PEM file)")
    parser.add_argument("--anonymous-cert", help="another client certificate, for the anonymous client over TLS")
    parser.add_argument("--anonymous-key", help="its key")
    parser.add_argument("--closed", default="", help="plain client ports (HOST:PORT,...) that must refuse connections")
    parser.add_argument("--kept-plain", default="", help="addresses (A,...) where a plain port next to TLS is kept "
                        "deliberately")
    args = parser.parse_args(argv)
    tls = (args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca else None
    anonymous = (args.tls_ca, args.anonymous_cert, args.anonymous_key) if args.tls_ca else None
    site = Site(args.state, args.zk, tls, anonymous, [a for a in args.closed.split(",") if a],
                [a for a in args.kept_plain.split(",") if a])
    failed = 0
    for check in (site.singleton, site.takeover, site.containment, site.roll, site.export, site.consumers,
                  site.cron, site.denied,
                  site.ports, site.units):
        try:
            for line in check():
                print(line, flush=True)
        except CheckFailed as exc:
            failed += 1
            print("FAILED %s: %s" % (check.__name__, exc), flush=True)
    site.close()
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
