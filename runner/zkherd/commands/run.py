"""`zkherd run [options] -- COMMAND [ARG...]`: its options and its main (the runner: run/runner.py)."""

from __future__ import annotations

import argparse
import os
import socket

from zkherd.core.argtypes import FILE_MODE_HELP, file_mode, parse_signal, seconds, znode_path
from zkherd.core.settings import ConfigError, read_bounded

NAMES = ("run",)
DEFAULTS = dict(
    lock=None, slots=1, no_wait=False, wait_timeout=None, register=None, data="", id=None,
    stop_signal="TERM", stop_timeout=10.0, command=None, containment="auto",
    mirror=None, mirror_dir=None, template=None, check_cmd=None, check_timeout=30.0, on_change="restart",
    reload_signal="HUP",
    change_delay=0.2, render_timeout=10.0, file_mode=0o644,
    rolling_lock=None, rolling_slots=1, on_failure="pause",
    health=None, health_delay=5.0, health_interval=10.0, health_timeout=10.0, health_rise=1, health_fall=2,
    alert=None, register_when="started", standby_only=False,
)


def add_parsers(commands):
    run = commands.add(
        "run", command_in_config=True, reports=True,
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
    lock.add_argument("--id", metavar="TEXT", help="who we are, stored in the lock node (default host:pid); "
                                                   "`zkherd drain PATH --id TEXT` names the runner by it")
    lock.add_argument("--standby-only", action="store_true",
                      help="never queue for the lock nor register: mirror and render the files only (as if "
                           "drained for good)")
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
    cfg.add_argument("--template", action="append", metavar="SRC.j2=DEST",
                     help="render the local Jinja2 template SRC.j2 from znodes into DEST, in the same set as the "
                          "mirrored files (repeatable; docs/templates.md)")
    cfg.add_argument("--render-timeout", type=seconds, metavar="S",
                     help="a --template rendering longer fails, a render error (default 10; 0: no limit)")
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
    containment_option(child)


def containment_option(parser):
    parser.add_argument("--containment", choices=["auto", "cgroup", "subreaper"],
                        help="how the command's whole process tree is kept and stopped: a cgroup of its own, a "
                             "child subreaper, or auto (default: the cgroup when the runner can make one)")


def check_containment(opts):
    """--containment cgroup where none can be made is a usage error, not a silent fallback."""
    from zkherd.run import cgroups, containment

    if opts.containment == "cgroup":
        parent, why = cgroups.child_cgroup_parent()
        if parent is None:
            raise ConfigError("--containment cgroup: no cgroup can be made for the command: %s" % why)
    containment.request_mode(opts.containment)


def main(values, settings, log):
    from zkherd.run import runner

    return runner.run(check_run(values), settings, log)


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
            znode_path(getattr(opts, name), "--" + name + " path")
    if not opts.lock and (opts.no_wait or opts.wait_timeout is not None or opts.slots != 1):
        raise ConfigError("--slots, --no-wait and --wait-timeout need --lock")
    if opts.standby_only and (opts.no_wait or opts.wait_timeout is not None):
        raise ConfigError("--standby-only never takes the lock: --no-wait and --wait-timeout make no sense with it")
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
    check_containment(opts)
    return opts


def check_rollout(opts):
    """Validate the options of mirrored configuration, rolling restarts and health checks."""
    opts.mirror = mirror_pairs(opts.mirror, "--mirror", "LOCAL=ZNODE")
    opts.mirror_dir = mirror_pairs(opts.mirror_dir, "--mirror-dir", "LOCAL_DIR=ZNODE")
    opts.templates = load_templates(opts)
    if not opts.mirror and not opts.mirror_dir and not opts.templates and (opts.check_cmd or opts.rolling_lock):
        raise ConfigError("--check-cmd and --rolling-lock need --mirror, --mirror-dir or --template")
    if opts.rolling_lock:
        znode_path(opts.rolling_lock, "--rolling-lock path")
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


def load_templates(opts):
    """--template SRC.j2=DEST: compiled now (a syntax error or an unreadable SRC is a usage error, 64);
    a DEST is no mirrored file."""
    if not opts.template:
        return []
    from zkherd.configfiles import templates  # only runners with templates pay for Jinja2

    pairs = templates.template_pairs(opts.template)
    taken = {local for local, _z in opts.mirror}
    clash = [dest for _src, dest in pairs if dest in taken]
    if clash:
        raise ConfigError("--template DEST %s is also a --mirror file" % clash[0])
    limit = float(opts.render_timeout)
    if limit < 0:
        raise ConfigError("--render-timeout must not be negative")
    return templates.load_all(pairs, limit)


def mirror_pairs(items, option, form):
    pairs = []
    for item in items or []:
        local, sep, znode = str(item).partition("=")
        if not sep or not local or not znode or "\0" in local:
            raise ConfigError("%s takes %s, got %r" % (option, form, item))
        znode_path(znode, option + " znode")
        pairs.append((os.path.abspath(local), znode))
    return pairs


def read_data(value):
    if value.startswith("@"):
        from zkherd.common.tree import MAX_VALUE_BYTES  # here: the tree code is for other commands (memory)

        try:
            return read_bounded(value[1:], MAX_VALUE_BYTES, "--data file")  # it becomes a znode's data
        except OSError as exc:
            raise ConfigError("cannot read --data file %s: %s" % (value[1:], exc.strerror)) from None
        except ValueError as exc:  # a NUL in the name
            raise ConfigError("cannot read --data file %r: %s" % (value[1:], exc)) from None
    return value.encode("utf-8", "surrogateescape")  # argv bytes that are not UTF-8 are kept as they came
