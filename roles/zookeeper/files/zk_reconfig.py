"""Make a running ZooKeeper ensemble's membership the wanted one, by dynamic reconfiguration.

    zk_reconfig.py --hosts HOST:PORT,... --members JSON [--timeout S] [--tls-ca F --tls-cert F --tls-key F]

The super user's password comes on standard input (reconfig is allowed to `super` only). JSON is
the wanted ensemble: [{"id": 1, "spec": "ADDR:QUORUM:ELECTION:participant[;CLIENT_ADDR:PORT]"}, ...].
The servers to add must already run with the current configuration plus themselves. One
incremental `reconfig` adds and removes what differs, against the version read just before (a
concurrent change fails it rather than being overwritten). A change that could lose the quorum is
refused: the servers that stay must be a majority of the current ensemble and of the new one.
Prints one JSON line {"changed", "joining", "leaving", "version"}; exit status 0, or 1 with a
message. Runs on the controller with kazoo, as the collection's modules do.
"""

import argparse
import json
import sys

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, KazooException, NewConfigNoQuorumError, ReconfigInProcessError
from kazoo.handlers.threading import KazooTimeoutError


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


def plan(current, wanted):
    """(joining, leaving) lists, or ValueError when the change could lose the quorum."""
    # Membership only: a server's addresses are compared by nobody (ZooKeeper normalizes them); moving
    # a server to another address is a removal, then an addition under another id.
    joining = sorted(i for i in wanted if i not in current)
    leaving = sorted(i for i in current if i not in wanted)
    staying = len([i for i in current if i in wanted])
    if leaving and staying < len(current) // 2 + 1:
        raise ValueError("refusing to remove servers %s of the %d running at once: the %d that stay are no majority "
                         "of the current ensemble %s - remove at most %d at a time"
                         % (leaving, len(current), staying, sorted(current), (len(current) - 1) // 2))
    if joining and staying < len(wanted) // 2 + 1:
        raise ValueError("refusing to add servers %s at once: the %d that stay are no majority of the new ensemble "
                         "of %d - add fewer at a time" % (joining, staying, len(wanted)))
    return joining, leaving


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--members", required=True, help="the wanted ensemble (JSON)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--tls-ca")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args(argv)
    wanted = {int(member["id"]): member["spec"] for member in json.loads(args.members)}
    password = sys.stdin.read()
    tls = dict(use_ssl=True, ca=args.tls_ca, certfile=args.tls_cert, keyfile=args.tls_key) if args.tls_ca else {}
    client = KazooClient(hosts=args.hosts, timeout=30.0, **tls)
    try:
        client.start(timeout=args.timeout)
        client.add_auth("digest", "super:" + password)
        current, version = parse_config(client.get("/zookeeper/config")[0].decode())
        joining, leaving = plan(current, wanted)
        if (joining or leaving) and not password:
            raise ValueError("servers %s to add, %s to remove: reconfig needs the super user - set "
                             "zookeeper_super_password" % (joining, leaving))
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
