"""The `zkherd` command line: global options, `--config FILE`, and the commands.

Exit codes: the command's own (see each command), 64 for bad usage or configuration, 69 when
ZooKeeper cannot be reached at start, 75 when a lock was not obtained in time, 77 when ZooKeeper
denies access (ACL, credentials).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import sys

from zkherd import __version__
from zkherd.common import paths
from zkherd.common.errors import UserError
from zkherd.common.tree import MAX_VALUE_BYTES
from zkherd.core.logs import Log
from zkherd.core.loop import Loop
from zkherd.core.settings import ConfigError, connection_settings, load_file, merge, read_bounded

EX_USAGE = 64
SECRET_KEYS = ("auth",)  # config file keys whose values no message may repeat

DEFAULTS = dict(
    zk=None, session_timeout=None, connect_timeout=None, auth=None, auth_file=None, acl=None, tls_ca=None,
    tls_cert=None, tls_key=None, tls_system_ca=False, verbose=0, quiet=0, log_format="text", config=None,
    lock=None, slots=1, no_wait=False, wait_timeout=None, register=None, data="", id=None,
    stop_signal="TERM", stop_timeout=10.0, command=None,
    mirror=None, mirror_dir=None, check_cmd=None, check_timeout=30.0, on_change="restart", reload_signal="HUP",
    change_delay=0.2,
    rolling_lock=None, rolling_slots=1, on_failure="pause",
    health=None, health_delay=5.0, health_interval=10.0, health_timeout=10.0, health_rise=1, health_fall=2,
    alert=None, register_when="started",
    election=None, timeout=None, pool_cmd=None, name=None, tick=60.0, if_running="skip",
    barrier_path=None, count=None, farm_cmd=None, farm_path=None, fields=None, field=None, value=None,
    dest=None, format="json", template=None, filter=None, on_change_cmd=None, min_members=0, once=False,
    conf=None, conf_format=None, poll=None, file_mode=0o644,
    reconnect_max_delay=None,
)


def seconds(text):
    """A duration option: a finite number of seconds, 0 or more (not nan, inf or -1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number of seconds" % (text,)) from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("%r: seconds must be a finite number, 0 or more" % (text,))
    return value


def file_mode(text):
    """--file-mode: permission bits in octal (0640, 640 or 0o640), at most 0777 - no set-id or sticky bit."""
    digits = str(text).strip().lower()
    digits = digits[2:] if digits.startswith("0o") else digits
    if not digits or len(digits) > 4 or any(c not in "01234567" for c in digits):
        raise argparse.ArgumentTypeError("%r is not an octal file mode such as 0644 or 0600" % (text,))
    mode = int(digits, 8)
    if mode > 0o777:
        raise argparse.ArgumentTypeError("%r: only permission bits (at most 0777), no set-id or sticky bits" % (text,))
    return mode


FILE_MODE_HELP = "mode of the files zkherd creates, in octal (default 0644; a file in place keeps its own)"


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


class Parser(argparse.ArgumentParser):
    def error(self, message):
        """argparse's messages, with `--opt=VALUE` words (a misspelt --auth=...) as `--opt=...`."""
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, "%s: error: %s\n" % (self.prog, _OPT_VALUE.sub(r"\1=...", redact(message))))


def common_options():
    common = Parser(add_help=False, argument_default=argparse.SUPPRESS)
    zk = common.add_argument_group("ZooKeeper connection (each also from --config FILE)")
    zk.add_argument("--zk", metavar="HOSTS",
                    help="host:port[,host:port...][/chroot] (env ZKHERD_HOSTS; default 127.0.0.1:2181)")
    zk.add_argument("--session-timeout", type=seconds, metavar="S", help="session timeout asked for (default 10)")
    zk.add_argument("--connect-timeout", type=seconds, metavar="S",
                    help="give up with exit code 69 if ZooKeeper does not answer at start within S (default 10)")
    zk.add_argument("--reconnect-max-delay", type=seconds, metavar="S",
                    help="at most S between two attempts to reach ZooKeeper again (default 1): after an outage, "
                         "back within S of ZooKeeper serving again")
    zk.add_argument("--auth", metavar="USER:PASSWORD",
                    help="digest credentials; visible in ps: prefer --auth-file or env ZKHERD_AUTH")
    zk.add_argument("--auth-file", metavar="FILE", help="file holding USER:PASSWORD (keep it mode 0600)")
    zk.add_argument("--acl", action="append", metavar="SCHEME:ID:PERMS",
                    help="ACL of every znode this command creates, repeatable: auth::rwcda (the credentials "
                         "given), digest:USER:BASE64-SHA1:rwcda, ip:10.0.0.0/8:r, world:anyone:r "
                         "(default: open to all)")
    zk.add_argument("--tls-ca", metavar="PEM",
                    help="TLS to ZooKeeper's secureClientPort: the CA certificates that sign the server's, the only "
                         "ones trusted")
    zk.add_argument("--tls-system-ca", action="store_true",
                    help="trust the system's CA store for TLS as well (env ZKHERD_TLS_SYSTEM_CA=1)")
    zk.add_argument("--tls-cert", metavar="PEM", help="client certificate for TLS")
    zk.add_argument("--tls-key", metavar="PEM", help="client key for TLS")
    out = common.add_argument_group("logging")
    out.add_argument("-v", "--verbose", action="count", help="more detail")
    out.add_argument("-q", "--quiet", action="count", help="warnings and errors only")
    out.add_argument("--log-format", choices=["text", "json"], help="text (default) or one JSON object a line")
    common.add_argument("--config", metavar="FILE", help="YAML file with any of these options; the command line wins")
    return common


def build_parser():
    common = common_options()
    parser = Parser(prog="zkherd", parents=[common], epilog=__doc__.split("\n\n")[1],
                    description="Apache ZooKeeper coordination for plain Unix programs.")
    parser.add_argument("--version", action="version",
                        version="zkherd %s (Python %s)" % (__version__, sys.version.split()[0]))
    commands = parser.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=Parser)
    run = commands.add_parser(
        "run", parents=[common], argument_default=argparse.SUPPRESS,
        usage="zkherd run [options] -- COMMAND [ARG...]",
        help="run a command under a lock and/or registered for discovery",
        description="Run COMMAND under a ZooKeeper lock (one holder, or N with --slots) and/or registered "
                    "as an ephemeral sequential znode. Exits with the command's code (128+N if killed by "
                    "signal N); 75 if the lock is not obtained with --no-wait or within --wait-timeout.")
    lock = run.add_argument_group("lock")
    lock.add_argument("--lock", metavar="PATH", help="run only while holding the lock at PATH")
    lock.add_argument("--slots", type=int, metavar="N", help="let N holders run at once (default 1)")
    lock.add_argument("--no-wait", action="store_true", help="exit 75 at once if the lock is held elsewhere")
    lock.add_argument("--wait-timeout", type=seconds, metavar="S", help="exit 75 if the lock is not obtained within S")
    lock.add_argument("--id", metavar="TEXT", help="who we are, stored in the lock node (default host:pid)")
    reg = run.add_argument_group("registration")
    reg.add_argument("--register", metavar="PATH", help="while the command runs, keep the ephemeral node PATH<seq>")
    reg.add_argument("--data", metavar="TEXT|@FILE", help="data of the registration node")
    reg.add_argument("--register-when", choices=["started", "healthy"],
                     help="register once the command started (default) or only while it is healthy")
    cfg = run.add_argument_group("mirrored configuration")
    cfg.add_argument("--mirror", action="append", metavar="LOCAL=ZNODE",
                     help="keep file LOCAL equal to ZNODE (repeat for a set read as one snapshot)")
    cfg.add_argument("--mirror-dir", action="append", metavar="LOCAL_DIR=ZNODE",
                     help="keep directory LOCAL_DIR equal to the subtree under ZNODE (leaves are files)")
    cfg.add_argument("--check-cmd", metavar="CMD",
                     help="shell command that validates the staged files ($ZKHERD_STAGED_FILE, $ZKHERD_STAGED_FILES)")
    cfg.add_argument("--check-timeout", type=seconds, metavar="S", help="a check running longer fails (default 30)")
    cfg.add_argument("--on-change", choices=["restart", "reload", "none"], help="what a change does (default restart)")
    cfg.add_argument("--reload-signal", metavar="SIG", help="signal for --on-change reload (default HUP)")
    cfg.add_argument("--change-delay", type=seconds, metavar="S",
                     help="wait until changes stop for S (default 0.2, at most 2 s) and apply the newest once")
    cfg.add_argument("--file-mode", type=file_mode, metavar="MODE", help=FILE_MODE_HELP)
    cfg.add_argument("--rolling-lock", metavar="PATH", help="restart for new files only while holding this lock")
    cfg.add_argument("--rolling-slots", type=int, metavar="N", help="hosts restarting at once (default 1)")
    cfg.add_argument("--on-failure", choices=["pause", "rollback"],
                     help="a failed version keeps the rolling lock (pause, default) or is rolled back")
    health = run.add_argument_group("health and alerts")
    health.add_argument("--health", metavar="CMD", help="shell command that exits 0 when the command is healthy")
    health.add_argument("--health-delay", type=seconds, metavar="S", help="first check S after a start (default 5)")
    health.add_argument("--health-interval", type=seconds, metavar="S", help="then every S (default 10)")
    health.add_argument("--health-timeout", type=seconds, metavar="S", help="a check running longer fails (default 10)")
    health.add_argument("--health-rise", type=int, metavar="N", help="passes in a row to become healthy (default 1)")
    health.add_argument("--health-fall", type=int, metavar="N",
                        help="failures in a row to become unhealthy (default 2)")
    health.add_argument("--alert", metavar="CMD",
                        help="shell command run on failed health, a rejected or failed version, an unexpected exit "
                             "($ZKHERD_ALERT, $ZKHERD_ALERT_MESSAGE)")
    child = run.add_argument_group("the command")
    child.add_argument("--stop-signal", metavar="SIG", help="signal that asks the command to stop (default TERM)")
    child.add_argument("--stop-timeout", type=seconds, metavar="S", help="SIGKILL after S seconds (default 10)")
    elect = commands.add_parser("elect", parents=[common], argument_default=argparse.SUPPRESS,
                                help="join a pool and hold candidacy for its leadership (a service)",
                                description="Join the pool at --election PATH and stay in it until stopped; the "
                                            "member that joined first leads. Joins again after a session expiry.")
    election_options(elect, with_timeout=False)
    leader = commands.add_parser("is-leader", parents=[common], argument_default=argparse.SUPPRESS,
                                 help="exit 0 if this host leads the pool, 1 if not, 2 if it cannot be told",
                                 description="Exit 0 if the member with --id (default: the host name) leads the "
                                             "pool, 1 if not, 2 if ZooKeeper does not answer within --timeout.")
    election_options(leader)
    cron = commands.add_parser(
        "cron", parents=[common], argument_default=argparse.SUPPRESS,
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
    cron.add_argument("--if-running", choices=["skip", "wait"],
                      help="if the job still runs on this host: refuse with 75 (skip, default) or wait for it")
    cron.add_argument("--stop-signal", metavar="SIG", help="signal that stops the job (default TERM)")
    cron.add_argument("--stop-timeout", type=seconds, metavar="S", help="SIGKILL S seconds later (default 10)")
    barrier = commands.add_parser(
        "barrier", parents=[common], argument_default=argparse.SUPPRESS,
        usage="zkherd barrier PATH --count N [--timeout S] [-- COMMAND [ARG...]]",
        help="wait until N participants arrive at PATH (a double barrier: enter, run, leave together)",
        description="Enter the double barrier at PATH, wait until --count participants are there, run COMMAND "
                    "if given, then leave together. Exit codes: the command's (or 0), 69 if ZooKeeper cannot be "
                    "reached, 75 if the others do not arrive or leave within --timeout, 77 if ZooKeeper denies access.")
    barrier.add_argument("barrier_path", metavar="PATH")
    barrier.add_argument("--count", type=int, metavar="N", help="how many participants")
    barrier.add_argument("--timeout", type=seconds, metavar="S", help="give up after S seconds (default 60)")
    barrier.add_argument("--id", metavar="TEXT", help="this participant (default host:pid)")
    farm_parser = commands.add_parser("farm", parents=[common], argument_default=argparse.SUPPRESS,
                                      help="farm ls|get|set|unset: read and change farm members",
                                      description="Farms as zkfarmer made them: a member is a znode holding a "
                                                  "JSON object; fields use dotted paths (mysql.replication_delay).")
    farm_commands = farm_parser.add_subparsers(dest="farm_cmd", metavar="ls|get|set|unset", parser_class=Parser)
    farm_ls = farm_commands.add_parser("ls", parents=[common], argument_default=argparse.SUPPRESS,
                                       help="list a farm's members (or any znode's children)")
    farm_ls.add_argument("farm_path", metavar="FARM")
    farm_ls.add_argument("--fields", metavar="A,B.C", help="show these fields of each member")
    export = farm_commands.add_parser("export", parents=[common], argument_default=argparse.SUPPRESS,
                                      help="keep a file equal to a farm (json, yaml, php, or a Jinja2 template)")
    export.add_argument("farm_path", metavar="FARM")
    export.add_argument("dest", metavar="DEST")
    export.add_argument("--format", choices=["json", "yaml", "php", "template"], help="default json")
    export.add_argument("--template", metavar="FILE.j2", help="for --format template: gets `members` and `farm`")
    export.add_argument("--filter", metavar="EXPR", help="members to keep, e.g. enabled=1,!maint,delay<10")
    export.add_argument("--on-change", dest="on_change_cmd", metavar="CMD", help="shell command run after DEST changed")
    export.add_argument("--check-cmd", metavar="CMD", help="shell command that validates $ZKHERD_STAGED_FILE first")
    export.add_argument("--min-members", type=int, metavar="N", help="keep the last file with fewer members")
    export.add_argument("--once", action="store_true", help="write once and exit")
    export.add_argument("--file-mode", type=file_mode, metavar="MODE", help=FILE_MODE_HELP)
    join = farm_commands.add_parser("join", parents=[common], argument_default=argparse.SUPPRESS,
                                    help="be a member of a farm: CONF (JSON/YAML file or DJB directory) <-> znode")
    join.add_argument("farm_path", metavar="FARM")
    join.add_argument("conf", metavar="CONF")
    join.add_argument("--format", dest="conf_format", choices=["json", "yaml", "dir"],
                      help="of CONF (default: dir for a directory, yaml for .yml/.yaml, else json)")
    join.add_argument("--name", metavar="ID", help="member name (default: the default route's IPv4 address)")
    join.add_argument("--on-change", dest="on_change_cmd", metavar="CMD", help="run after CONF changed from ZooKeeper")
    join.add_argument("--poll", type=seconds, metavar="S", help="look for local edits every S (default 0.5)")
    join.add_argument("--file-mode", type=file_mode, metavar="MODE", help=FILE_MODE_HELP)
    for name, what in (("get", "print a member's field"), ("set", "set a member's field (compare-and-set)"),
                       ("unset", "remove a member's field (compare-and-set)")):
        sub = farm_commands.add_parser(name, parents=[common], argument_default=argparse.SUPPRESS, help=what)
        sub.add_argument("farm_path", metavar="NODE")
        sub.add_argument("field", metavar="FIELD")
        if name == "set":
            sub.add_argument("value", metavar="VALUE")
    pool_parser = commands.add_parser("pool", parents=[common], argument_default=argparse.SUPPRESS,
                                      help="pool ls: the members of a pool and who leads")
    pool_parser.add_argument("pool_cmd", choices=["ls"], metavar="ls")
    election_options(pool_parser)
    return parser


def election_options(parser, with_timeout=True):
    parser.add_argument("--election", metavar="PATH", help="the pool's znode")
    parser.add_argument("--id", metavar="TEXT", help="this member's id (default: the host name)")
    if with_timeout:
        parser.add_argument("--timeout", type=seconds, metavar="S", help="answer within S seconds (default 5)")


def command_parser(parser, namespace):
    """The (sub)parser of the command given: `farm join` -> the parser of join."""
    for name in ("cmd", "farm_cmd", "pool_cmd"):
        chosen = getattr(namespace, name, None)
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
        if chosen and subparsers and chosen in subparsers[0].choices:
            parser = subparsers[0].choices[chosen]
    return parser


def file_keys_to_dests(file_values, parser, path):
    """Config file keys are the command's long option names (on_change for --on-change, with dashes
    or underscores), or `command`; anything the command does not take is an error, never ignored."""
    names = {"command": "command"} if parser.prog.split()[-1] in ("run", "cron") else {}
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


def parse(argv):
    """argv -> (merged option dict, command list). Everything after the first `--` is the command."""
    argv = list(argv)
    _ARGV_SECRETS.update(argv_secrets(argv[:argv.index("--")] if "--" in argv else argv))
    command = None
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1:]
    parser = build_parser()
    namespace = parser.parse_args(argv)
    if not getattr(namespace, "cmd", None):
        parser.print_help(sys.stderr)
        raise SystemExit(EX_USAGE)
    cli = {k: v for k, v in vars(namespace).items() if k != "cmd"}
    if command is not None:
        cli["command"] = command
    file_values = load_file(cli["config"]) if cli.get("config") else {}
    file_values = file_keys_to_dests(file_values, command_parser(parser, namespace), cli.get("config"))
    values = merge(cli, file_values, DEFAULTS)
    values["cmd"] = namespace.cmd
    return values


def check_run(values):
    """Validate `run` options; returns an argparse-like namespace."""
    opts = argparse.Namespace(**values)
    command = opts.command
    if isinstance(command, str):
        command = [command]
    if not command or not all(isinstance(a, str) for a in command):
        raise ConfigError("no command to run: give it after `--`, or as `command:` in the config file")
    opts.command = command
    for name in ("lock", "register"):
        if getattr(opts, name):
            try:
                paths.validate(getattr(opts, name), what="--" + name + " path")
            except paths.PathError as exc:
                raise ConfigError(str(exc)) from None
    if not opts.lock and (opts.no_wait or opts.wait_timeout is not None or opts.slots != 1):
        raise ConfigError("--slots, --no-wait and --wait-timeout need --lock")
    if opts.no_wait and opts.wait_timeout is not None:
        raise ConfigError("--no-wait and --wait-timeout exclude each other")
    if int(opts.slots) < 1:
        raise ConfigError("--slots must be at least 1")
    opts.slots = int(opts.slots)
    for name in ("stop_timeout", "wait_timeout"):
        value = getattr(opts, name)
        if value is not None and float(value) < 0:
            raise ConfigError("--%s must not be negative" % name.replace("_", "-"))
    opts.stop_timeout = float(opts.stop_timeout)
    opts.wait_timeout = None if opts.wait_timeout is None else float(opts.wait_timeout)
    opts.stop_signal = parse_signal(opts.stop_signal)
    if opts.data and not opts.register:
        raise ConfigError("--data needs --register")
    check_rollout(opts)
    opts.data = read_data(opts.data or "")
    opts.id = opts.id or "%s:%d" % (socket.gethostname(), os.getpid())
    return opts


def check_rollout(opts):
    """Validate the options of mirrored configuration, rolling restarts and health checks."""
    opts.mirror = mirror_pairs(opts.mirror, "--mirror", "LOCAL=ZNODE")
    opts.mirror_dir = mirror_pairs(opts.mirror_dir, "--mirror-dir", "LOCAL_DIR=ZNODE")
    if not opts.mirror and not opts.mirror_dir and (opts.check_cmd or opts.rolling_lock):
        raise ConfigError("--check-cmd and --rolling-lock need --mirror or --mirror-dir")
    if opts.rolling_lock:
        try:
            paths.validate(opts.rolling_lock, what="--rolling-lock path")
        except paths.PathError as exc:
            raise ConfigError(str(exc)) from None
    if opts.register_when == "healthy" and not (opts.health and opts.register):
        raise ConfigError("--register-when healthy needs --register and --health")
    for name in ("rolling_slots", "health_rise", "health_fall"):
        setattr(opts, name, int(getattr(opts, name)))
        if getattr(opts, name) < 1:
            raise ConfigError("--%s must be at least 1" % name.replace("_", "-"))
    for name in ("check_timeout", "change_delay", "health_delay", "health_interval", "health_timeout"):
        setattr(opts, name, float(getattr(opts, name)))
        if getattr(opts, name) < 0:
            raise ConfigError("--%s must not be negative" % name.replace("_", "-"))
    opts.reload_signal = parse_signal(opts.reload_signal)


def mirror_pairs(items, option, form):
    pairs = []
    for item in items or []:
        local, sep, znode = str(item).partition("=")
        if not sep or not local or not znode or "\0" in local:
            raise ConfigError("%s takes %s, got %r" % (option, form, item))
        try:
            paths.validate(znode, what=option + " znode")
        except paths.PathError as exc:
            raise ConfigError(str(exc)) from None
        pairs.append((os.path.abspath(local), znode))
    return pairs


def run_barrier(values, settings, log):
    from zkherd.recipes import barrier

    try:
        paths.validate(values["barrier_path"], what="barrier path")
    except paths.PathError as exc:
        raise ConfigError(str(exc)) from None
    if not values["count"] or int(values["count"]) < 1:
        raise ConfigError("--count N (at least 1) is required")
    timeout = float(values["timeout"] or 60.0)
    ident = values["id"] or "%s:%d" % (socket.gethostname(), os.getpid())
    return barrier.run(values["barrier_path"], int(values["count"]), timeout, ident, values["command"], settings,
                       log)


def run_election_command(values, settings, log):
    from zkherd.recipes import election

    if not values["election"]:
        raise ConfigError("--election PATH is required")
    try:
        paths.validate(values["election"], what="--election path")
    except paths.PathError as exc:
        raise ConfigError(str(exc)) from None
    ident = values["id"] or socket.gethostname()
    if values["cmd"] == "cron":
        from zkherd.recipes import cron

        opts = argparse.Namespace(**values)
        opts.id = ident
        if opts.name is not None:  # the job's tick markers are named after it
            paths.validate_name(opts.name)
        if not opts.command:
            raise ConfigError("no command to run: give it after `--`")
        opts.stop_signal = parse_signal(opts.stop_signal)
        opts.stop_timeout, opts.tick = float(opts.stop_timeout), float(opts.tick)
        if opts.tick <= 0:
            raise ConfigError("--tick must be positive")
        settings.connect_timeout = float(values["timeout"] or 5.0)
        return cron.run(opts, settings, log)
    if values["cmd"] == "elect":
        return Loop(settings, log).run(election.Member(values["election"], ident, log))
    settings.connect_timeout = float(values["timeout"] or 5.0)
    if values["cmd"] == "is-leader":
        return election.is_leader(values["election"], ident, settings, log)
    return election.pool_ls(values["election"], settings, sys.stdout)


def parse_signal(value):
    text = str(value).upper()
    name = text if text.startswith("SIG") else "SIG" + text
    try:
        return signal.Signals(int(text)) if text.isascii() and text.isdigit() else signal.Signals[name]
    except (KeyError, ValueError):
        raise ConfigError("unknown signal %r" % value) from None


def read_data(value):
    if value.startswith("@"):
        try:
            return read_bounded(value[1:], MAX_VALUE_BYTES, "--data file")  # it becomes a znode's data
        except OSError as exc:
            raise ConfigError("cannot read --data file %s: %s" % (value[1:], exc.strerror)) from None
        except ValueError as exc:  # a NUL in the name
            raise ConfigError("cannot read --data file %r: %s" % (value[1:], exc)) from None
    return value.encode("utf-8", "surrogateescape")  # argv bytes that are not UTF-8 are kept as they came


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        values = parse(argv)
        log = Log(values["log_format"], (values["verbose"] or 0) - (values["quiet"] or 0))
        settings = connection_settings(values)
        if values["cmd"] == "run":
            from zkherd.run import runner as runcmd

            return runcmd.run(check_run(values), settings, log)
        if values["cmd"] == "barrier":
            return run_barrier(values, settings, log)
        if values["cmd"] == "farm":
            from zkherd.farm import fields as farmcmd

            if not values["farm_cmd"]:
                raise ConfigError("farm needs a command: ls, get, set, unset or export")
            if values["farm_cmd"] == "join":
                from zkherd.farm import join

                opts = argparse.Namespace(**values)
                opts.farm, opts.on_change, opts.format = opts.farm_path, opts.on_change_cmd, opts.conf_format
                paths.validate(opts.farm, what="farm path")
                if opts.name is not None:  # '' is refused, not taken for "the default"
                    paths.validate_name(opts.name)
                return join.run(opts, settings, log)
            if values["farm_cmd"] == "export":
                from zkherd.farm import export

                opts = argparse.Namespace(**values)
                opts.farm, opts.on_change, opts.min_members = opts.farm_path, opts.on_change_cmd, int(opts.min_members)
                paths.validate(opts.farm, what="farm path")
                return export.run(opts, settings, log)
            return farmcmd.main(values, settings)
        return run_election_command(values, settings, log)
    except (ConfigError, UserError) as exc:
        sys.stderr.write("zkherd: %s\n" % redact(str(getattr(exc, "message", exc))))
        return EX_USAGE
    except KeyboardInterrupt:  # Ctrl-C before there was anything to stop
        return 128 + signal.SIGINT
    return EX_USAGE


if __name__ == "__main__":
    sys.exit(main())
