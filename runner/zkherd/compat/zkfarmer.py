"""`zkfarmer` (rs/zkfarmer; also installed as `zkfarm`, its older name) spelled as before, run as
`zkherd farm`.

-H/--host HOSTS (else env ZKHOST, else zkherd's default: env ZKHERD_HOSTS, 127.0.0.1:2181) -> --zk;
-q/-v as they are. join FARM CONF [-f json|dir] -> farm join; export FARM CONF [-f json|php]
[-c/--changed-cmd CMD] -> farm export ... --on-change CMD, the format guessed from CONF's name as
zkfarmer did (.php: php, else json); ls FARM [--fields A,B.C], get NODE FIELD, set NODE FIELD VALUE
-> farm ls|get|set.
"""

from __future__ import annotations

import os
import sys

from zkherd.compat import common


def parser():
    p = common.Parser(prog=os.path.basename(sys.argv[0]) if sys.argv[0].endswith("zkfarm") else "zkfarmer",
                      description=common.FRONT_END % ("zkfarmer", "zkfarmer", "farm", "zkfarmer"))
    p.zkherd_command = "farm"
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
        fmt = args.format or ("php" if args.conf.endswith(".php") else "json")
        if fmt == "dir":
            common.unsupported(p, "export --format dir", "zkherd farm export writes one file: --format "
                               "json|yaml|php|template")
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
