"""The `zkherd` command line: global options, `--config FILE`, and the commands.

Exit codes: the command's own (see each command), 64 for bad usage or configuration, 69 when
ZooKeeper cannot be reached at start, 75 when a lock was not obtained in time, 77 when ZooKeeper
denies access (ACL, credentials).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys

from zkherd import __version__
from zkherd.common import paths
from zkherd.common.errors import UserError
from zkherd.config import ConfigError, connection_settings, load_file, merge
from zkherd.logs import Log

EX_USAGE = 64

DEFAULTS = dict(
    zk=None, session_timeout=None, connect_timeout=None, auth=None, auth_file=None, tls_ca=None, tls_cert=None,
    tls_key=None, verbose=0, quiet=0, log_format="text", config=None,
    lock=None, slots=1, no_wait=False, wait_timeout=None, register=None, data="", id=None,
    stop_signal="TERM", stop_timeout=10.0, command=None,
)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, "%s: error: %s\n" % (self.prog, message))


def common_options():
    common = Parser(add_help=False, argument_default=argparse.SUPPRESS)
    zk = common.add_argument_group("ZooKeeper connection (each also from --config FILE)")
    zk.add_argument("--zk", metavar="HOSTS",
                    help="host:port[,host:port...][/chroot] (env ZKHERD_HOSTS; default 127.0.0.1:2181)")
    zk.add_argument("--session-timeout", type=float, metavar="S", help="session timeout asked for (default 10)")
    zk.add_argument("--connect-timeout", type=float, metavar="S",
                    help="give up with exit code 69 if ZooKeeper does not answer at start within S (default 10)")
    zk.add_argument("--auth", metavar="USER:PASSWORD",
                    help="digest credentials; visible in ps: prefer --auth-file or env ZKHERD_AUTH")
    zk.add_argument("--auth-file", metavar="FILE", help="file holding USER:PASSWORD (keep it mode 0600)")
    zk.add_argument("--tls-ca", metavar="PEM", help="CA certificates for TLS to ZooKeeper's secureClientPort")
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
    lock.add_argument("--wait-timeout", type=float, metavar="S", help="exit 75 if the lock is not obtained within S")
    lock.add_argument("--id", metavar="TEXT", help="who we are, stored in the lock node (default host:pid)")
    reg = run.add_argument_group("registration")
    reg.add_argument("--register", metavar="PATH", help="while the command runs, keep the ephemeral node PATH<seq>")
    reg.add_argument("--data", metavar="TEXT|@FILE", help="data of the registration node")
    child = run.add_argument_group("the command")
    child.add_argument("--stop-signal", metavar="SIG", help="signal that asks the command to stop (default TERM)")
    child.add_argument("--stop-timeout", type=float, metavar="S", help="SIGKILL after S seconds (default 10)")
    return parser


def parse(argv):
    """argv -> (merged option dict, command list). Everything after the first `--` is the command."""
    argv = list(argv)
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
    opts.data = read_data(opts.data or "")
    opts.id = opts.id or "%s:%d" % (socket.gethostname(), os.getpid())
    return opts


def parse_signal(value):
    text = str(value).upper()
    name = text if text.startswith("SIG") else "SIG" + text
    try:
        return signal.Signals(int(text)) if text.isdigit() else signal.Signals[name]
    except (KeyError, ValueError):
        raise ConfigError("unknown signal %r" % value) from None


def read_data(value):
    if value.startswith("@"):
        try:
            with open(value[1:], "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise ConfigError("cannot read --data file %s: %s" % (value[1:], exc.strerror)) from None
    return value.encode("utf-8")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        values = parse(argv)
        log = Log(values["log_format"], (values["verbose"] or 0) - (values["quiet"] or 0))
        settings = connection_settings(values)
        if values["cmd"] == "run":
            from zkherd import runcmd

            return runcmd.run(check_run(values), settings, log)
    except (ConfigError, UserError) as exc:
        sys.stderr.write("zkherd: %s\n" % getattr(exc, "message", exc))
        return EX_USAGE
    except KeyboardInterrupt:  # Ctrl-C before there was anything to stop
        return 128 + signal.SIGINT
    return EX_USAGE


if __name__ == "__main__":
    sys.exit(main())
