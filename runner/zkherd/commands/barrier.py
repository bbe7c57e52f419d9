"""`zkherd barrier PATH --count N [--timeout S] [-- COMMAND [ARG...]]`: a double barrier (recipes/barrier.py)."""

from __future__ import annotations

import os
import socket

from zkherd.core.argtypes import seconds, znode_path
from zkherd.core.settings import ConfigError

NAMES = ("barrier",)
DEFAULTS = dict(barrier_path=None, count=None, timeout=None, id=None, command=None)


def add_parsers(commands):
    barrier = commands.add(
        "barrier", reports=True,
        usage="zkherd barrier PATH --count N [--timeout S] [-- COMMAND [ARG...]]",
        help="wait until N participants arrive at PATH (a double barrier: enter, run, leave together)",
        description="Enter the double barrier at PATH, wait until --count participants are there, run COMMAND "
                    "if given, then leave together. Exit codes: the command's (or 0), 69 if ZooKeeper cannot be "
                    "reached, 75 if the others do not arrive or leave within --timeout, 77 if ZooKeeper denies access.")
    barrier.add_argument("barrier_path", metavar="PATH")
    barrier.add_argument("--count", type=int, metavar="N", help="how many participants")
    barrier.add_argument("--timeout", type=seconds, metavar="S", help="give up after S seconds (default 60)")
    barrier.add_argument("--id", metavar="TEXT", help="this participant (default host:pid)")


def main(values, settings, log):
    from zkherd.core.loop import Loop
    from zkherd.recipes.barrier import Barrier

    path = znode_path(values["barrier_path"], "barrier path")
    if not values["count"] or int(values["count"]) < 1:
        raise ConfigError("--count N (at least 1) is required")
    timeout = float(values["timeout"] or 60.0)
    ident = values["id"] or "%s:%d" % (socket.gethostname(), os.getpid())
    barrier = Barrier(path, int(values["count"]), ident, timeout, values["command"], log)
    return Loop(settings, log).run(barrier)
