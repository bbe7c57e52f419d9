"""`zkfarmer` (rs/zkfarmer; also installed as `zkfarm`, its older name) spelled as before, run as
`zkherd farm`.

-H/--host HOSTS (else env ZKHOST, else zkherd's default: env ZKHERD_HOSTS, 127.0.0.1:2181) -> --zk;
-q/-v as they are, -V/--version. join FARM CONF [-f json|dir] -> farm join; export FARM CONF
[-f json|php] [-c/--changed-cmd CMD] -> farm export ... --on-change CMD, the format guessed from CONF's
name as zkfarmer did (.php: php, .yaml/.yml: yaml, else json; a directory, or `-` for stdout, exits 64:
zkherd writes one file); ls FARM [--fields A,B.C], get NODE FIELD, set NODE FIELD VALUE -> farm
ls|get|set.
"""

from __future__ import annotations

import os
import sys

from zkherd import __version__
from zkherd.compat import common


def parser():
    p = common.Parser(prog=os.path.basename(sys.argv[0]) if sys.argv[0].endswith("zkfarm") else "zkfarmer",
                      description=common.FRONT_END % ("zkfarmer", "zkfarmer", "farm", "zkfarmer"))
    p.zkherd_command = "farm"
    p.add_argument("-V", "--version", action="version",
                   version="%(prog)s: zkherd " + __version__ + " compatibility front end")
    p.add_argument("-H", "--host", default=os.environ.get("ZKHOST"), metavar="HOSTS",
                   help="list of zookeeper hosts:port separated by commas (default: env ZKHOST, else zkherd's "
                        "ZKHERD_HOSTS, else 127.0.0.1:2181)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument("-v", "--verbose", action="store_true", help="more detail")
    subs = p.add_subparsers(dest="command", metavar="join|export|ls|get|set", parser_class=common.Parser)
    subs.required = True

    def sub(name, helptext):
        s = subs.add_parser(name, help=helptext, description=p.description)
        s.zkherd_command = "farm " + name
        s.add_argument("zknode", metavar="FARM" if name in ("join", "export", "ls") else "NODE")
        return s

    join = sub("join", "make the current host join a farm (zkherd farm join)")
    join.add_argument("conf", metavar="CONF", help="a JSON file or a DJB directory")
    join.add_argument("-f", "--format", choices=["json", "php", "dir"], help="default: dir for a directory, else json")
    export = sub("export", "keep a local file in sync with the farm (zkherd farm export)")
    export.add_argument("conf", metavar="CONF")
    export.add_argument("-f", "--format", choices=["json", "php", "dir"], help="default: php for *.php, else json")
    export.add_argument("-c", "--changed-cmd", metavar="CMD", help="run after each change of CONF")
    ls = sub("ls", "list a farm's members, with --fields theirs (zkherd farm ls)")
    ls.add_argument("--fields", metavar="A,B.C", help="fields to show, dotted for sub-fields")
    sub("get", "print a member's field (zkherd farm get)").add_argument("field", metavar="FIELD")
    setter = sub("set", "set a member's field (zkherd farm set)")
    setter.add_argument("field", metavar="FIELD")
    setter.add_argument("value", metavar="VALUE")
    return p


def export_format(p, conf, fmt):
    """zkfarmer's Conf() guess (a directory: dir, *.yaml/*.yml: yaml, *.php: php; json for the rest, which
    zkfarmer refused); what zkherd farm export cannot write (a directory, stdout) exits 64."""
    one_file = "zkherd farm export writes one file (--format json|yaml|php|template)"
    if conf == "-":
        common.unsupported(p, "export to stdout (-)", one_file + ": export to a file, e.g. `zkherd farm export "
                           "FARM FILE --once && cat FILE`")
    if fmt == "dir" or (fmt is None and os.path.isdir(conf)):
        common.unsupported(p, "export to a directory (dir format)", one_file + ": give a file name")
    return fmt or ("php" if conf.endswith(".php") else "yaml" if conf.endswith((".yaml", ".yml")) else "json")


def translate(argv):
    """zkfarmer's argv -> zkherd's."""
    p = parser()
    args = p.parse_args(argv)
    out = ["--zk", args.host] if args.host else []
    out += ["-q"] if args.quiet else []
    out += ["-v"] if args.verbose else []
    out += ["farm", args.command, args.zknode]
    if args.command == "join":
        if args.format == "php":
            common.unsupported(p, "join --format php",
                               "zkherd farm join reads json, yaml or a dir: --format json|yaml|dir")
        out += [args.conf] + (["--format", args.format] if args.format else [])
    elif args.command == "export":
        fmt = export_format(p, args.conf, args.format)
        out += [args.conf, "--format", fmt] + (["--on-change", args.changed_cmd] if args.changed_cmd else [])
    elif args.command == "ls":
        out += ["--fields", args.fields] if args.fields else []
    elif args.command == "get":
        out.append(args.field)
    else:
        out += [args.field, args.value]
    return out


def main(argv=None):
    common.run(translate(sys.argv[1:] if argv is None else argv))
