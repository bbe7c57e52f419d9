"""What the drop-ins share: a parser whose errors exit 64 and name the zkherd equivalent, and the
one way to hand the translated command line to zkherd."""

from __future__ import annotations

import argparse
import sys

from zkherd.core import exits

FRONT_END = ("%s is a compatibility front end for zkherd: it translates %s's options to `zkherd %s` and runs "
             "zkherd in this process (docs/migration.md). Options of %s that zkherd does not take exit 64 and "
             "name what to use instead.")


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors exiting 64 (zkherd's code for bad usage) and pointing to zkherd."""

    zkherd_command = "run"

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(exits.USAGE_ERROR, "%s: error: %s\n(zkherd's own options: zkherd %s --help)\n"
                  % (self.prog, message, self.zkherd_command))


def unsupported(parser, option, instead):
    """An option of the old tool that zkherd does not mirror: exit 64, saying what to use instead."""
    parser.exit(exits.USAGE_ERROR, "%s: %s is not supported by this compatibility front end; %s\n"
                % (parser.prog, option, instead))


def refuse(parser, table):
    """An action for each option in *table* ({option: what to use instead}) that refuses it."""
    class Refuse(argparse.Action):
        def __call__(self, parser_, namespace, values, option_string=None):
            unsupported(parser_, option_string, table[self.dest])

    for option in table:
        parser.add_argument(option, dest=option, nargs="?", action=Refuse, help=argparse.SUPPRESS)


def attach_values(parser, argv):
    """`--opt VALUE` -> `--opt=VALUE` for each option that takes a value, so that a VALUE starting with `-`
    is the option's value, as Ruby's optparse and Go's flag package read it (argparse would refuse it)."""
    takes_value = {option: action.option_strings[-1] for action in parser._actions  # noqa: SLF001
                   if action.nargs is None and action.option_strings for option in action.option_strings}
    out, words = [], iter(argv)
    for word in words:
        value = next(words, None) if word in takes_value else None
        out.append(word if value is None else "%s=%s" % (takes_value[word], value))
        if word == "--":
            out += words
    return out


def run(argv):
    """Run zkherd with *argv* in this process (no second process tree) and exit with its code."""
    from zkherd import cli  # late: a usage error of the front end costs no import of the runner

    sys.exit(cli.main(list(argv)))
