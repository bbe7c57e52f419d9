"""`zkherd cron --election PATH [options] -- COMMAND [ARG...]`: a leader-only cron job (recipes/cron.py)."""

from __future__ import annotations

import argparse
import socket

from zkherd.commands.elect import election_options, election_path, lease_dir_option
from zkherd.commands.run import check_containment, containment_option
from zkherd.common import paths
from zkherd.core.argtypes import parse_signal, seconds
from zkherd.core.settings import ConfigError

NAMES = ("cron",)
DEFAULTS = dict(election=None, id=None, timeout=None, name=None, tick=60.0, catch_up=0.0, if_running="skip",
                stop_signal="TERM", stop_timeout=10.0, command=None, containment="auto", lease_dir=None)


def add_parsers(commands):
    cron = commands.add(
        "cron", command_in_config=True, reports=True,
        usage="zkherd cron --election PATH [options] -- COMMAND [ARG...]",
        help="run a command now only if this host leads the pool, once per tick (for crontabs)",
        description="Run COMMAND now if this host (--id, default the host name) leads the pool of `zkherd elect` "
                    "members at --election, and this tick has not run yet. Exit codes: 0 when not the leader or "
                    "the tick already ran, the command's own, 69 if ZooKeeper does not answer within --timeout, "
                    "75 if the job still runs on this host, 76 if leadership was lost while it ran, 77 if ZooKeeper "
                    "denies access.")
    election_options(cron)
    cron.add_argument("--name", metavar="NAME", help="the job's name (default: from the command line)")
    cron.add_argument("--tick", type=seconds, metavar="S", help="length of a tick: one run per tick (default 60)")
    cron.add_argument("--catch-up", type=seconds, metavar="S",
                      help="if this host does not lead, wait until S seconds after the tick's start for the "
                           "leadership (a leader that died) and run the tick if nobody did (default 0: do not wait; "
                           "S must be less than --tick)")
    cron.add_argument("--if-running", choices=["skip", "wait"],
                      help="if the job still runs on this host: refuse with 75 (skip, default) or wait for it")
    cron.add_argument("--stop-signal", metavar="SIG", help="signal that stops the job (default TERM)")
    cron.add_argument("--stop-timeout", type=seconds, metavar="S", help="SIGKILL S seconds later (default 10)")
    lease_dir_option(cron)
    containment_option(cron)


def main(values, settings, log):
    from zkherd.recipes import cron

    opts = argparse.Namespace(**values)
    opts.election = election_path(values)
    opts.id = values["id"] or socket.gethostname()
    if opts.name is not None:  # the job's tick markers are named after it
        paths.validate_name(opts.name)
    if not opts.command:
        raise ConfigError("no command to run: give it after `--`")
    opts.stop_signal = parse_signal(opts.stop_signal)
    opts.stop_timeout, opts.tick, opts.catch_up = float(opts.stop_timeout), float(opts.tick), float(opts.catch_up or 0)
    if opts.tick < 1 or opts.tick != int(opts.tick):  # the markers are named by the tick's start in seconds
        raise ConfigError("--tick must be a whole number of seconds, 1 or more")
    if opts.catch_up >= opts.tick:  # the next tick's run must not find this one still waiting
        raise ConfigError("--catch-up must be less than --tick")
    check_containment(opts)
    opts.timeout = float(values["timeout"] or 5.0)
    settings.connect_timeout = opts.timeout
    return cron.run(opts, settings, log)
