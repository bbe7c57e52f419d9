"""`zkdo` (bretthoerner/zkdo) spelled as before, run as `zkherd run`.

zkdo's flags, with one or two dashes as Go's flag package takes them: -zk -> --zk, -zk-timeout
SECONDS -> --connect-timeout, -lock PATH -> --lock PATH, -noblock -> --no-wait (exit 75 when the lock
is held), -register PATH -> --register PATH, -data TEXT -> --data TEXT; the command follows `--`, or
the first word that is not a flag. As zkdo, at least one of --lock and --register, and --data with
--register.
"""

from __future__ import annotations

import sys

from zkherd.compat import common


def parser():
    p = common.Parser(prog="zkdo", description=common.FRONT_END % ("zkdo", "zkdo", "run", "zkdo"),
                      usage="zkdo [--zk HOSTS] [--lock PATH [--noblock]] [--register PATH --data TEXT] "
                            "[--] COMMAND [ARG...]")
    p.add_argument("-zk", "--zk", metavar="HOSTS",
                   help="the comma separated ZK connection string (default: env ZKHERD_HOSTS, else 127.0.0.1:2181)")
    p.add_argument("-zk-timeout", "--zk-timeout", metavar="SECONDS",
                   help="the ZK connection timeout in seconds (zkherd --connect-timeout)")
    p.add_argument("-lock", "--lock", metavar="PATH", help="path of lock to hold before running cmd")
    p.add_argument("-noblock", "--noblock", action="store_true",
                   help="instead of waiting for the lock, exit immediately (zkherd --no-wait: exit 75)")
    p.add_argument("-register", "--register", metavar="PATH", help="path of ephemeral node to register")
    p.add_argument("-data", "--data", metavar="TEXT", help="string data to register in ephemeral node")
    return p


def split(p, argv):
    """Go's flag package: flags end at `--` or at the first word that is not a flag -> (flags, command)."""
    takes_value = {option for action in p._actions if action.nargs is None  # noqa: SLF001
                   for option in action.option_strings}
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return argv[:i], argv[i + 1:]
        if not word.startswith("-") or word == "-":
            break
        i += 2 if word in takes_value else 1
    return argv[:i], argv[i:]


def translate(argv):
    """zkdo's argv -> zkherd's."""
    p = parser()
    flags, command = split(p, list(argv))
    args = p.parse_args(flags)
    if not args.lock and not args.register:
        p.error("at least one of --lock or --register is required")
    if args.register and not args.data:
        p.error("must provide --data to set with --register")
    if args.data and not args.register:
        p.error("must provide --register path where --data will be set")
    if not command:
        p.error("a command is required")
    if args.data and args.data.startswith("@"):
        common.unsupported(p, "--data @...", "zkherd run reads --data @FILE from a file: put the text in a file, "
                           "and give zkherd run --data @FILE")
    out = ["--zk", args.zk] if args.zk else []
    out += ["--connect-timeout", args.zk_timeout] if args.zk_timeout else []
    out.append("run")
    out += ["--lock", args.lock] if args.lock else []
    out += ["--no-wait"] if args.noblock else []
    out += ["--register", args.register, "--data", args.data] if args.register else []
    return out + ["--"] + command


def main(argv=None):
    common.run(translate(sys.argv[1:] if argv is None else argv))
