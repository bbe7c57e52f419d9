"""The `zkherd` command line: global options, `--config FILE`, and the commands (commands/*: one
module per command, holding its arguments and its main).

Exit codes: the command's own (see each command), 64 for bad usage or configuration, 69 when
ZooKeeper cannot be reached at start, 75 when a lock was not obtained in time, 77 when ZooKeeper
denies access (ACL, credentials).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys

from zkherd import __version__, telemetry
from zkherd.commands import barrier, cron, drain, elect, farm, render, run, status, tree, znode
from zkherd.common.errors import UserError
from zkherd.core import exits, hostcodec
from zkherd.core.argtypes import file_mode, seconds
from zkherd.core.logs import Log
from zkherd.core.settings import ConfigError, connection_settings, load_file, merge
from zkherd.telemetry import options as telemetry_options

COMMANDS = (run, elect, cron, barrier, farm, render, tree, znode, status, drain)
SECRET_KEYS = ("auth",)  # config file keys whose values no message may repeat
GLOBAL_DEFAULTS = dict(
    zk=None, session_timeout=None, connect_timeout=None, auth=None, auth_file=None, acl=None, tls_ca=None,
    tls_cert=None, tls_key=None, tls_system_ca=False, verbose=0, quiet=0, log_format="text", config=None,
    command=None, reconnect_max_delay=None, reports=False,
)
# Every option's default (the commands agree where they share one: tests/runner/test_logic.py).
DEFAULTS = dict(GLOBAL_DEFAULTS, **telemetry_options.DEFAULTS)
for _command in COMMANDS:
    DEFAULTS.update(_command.DEFAULTS)
BY_NAME = {name: command for command in COMMANDS for name in command.NAMES}
GLOBAL_POINTER = ("The global options (--zk, --session-timeout, --connect-timeout, --auth-file, --acl, TLS, logging, "
                  "--config FILE) are listed by `zkherd --help`; they may also come after the command.")


# Values of the secret options found in argv before parsing (parse()), so that no argparse error
# can repeat them - argparse quotes whole `--opt=VALUE` words in some of its messages.
_ARGV_SECRETS = set()
_OPT_VALUE = re.compile(r"(--?[A-Za-z][\w-]*)=\S+")


def argv_secrets(argv):
    """The values given to --auth (also abbreviated, or as --auth=VALUE) in *argv*, and their
    password parts; too short to be told from other text (under 4 characters), they are left."""
    found = set()
    for i, word in enumerate(argv):
        name, eq, value = str(word).partition("=")
        if len(name) > 3 and "--auth".startswith(name):
            value = value if eq else (str(argv[i + 1]) if i + 1 < len(argv) else "")
            found.update((value, value.partition(":")[2]))
    return {value for value in found if len(value) >= 4}


def redact(text):
    """*text* without a secret from argv."""
    for secret in sorted(_ARGV_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


# argparse looks up a translation of each of its messages through gettext, which imports locale for
# that (half a megabyte of alias tables, kept by a runner that stays up for months) to look for
# translations that Python does not ship: its English strings, directly.
argparse._ = lambda message: message
argparse.ngettext = lambda singular, plural, n: singular if n == 1 else plural
hostcodec.install()  # resolving the ZooKeeper hosts' names without the idna module's 420 KiB


def _columns():
    """shutil.get_terminal_size().columns, without importing shutil (and the three compression
    modules it brings: the runner's memory)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80


class Formatter(argparse.HelpFormatter):
    """argparse makes one for every add_argument(): its own would import shutil each time."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width)


class Parser(argparse.ArgumentParser):
    command_in_config = False  # `command:` is a key of its config file (run, cron)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        """argparse's messages, with `--opt=VALUE` words (a misspelt --auth=...) as `--opt=...`."""
        self.print_usage(sys.stderr)
        self.exit(exits.USAGE_ERROR, "%s: error: %s\n" % (self.prog, _OPT_VALUE.sub(r"\1=...", redact(message))))


def global_options(hidden=False):
    """The options every command takes; *hidden*: accepted, but left out of the help (a command's
    help points to `zkherd --help` instead of repeating them)."""
    parser = Parser(add_help=False, argument_default=argparse.SUPPRESS)

    def group(title):
        return parser if hidden else parser.add_argument_group(title)

    def add(where, *names, **kwargs):
        if hidden:
            kwargs["help"] = argparse.SUPPRESS
        where.add_argument(*names, **kwargs)

    zk = group("ZooKeeper connection (each also from --config FILE)")
    add(zk, "--zk", metavar="HOSTS",
        help="host:port[,host:port...][/chroot] (env ZKHERD_HOSTS; default 127.0.0.1:2181)")
    add(zk, "--session-timeout", type=seconds, metavar="S", help="session timeout asked for (default 10)")
    add(zk, "--connect-timeout", type=seconds, metavar="S",
        help="give up with exit code 69 if ZooKeeper does not answer at start within S (default 10)")
    add(zk, "--reconnect-max-delay", type=seconds, metavar="S",
        help="at most S between two attempts to reach ZooKeeper again (default 1): after an outage, back within "
             "S of ZooKeeper serving again")
    add(zk, "--auth", metavar="USER:PASSWORD",
        help="digest credentials; visible in ps: prefer --auth-file or env ZKHERD_AUTH")
    add(zk, "--auth-file", metavar="FILE", help="file holding USER:PASSWORD (keep it mode 0600)")
    add(zk, "--acl", action="append", metavar="SCHEME:ID:PERMS",
        help="ACL of every znode this command creates, repeatable: auth::rwcda (the credentials given), "
             "digest:USER:BASE64-SHA1:rwcda, ip:10.0.0.0/8:r, world:anyone:r (default: open to all)")
    add(zk, "--tls-ca", metavar="PEM",
        help="TLS to ZooKeeper's secureClientPort: the CA certificates that sign the server's, the only ones trusted")
    add(zk, "--tls-system-ca", action="store_true",
        help="trust the system's CA store for TLS as well (env ZKHERD_TLS_SYSTEM_CA=1)")
    add(zk, "--tls-cert", metavar="PEM", help="client certificate for TLS")
    add(zk, "--tls-key", metavar="PEM", help="client key for TLS")
    out = group("logging")
    add(out, "-v", "--verbose", action="count", help="more detail")
    add(out, "-q", "--quiet", action="count", help="warnings and errors only")
    add(out, "--log-format", choices=["text", "json"], help="text (default) or one JSON object a line")
    add(parser, "--config", metavar="FILE", help="YAML file with any of these options; the command line wins")
    return parser


class Commands:
    """What commands/*.add_parsers() add their (sub)commands with."""

    def __init__(self, subparsers, hidden, listed=False):
        self.subparsers = subparsers
        self.hidden = hidden
        self.listed = listed  # the metavar lists every command added: `join|export|ls|...`

    def add(self, name, command_in_config=False, reports=False, **kwargs):
        """A command's parser; it takes the global options too (hidden in its help). *reports*: a
        long-running command, with metrics and a state file (telemetry/)."""
        kwargs.setdefault("epilog", GLOBAL_POINTER)
        parser = self.subparsers.add_parser(name, parents=[self.hidden], argument_default=argparse.SUPPRESS, **kwargs)
        parser.command_in_config = command_in_config
        if self.listed:
            self.subparsers.metavar = "|".join(self.subparsers.choices)
        if reports:
            telemetry_options.add_options(parser)
            parser.set_defaults(reports=True)
        return parser

    def nested(self, parser, dest):
        """Commands below a command (`farm join`): their name goes to *dest*; the usage lists them all."""
        return Commands(parser.add_subparsers(dest=dest, parser_class=Parser), self.hidden, listed=True)


def build_parser():
    parser = Parser(prog="zkherd", parents=[global_options()], epilog=__doc__.split("\n\n")[1],
                    description="Apache ZooKeeper coordination for plain Unix programs.")
    parser.add_argument("--version", action="version",
                        version="zkherd %s (Python %s)" % (__version__, sys.version.split()[0]))
    commands = Commands(parser.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=Parser),
                        global_options(hidden=True))
    for command in COMMANDS:
        command.add_parsers(commands)
    return parser


def command_parser(parser, namespace):
    """The (sub)parser of the command given: `farm join` -> the parser of join."""
    for name in ("cmd", "farm_cmd", "pool_cmd", "tree_cmd"):
        chosen = getattr(namespace, name, None)
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
        if chosen and subparsers and chosen in subparsers[0].choices:
            parser = subparsers[0].choices[chosen]
    return parser


def file_keys_to_dests(file_values, parser, path):
    """Config file keys are the command's long option names (on_change for --on-change, with dashes
    or underscores), or `command`; anything the command does not take is an error, never ignored."""
    names = {"command": "command"} if getattr(parser, "command_in_config", False) else {}
    for action in parser._actions:  # noqa: SLF001
        for option in action.option_strings:
            if option.startswith("--") and action.dest not in ("help", "version", "config"):
                names[option[2:].replace("-", "_")] = action.dest
    unknown = sorted(set(file_values) - set(names))
    if unknown:
        raise ConfigError("config file %s: %s takes no option(s) %s" % (path, parser.prog, ", ".join(unknown)))
    actions = {action.dest: action for action in parser._actions}  # noqa: SLF001
    values = {}
    for key, value in file_values.items():
        if value is not None:  # `key:` with nothing after it: as if not given
            values[names[key]] = file_value(actions.get(names[key]), key, value, path)
    return values


def file_value(action, key, value, path):
    """A config file value checked and converted as argparse does the command line's (type,
    choices, flags), so that `slots: many` or `data: 5` is a usage error, not a crash later."""
    def bad(what):
        if key in SECRET_KEYS:
            return ConfigError("config file %s: %s %s, got a %s" % (path, key, what, type(value).__name__))
        return ConfigError("config file %s: %s %s, got %r" % (path, key, what, value))

    if action is None:  # command: a list of words, or one
        if isinstance(value, list) and all(isinstance(word, (str, int, float)) for word in value):
            return [str(word) for word in value]
        if isinstance(value, str):
            return [value]
        raise bad("must be a list of words")
    if isinstance(action, argparse._StoreTrueAction):  # noqa: SLF001
        if not isinstance(value, bool):
            raise bad("must be true or false")
        return value
    if isinstance(action, argparse._CountAction):  # noqa: SLF001
        if not isinstance(value, int) or value < 0:
            raise bad("must be a count (0, 1, 2...) or true")
        return int(value)  # verbose: true is -v
    if isinstance(action, argparse._AppendAction):  # noqa: SLF001
        return value if isinstance(value, (list, dict)) else [value]  # the command reads the items
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise bad("must be a single value")
    if action.type is file_mode and not isinstance(value, str):  # YAML reads 0640 as 416, 640 as 640
        raise bad("must be quoted, such as '0640' (YAML reads an unquoted 0640 as the number 416)")
    value = str(value)
    if action.type is not None:
        try:
            value = action.type(value)
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            raise bad("is not valid (%s)" % exc) from None
    if action.choices is not None and value not in action.choices:
        raise bad("must be one of %s" % ", ".join(map(str, action.choices)))
    return value


def late_positionals(parser, namespace, extra):
    """argparse fills an optional positional (`farm get NODE [FIELD]`) only together with the one
    before it: in `farm get FARM --host M FIELD` FIELD is left over. Such words go to the optional
    positionals still empty, in order; returns the words left."""
    extra = list(extra)
    for action in parser._actions:  # noqa: SLF001
        if (extra and not action.option_strings and action.nargs == "?" and not extra[0].startswith("-")
                and getattr(namespace, action.dest, None) is None):
            setattr(namespace, action.dest, extra.pop(0))
    return extra


def unrecognized(parser, namespace, extra, had_separator):
    """Words that no option or argument of the command takes: told with the command's own usage
    (exit 64); for a command that runs a command (run, cron) given without `--`, how to give it."""
    message = "unrecognized arguments: %s" % " ".join(extra)
    if getattr(parser, "command_in_config", False) and not had_separator:
        message += "\nput the command after --: zkherd %s [OPTIONS] -- %s" % (namespace.cmd, " ".join(extra))
    parser.error(message)


def parse(argv):
    """argv -> the merged option dict (command line, then --config file, then defaults), with
    "cmd" the command's name. Everything after the first `--` is the command to run."""
    argv = list(argv)
    _ARGV_SECRETS.update(argv_secrets(argv[:argv.index("--")] if "--" in argv else argv))
    command = None
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1:]
    parser = build_parser()
    namespace, extra = parser.parse_known_args(argv)
    extra = late_positionals(command_parser(parser, namespace), namespace, extra)
    if extra:
        unrecognized(command_parser(parser, namespace), namespace, extra, command is not None)
    if not getattr(namespace, "cmd", None):
        parser.print_help(sys.stderr)
        raise SystemExit(exits.USAGE_ERROR)
    cli = {k: v for k, v in vars(namespace).items() if k != "cmd"}
    if command is not None:
        cli["command"] = command
    file_values = load_file(cli["config"]) if cli.get("config") else {}
    file_values = file_keys_to_dests(file_values, command_parser(parser, namespace), cli.get("config"))
    values = merge(cli, file_values, DEFAULTS)
    values["cmd"] = namespace.cmd
    return values


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        values = parse(argv)
        log = Log(values["log_format"], (values["verbose"] or 0) - (values["quiet"] or 0))
        settings = connection_settings(values)
        if not values["reports"]:
            return BY_NAME[values["cmd"]].main(values, settings, log)
        reporter = telemetry.setup(values, log)
        try:
            return BY_NAME[values["cmd"]].main(values, settings, log)
        finally:
            reporter.close()
    except (ConfigError, UserError) as exc:
        sys.stderr.write("zkherd: %s\n" % redact(str(getattr(exc, "message", exc))))
        return exits.USAGE_ERROR
    except KeyboardInterrupt:  # Ctrl-C before there was anything to stop
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
