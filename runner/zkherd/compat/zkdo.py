"""`zkdo` (bretthoerner/zkdo) spelled as before, run as `zkherd run`.

zkdo's flags, parsed as Go's flag package did (go_flags): -zk -> --zk, -zk-timeout SECONDS ->
--session-timeout (zk.Dial's timeout is the session timeout), -lock PATH -> --lock PATH, -noblock[=BOOL]
-> --no-wait (exit 75 when the lock is held), -register PATH -> --register PATH, -data TEXT -> --data
TEXT; the command follows `--`, or the first word that is not a flag. As zkdo, at least one of --lock
and --register, and --data with --register.
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
                   help="the ZK session timeout in seconds, zkdo's \"connection timeout\" (zkherd --session-timeout; "
                        "zkdo's default was 5, zkherd's is 10)")
    p.add_argument("-lock", "--lock", metavar="PATH", help="path of lock to hold before running cmd")
    p.add_argument("-noblock", "--noblock", action="store_true",
                   help="instead of waiting for the lock, exit immediately (zkherd --no-wait: exit 75)")
    p.add_argument("-register", "--register", metavar="PATH", help="path of ephemeral node to register")
    p.add_argument("-data", "--data", metavar="TEXT", help="string data to register in ephemeral node")
    return p


GO_TRUE, GO_FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")


def go_flags(p, argv):
    """Go's flag package -> (argparse's words, the command). Flags end after `--`, or at `-` or the first
    word that is not a flag; a flag's value is `=VALUE` or the next word, whatever it starts with
    (`-data -x`); a boolean takes only `=VALUE`, in strconv.ParseBool's spellings (`-noblock=false`)."""
    actions = {option.lstrip("-"): action for action in p._actions for option in action.option_strings}  # noqa: SLF001
    out, i = [], 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        word, i = argv[i], i + 1
        if word == "--":
            break
        name, has_value, value = word[2 if word.startswith("--") else 1:].partition("=")
        action = actions.get(name)
        if action is None:
            out.append(word)  # argparse: "unrecognized arguments" (64)
        elif action.nargs == 0:  # -noblock, -h/-help
            if has_value and value not in GO_TRUE + GO_FALSE:
                p.error("invalid boolean value %r for -%s (Go's spellings: true, false, 1, 0, t, f)" % (value, name))
            out += [action.option_strings[-1]] if value not in GO_FALSE else []
        elif has_value:
            out.append("%s=%s" % (action.option_strings[-1], value))
        elif i < len(argv):
            out.append("%s=%s" % (action.option_strings[-1], argv[i]))
            i += 1
        else:
            out.append(word)  # argparse: "expected one argument" (64)
    return out, argv[i:]


def translate(argv):
    """zkdo's argv -> zkherd's."""
    p = parser()
    flags, command = go_flags(p, list(argv))
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
    out += ["--session-timeout", args.zk_timeout] if args.zk_timeout else []  # gozk's Dial timeout: the session's
    out.append("run")
    out += ["--lock", args.lock] if args.lock else []
    out += ["--no-wait"] if args.noblock else []
    out += ["--register", args.register, "--data", args.data] if args.register else []
    return out + ["--"] + command


def main(argv=None):
    common.run(translate(sys.argv[1:] if argv is None else argv))
