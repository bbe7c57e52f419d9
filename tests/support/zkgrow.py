"""Molecule's check that growing the ensemble (molecule/default/grow.yml) loses neither the quorum
nor a runner's session.

    python -m tests.support.zkgrow start --state DIR --zk HOSTS [--tls-ca F --tls-cert F --tls-key F]
    python -m tests.support.zkgrow check --state DIR --zk HOSTS [...]

`start` notes the sessions that own ephemeral znodes (the runners' locks, registrations,
elections), then leaves a writer running: it sets /zkgrow-probe every 0.1 s, each write without
retry, and counts the failed ones and the slowest. `check` stops the writer and fails (exit
status 1) when the ensemble has not --servers members, when a write failed or took longer than
5 s, when a noted session no longer owns a znode, or when a runner on a box logged a session
expiry since `start`. Results in DIR/zkgrow.json. The super user's password comes in the
environment variable ZKGROW_PASSWORD, never on a command line (ps would show it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kazoo.client import KazooClient

PROBE, MAX_WRITE = "/zkgrow-probe", 5.0
EXPIRED = "the ZooKeeper session expired"


def connect(args):
    tls = dict(use_ssl=True, ca=args.tls_ca, certfile=args.tls_cert, keyfile=args.tls_key) if args.tls_ca else {}
    auth = [("digest", "super:" + os.environ["ZKGROW_PASSWORD"])]
    client = KazooClient(hosts=args.zk, timeout=10, auth_data=auth, **tls)
    client.start(timeout=60)
    return client


def owners(client, path="/"):
    """The session ids that own ephemeral znodes under *path*."""
    found = set()
    for child in client.get_children(path):
        full = path.rstrip("/") + "/" + child
        if full == "/zookeeper":
            continue
        stat = client.exists(full)
        if stat is None:
            continue
        if stat.ephemeralOwner:
            found.add(stat.ephemeralOwner)
        elif stat.numChildren:
            found |= owners(client, full)
    return found


def write_loop(args, result_file):
    client = connect(args)
    client.ensure_path(PROBE)
    stats = {"writes": 0, "failed": 0, "slowest": 0.0, "errors": []}
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    while not stopping:
        began = time.monotonic()
        try:
            client.set(PROBE, str(stats["writes"]).encode())
        except Exception as exc:  # noqa: BLE001 - any failed write counts
            stats["failed"] += 1
            stats["errors"] = (stats["errors"] + ["%s: %s" % (type(exc).__name__, exc)])[-5:]
        stats["writes"] += 1
        stats["slowest"] = max(stats["slowest"], time.monotonic() - began)
        time.sleep(0.1)
    result_file.write_text(json.dumps(stats))
    client.stop()
    client.close()


def boxes(state):
    return {name: box["pid"] for name, box in json.loads((Path(state) / "boxes.json").read_text()).items()}


def expiries(state, since):
    """Runner log lines about an expired session on any box since *since* (epoch seconds)."""
    lines = []
    for name, pid in boxes(state).items():
        done = subprocess.run(["nsenter", "-t", str(pid), "-a", "journalctl", "--no-pager", "--output=cat",
                               "--since=@%d" % int(since), "--grep=" + EXPIRED], capture_output=True, text=True,
                              timeout=60, check=False)
        lines += ["%s: %s" % (name, line) for line in done.stdout.splitlines() if EXPIRED in line]
    return lines


def start(args, state):
    client = connect(args)
    sessions = sorted(owners(client))
    client.stop()
    client.close()
    (state / "zkgrow-writes.json").unlink(missing_ok=True)
    with open(state / "zkgrow.log", "w") as log:
        writer = subprocess.Popen([sys.executable, "-m", "tests.support.zkgrow", "write", *sys.argv[2:]],
                                  start_new_session=True, stdout=subprocess.DEVNULL, stderr=log)
    (state / "zkgrow.json").write_text(json.dumps({"sessions": sessions, "writer": writer.pid, "since": time.time()}))
    print("%d runner sessions noted, writer %d" % (len(sessions), writer.pid))
    return 0


def check(args, state):
    noted = json.loads((state / "zkgrow.json").read_text())
    os.kill(noted["writer"], signal.SIGTERM)
    deadline = time.monotonic() + 30
    while not (state / "zkgrow-writes.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # the writer writes its counts as it stops
    writes = json.loads((state / "zkgrow-writes.json").read_text())
    client = connect(args)
    lost = sorted(set(noted["sessions"]) - owners(client))
    servers = sorted(line.split("=")[0] for line in client.get("/zookeeper/config")[0].decode().splitlines()
                     if line.startswith("server."))
    client.stop()
    client.close()
    result = dict(noted, writes=writes, lost_sessions=lost, expiries=expiries(state, noted["since"]), servers=servers,
                  seconds=round(time.time() - noted["since"], 1))
    (state / "zkgrow.json").write_text(json.dumps(result))
    print(json.dumps(result))
    bad = (writes["failed"] or writes["slowest"] > MAX_WRITE or lost or result["expiries"] or not noted["sessions"]
           or (args.servers and len(servers) != args.servers))
    return 1 if bad else 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.support.zkgrow")
    parser.add_argument("action", choices=["start", "check", "write"])
    parser.add_argument("--state", required=True, type=Path)
    parser.add_argument("--zk", required=True)
    parser.add_argument("--servers", type=int, help="check: the ensemble's members by then")
    parser.add_argument("--tls-ca")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args(argv)
    if args.action == "write":
        write_loop(args, args.state / "zkgrow-writes.json")
        return 0
    return (start if args.action == "start" else check)(args, args.state)


if __name__ == "__main__":
    sys.exit(main())
