"""`zkexec` (omc/zkexec) spelled as before, run as `zkherd run`.

zkexec -> zkherd run: --exec CMD -> `-- CMD` (through /bin/sh -c when CMD needs a shell, as Ruby's
exec does), --cluster -> --zk, --mirror, --health, --health-interval, --health-delay, --alert as
they are, --lock NAME -> --rolling-lock /_zklocking/NAME (where the ZK gem's lockers live; a NAME
starting with / is used as the path), --silent -> -q, --verbose -> -v. An option's value is the next word
whatever it starts with (`--exec -x`), as Ruby's optparse reads it, or `--exec=VALUE`.
"""

from __future__ import annotations

import shlex
import sys

from zkherd.compat import common

LOCK_ROOT = "/_zklocking"
SHELL_CHARS = set("*?{}[]<>()~&|\\$;'`\"\n#=%")  # Ruby's exec(String) hands these to /bin/sh
UNSUPPORTED = {
    "--quorum": "zkherd run has no quorum; --rolling-slots N bounds how many hosts restart at once",
    "--alert-delay": "use --health-delay S (no alert within S of a start) or zkherd run's --health-fall N",
}


def parser():
    p = common.Parser(prog="zkexec", description=common.FRONT_END % ("zkexec", "zkexec", "run", "zkexec"),
                      epilog="Run a command, and restart if the config files change on the remote zookeeper.")
    p.add_argument("-e", "--exec", dest="command", metavar="COMMAND", help="Run this command (required)")
    p.add_argument("-c", "--cluster", metavar="HOST:PORT,...",
                   help="Comma-delimited list of zookeeper hosts (zkherd --zk; default: env ZKHERD_HOSTS, "
                        "else 127.0.0.1:2181)")
    p.add_argument("-H", "--health", metavar="COMMAND", help="Run this command to health-check")
    p.add_argument("-i", "--health-interval", metavar="INTERVAL", help="Health-check every INTERVAL seconds")
    p.add_argument("-d", "--health-delay", metavar="INTERVAL", help="Wait before starting health checks")
    p.add_argument("-m", "--mirror", action="append", default=[], metavar="LOCAL_PATH=ZK_PATH",
                   help="Mirror a config file from zookeeper to localhost")
    p.add_argument("-l", "--lock", metavar="NAME",
                   help="Name of a zk lockfile, used to enforce rolling restarts (zkherd --rolling-lock %s/NAME)"
                        % LOCK_ROOT)
    p.add_argument("-a", "--alert", metavar="COMMAND",
                   help="Run this command if the primary command returns falsey or health checks fail for too long")
    p.add_argument("-v", "--verbose", action="store_true", help="zkherd -v")
    p.add_argument("-s", "--silent", action="store_true", help="zkherd -q: warnings and errors only")
    common.refuse(p, UNSUPPORTED)
    return p


def command_words(command):
    """Ruby's exec(String): a shell when the string needs one, else its words."""
    if SHELL_CHARS & set(command):
        return ["/bin/sh", "-c", command]
    return shlex.split(command)


def translate(argv):
    """zkexec's argv -> zkherd's."""
    p = parser()
    args, unknown = p.parse_known_args(common.attach_values(p, argv))
    if unknown:
        p.error("unrecognized arguments: %s" % " ".join(unknown))
    words = command_words(args.command or "")
    if not words:
        p.error("--exec COMMAND is required")
    out = []
    if args.cluster:
        out += ["--zk", args.cluster]
    out += ["-v"] if args.verbose else []
    out += ["-q"] if args.silent else []
    out.append("run")
    for mirror in args.mirror:
        out += ["--mirror", mirror]
    if args.lock:
        out += ["--rolling-lock", args.lock if args.lock.startswith("/") else "%s/%s" % (LOCK_ROOT, args.lock)]
    for option in ("health", "health_interval", "health_delay", "alert"):
        if getattr(args, option) is not None:
            out += ["--" + option.replace("_", "-"), getattr(args, option)]
    return out + ["--"] + words


def main(argv=None):
    common.run(translate(sys.argv[1:] if argv is None else argv))
