"""`zkherd elect`, `zkherd is-leader`, `zkherd pool ls`: leader election (recipes/election.py)."""

from __future__ import annotations

import socket
import sys

from zkherd.core.argtypes import seconds, znode_path
from zkherd.core.settings import ConfigError

NAMES = ("elect", "is-leader", "pool")
DEFAULTS = dict(election=None, id=None, timeout=None, pool_cmd=None, lease_dir=None)


def add_parsers(commands):
    elect = commands.add("elect", reports=True, help="join a pool and hold candidacy for its leadership (a service)",
                         description="Join the pool at --election PATH and stay in it until stopped; the member "
                                     "that joined first leads. Joins again after a session expiry.")
    election_options(elect, with_timeout=False)
    lease_dir_option(elect)
    leader = commands.add("is-leader", help="exit 0 if this host leads the pool, 1 if not, 2 if it cannot be told",
                          description="Exit 0 if the member with --id (default: the host name) leads the pool, 1 if "
                                      "not, 2 if ZooKeeper does not answer within --timeout.")
    election_options(leader)
    pool = commands.add("pool", help="pool ls: the members of a pool and who leads")
    pool.add_argument("pool_cmd", choices=["ls"], metavar="ls")
    election_options(pool)


def election_options(parser, with_timeout=True):
    parser.add_argument("--election", metavar="PATH", help="the pool's znode")
    parser.add_argument("--id", metavar="TEXT", help="this member's id (default: the host name)")
    if with_timeout:
        parser.add_argument("--timeout", type=seconds, metavar="S", help="answer within S seconds (default 5)")


def lease_dir_option(parser):
    parser.add_argument("--lease-dir", metavar="DIR",
                        help="folder of the leadership leases that `elect` writes and `cron` reads (default "
                             "ZKHERD_RUN_DIR, else /run/zkherd-leases for root, else $XDG_RUNTIME_DIR/zkherd)")


def election_path(values):
    if not values["election"]:
        raise ConfigError("--election PATH is required")
    return znode_path(values["election"], "--election path")


def main(values, settings, log):
    from zkherd.recipes import election

    path = election_path(values)
    ident = values["id"] or socket.gethostname()
    if values["cmd"] == "elect":
        from zkherd.core.loop import Loop

        return Loop(settings, log).run(election.Member(path, ident, log, values["lease_dir"]))
    settings.connect_timeout = float(values["timeout"] or 5.0)
    if values["cmd"] == "is-leader":
        return election.is_leader(path, ident, settings, log)
    return election.pool_ls(path, settings, sys.stdout)
