"""Make a running ZooKeeper ensemble's membership the wanted one, by dynamic reconfiguration.

    zk_reconfig.py --hosts HOST:PORT,... --members JSON [--leave] [--timeout S] [--join-wait S]
                   [--tls-ca F --tls-cert F --tls-key F]

The super user's password comes on standard input (reconfig is allowed to `super` only). JSON is
the wanted ensemble: [{"id": 1, "spec": "ADDR:QUORUM:ELECTION:participant[;CLIENT_ADDR:PORT]",
"endpoint": "HOST:PORT"}, ...] (endpoint: where this script reaches the server, as --hosts).
The servers to add must already run with the current configuration plus themselves: each must
answer `srvr` at its endpoint as follower/observer within --join-wait seconds, else the change is
refused (adding a server that does not run would leave the ensemble bigger with fewer up). With
--leave only removals are made (a member leaving: servers added in the same play are not started
yet). One incremental `reconfig` adds and removes what differs, against the version read just
before (a concurrent change fails it rather than being overwritten). A change that could lose the
quorum is refused: the staying servers that answer `srvr` as leader or follower must be a majority
of the current ensemble and of the new one (a server already down counts for nothing).
Prints one JSON line {"changed", "joining", "leaving", "version"}; exit status 0, or 1 with a
message, or 64 on bad arguments. Runs on the controller with kazoo, as the collection's modules do.
"""

import argparse
import json
import re
import socket
import ssl
import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, KazooException, NewConfigNoQuorumError, ReconfigInProcessError
from kazoo.handlers.threading import KazooTimeoutError
from zk_mode import read_answer  # the role's files sit together (run from files/)


def parse_config(text):
    """{id: spec} and the version of a /zookeeper/config answer."""
    servers, version = {}, None
    for line in text.splitlines():
        key, _sep, value = line.partition("=")
        if key.startswith("server."):
            servers[int(key[len("server."):])] = value.strip()
        elif key == "version":
            version = int(value, 16)
    return servers, version


def plan(current, wanted, up):
    """(joining, leaving) lists, or ValueError when the change could lose the quorum. UP: the ids
    of the servers that answer as members now."""
    # Membership only: a server's addresses are compared by nobody (ZooKeeper normalizes them); moving
    # a server to another address is a removal, then an addition under another id.
    joining = sorted(i for i in wanted if i not in current)
    leaving = sorted(i for i in current if i not in wanted)
    staying = len([i for i in current if i in wanted and i in up])
    down = sorted(i for i in current if i in wanted and i not in up)
    note = " (servers %s do not answer as members)" % down if down else ""
    if leaving and staying < len(current) // 2 + 1:
        raise ValueError("refusing to remove servers %s of the %d in the ensemble %s: the %d that stay and answer "
                         "are no majority of it%s - remove fewer at a time, bring the others back first"
                         % (leaving, len(current), sorted(current), staying, note))
    if joining and staying < len(wanted) // 2 + 1:
        raise ValueError("refusing to add servers %s at once: the %d that stay and answer are no majority of the new "
                         "ensemble of %d%s - add fewer at a time" % (joining, staying, len(wanted), note))
    return joining, leaving


def tls_context(args):
    """The TLS context of a four-letter word on a TLS endpoint (kazoo's: the CA, no host name check)."""
    if not args.tls_ca:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(args.tls_ca)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    return context


def mode(endpoint, context):
    """The server's mode from `srvr` at HOST:PORT (over TLS with CONTEXT), or "down"."""
    host, _sep, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=3) as raw:
            sock = context.wrap_socket(raw) if context else raw
            sock.sendall(b"srvr")
            answer = read_answer(sock)
    except (OSError, ValueError):
        return "down"
    found = re.search(r"^Mode: (\S+)", answer.decode("utf-8", "replace"), re.MULTILINE)
    return found.group(1) if found else "not-serving"


def wait_joining(joining, endpoints, context, seconds):
    """ValueError unless every joining server answers as a follower or observer within SECONDS."""
    deadline = time.monotonic() + seconds
    while True:
        modes = {i: mode(endpoints[i], context) for i in joining}
        missing = {i: m for i, m in modes.items() if m not in ("follower", "observer")}
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise ValueError("refusing to add servers %s: they do not run as followers of this ensemble (%s) - "
                             "start them first (with the current ensemble plus themselves)"
                             % (sorted(missing), ", ".join("%d at %s: %s" % (i, endpoints[i], m)
                                                           for i, m in sorted(missing.items()))))
        time.sleep(0.5)


def parse_members(text):
    """{id: member} of the --members JSON, or ValueError."""
    try:
        members = {int(member["id"]): member for member in json.loads(text)}
        for member in members.values():
            if not isinstance(member["spec"], str):
                raise TypeError("spec")
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError("--members must be a JSON list of {\"id\", \"spec\", \"endpoint\"}: %s %s"
                         % (type(exc).__name__, exc)) from None
    return members


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print("zk_reconfig: %s" % message, file=sys.stderr)
        sys.exit(64)


def main(argv):
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--members", required=True, help="the wanted ensemble (JSON)")
    parser.add_argument("--leave", action="store_true", help="remove only, add nobody")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--join-wait", type=float, default=30.0, help="seconds for joining servers to answer")
    parser.add_argument("--tls-ca")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args(argv)
    try:
        members = parse_members(args.members)
        context = tls_context(args)
    except (ValueError, OSError) as exc:
        print("zk_reconfig: %s" % exc, file=sys.stderr)
        return 64
    wanted = {i: member["spec"] for i, member in members.items()}
    endpoints = {i: str(member.get("endpoint", "")) for i, member in members.items()}
    password = sys.stdin.read()
    tls = dict(use_ssl=True, ca=args.tls_ca, certfile=args.tls_cert, keyfile=args.tls_key) if args.tls_ca else {}
    client = KazooClient(hosts=args.hosts, timeout=30.0, **tls)
    try:
        client.start(timeout=args.timeout)
        client.add_auth("digest", "super:" + password)
        current, version = parse_config(client.get("/zookeeper/config")[0].decode())
        if args.leave:  # the servers added in this play are not started yet: remove only
            wanted = {i: spec for i, spec in current.items() if i in wanted}
        up = {i for i in current if i in endpoints and mode(endpoints[i], context) in ("leader", "follower")}
        joining, leaving = plan(current, wanted, up)
        if (joining or leaving) and not password:
            raise ValueError("servers %s to add, %s to remove: reconfig needs the super user - set "
                             "zookeeper_super_password" % (joining, leaving))
        if joining:
            wait_joining(joining, endpoints, context, args.join_wait)
        if joining or leaving:
            data = client.reconfig(joining=",".join("server.%d=%s" % (i, wanted[i]) for i in joining) or None,
                                   leaving=",".join(map(str, leaving)) or None, new_members=None,
                                   from_config=-1 if version is None else version)[0]
            version = parse_config(data.decode())[1]
    except ValueError as exc:
        print("zk_reconfig: %s" % exc)
        return 1
    except (NewConfigNoQuorumError, ReconfigInProcessError, BadVersionError) as exc:
        print("zk_reconfig: ZooKeeper refused the change (%s): %s - are the new servers running, is another "
              "change under way?" % (type(exc).__name__, exc))
        return 1
    except (KazooException, KazooTimeoutError, OSError) as exc:
        print("zk_reconfig: cannot reconfigure the ensemble at %s: %s %s" % (args.hosts, type(exc).__name__, exc))
        return 1
    finally:
        client.stop()
        client.close()
    print(json.dumps({"changed": bool(joining or leaving), "joining": joining, "leaving": leaving,
                      "version": version}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
