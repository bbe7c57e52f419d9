"""`zkherd farm join|export|ls|get|set|unset|drain|undrain`: farms as zkfarmer made them (farm/)."""

from __future__ import annotations

import argparse

from zkherd.common import paths
from zkherd.core.argtypes import FILE_MODE_HELP, file_mode, seconds
from zkherd.core.settings import ConfigError

NAMES = ("farm",)
DEFAULTS = dict(
    farm_cmd=None, farm_path=None, fields=None, field=None, value=None, dest=None, format="json", template=None,
    filter=None, on_change_cmd=None, check_cmd=None, min_members=0, once=False, conf=None, conf_format=None,
    name=None, poll=None, no_inotify=False, file_mode=0o644, host=None, include_drained=False,
)


def add_parsers(commands):
    farm = commands.add("farm", help="farm join|export|ls|get|set|unset|drain|undrain: be a member of a farm, "
                                     "export it to a file, read and change its members",
                        description="Farms as zkfarmer made them: a member is a znode holding a JSON object; fields "
                                    "use dotted paths (mysql.replication_delay).")
    farms = commands.nested(farm, dest="farm_cmd")
    farm_ls = farms.add("ls", help="list a farm's members (or any znode's children)")
    farm_ls.add_argument("farm_path", metavar="FARM")
    farm_ls.add_argument("--fields", metavar="A,B.C", help="show these fields of each member")
    export = farms.add("export", reports=True,
                       help="keep a file equal to a farm (json, yaml, php, or a Jinja2 template)")
    export.add_argument("farm_path", metavar="FARM")
    export.add_argument("dest", metavar="DEST")
    export.add_argument("--format", choices=["json", "yaml", "php", "template"], help="default json")
    export.add_argument("--template", metavar="FILE.j2", help="for --format template: gets `members` and `farm`")
    export.add_argument("--filter", metavar="EXPR", help="members to keep, e.g. enabled=1,!maint,delay<10")
    export.add_argument("--on-change", dest="on_change_cmd", metavar="CMD", help="shell command run after DEST changed")
    export.add_argument("--check-cmd", metavar="CMD", help="shell command that validates $ZKHERD_STAGED_FILE first")
    export.add_argument("--min-members", type=int, metavar="N", help="keep the last file with fewer members")
    export.add_argument("--include-drained", action="store_true",
                        help="keep members marked by `zkherd farm drain` (left out by default)")
    export.add_argument("--once", action="store_true", help="write once and exit")
    export.add_argument("--file-mode", type=file_mode, metavar="MODE", help=FILE_MODE_HELP)
    join = farms.add("join", reports=True,
                     help="be a member of a farm: CONF (JSON/YAML file or DJB directory) <-> znode")
    join.add_argument("farm_path", metavar="FARM")
    join.add_argument("conf", metavar="CONF")
    join.add_argument("--format", dest="conf_format", choices=["json", "yaml", "dir"],
                      help="of CONF (default: dir for a directory, yaml for .yml/.yaml, else json)")
    join.add_argument("--name", metavar="ID", help="member name (default: the default route's IPv4 address)")
    join.add_argument("--on-change", dest="on_change_cmd", metavar="CMD", help="run after CONF changed from ZooKeeper")
    join.add_argument("--poll", type=seconds, metavar="S",
                      help="without inotify, look for local edits every S (default 0.5); with it, a look every S "
                           "only in case an event was missed (default 60)")
    join.add_argument("--no-inotify", action="store_true",
                      help="poll instead of following local edits with inotify")
    join.add_argument("--file-mode", type=file_mode, metavar="MODE", help=FILE_MODE_HELP)
    get = farms.add("get", help="print a member's field, or the whole member (JSON)",
                    usage="zkherd farm get NODE [FIELD] | zkherd farm get FARM --host MEMBER [FIELD]",
                    description="Print the FIELD (a dotted path) of the member at NODE: a string as it is, "
                                "anything else as JSON. Without FIELD, print the whole member as one line of "
                                "JSON. FARM --host MEMBER names the member NODE=FARM/MEMBER. Exit codes: 0; 1 no "
                                "such member or field; 64 bad usage; 65 the member is not a JSON object (or "
                                "holds a lone surrogate); 69 ZooKeeper unreachable; 77 access denied.")
    get.add_argument("farm_path", metavar="NODE", help="the member's znode (or the farm's, with --host)")
    get.add_argument("field", metavar="FIELD", nargs="?", help="a dotted path; default: the whole member")
    get.add_argument("--host", metavar="MEMBER", help="the member's name in the farm NODE")
    for name, what in (("set", "set a member's field (compare-and-set)"),
                       ("unset", "remove a member's field (compare-and-set)")):
        sub = farms.add(name, help=what)
        sub.add_argument("farm_path", metavar="NODE")
        sub.add_argument("field", metavar="FIELD")
        if name == "set":
            sub.add_argument("value", metavar="VALUE")
    for name, what in (("drain", "mark a member drained (its field drained: true): exports leave it out"),
                       ("undrain", "remove a member's drained mark")):
        sub = farms.add(name, help=what)
        sub.add_argument("farm_path", metavar="FARM")
        sub.add_argument("--host", metavar="HOST", help="the member's name in the farm")


def main(values, settings, log):
    cmd = values["farm_cmd"]
    if not cmd:
        raise ConfigError("farm needs a command: join, export, ls, get, set, unset, drain or undrain")
    if cmd == "join":
        from zkherd.farm import join

        opts = argparse.Namespace(**values)
        opts.farm, opts.on_change, opts.format = opts.farm_path, opts.on_change_cmd, opts.conf_format
        paths.validate(opts.farm, what="farm path")
        if opts.name is not None:  # '' is refused, not taken for "the default"
            paths.validate_name(opts.name)
        return join.run(opts, settings, log)
    if cmd == "export":
        from zkherd.farm import export

        opts = argparse.Namespace(**values)
        opts.farm, opts.on_change, opts.min_members = opts.farm_path, opts.on_change_cmd, int(opts.min_members)
        paths.validate(opts.farm, what="farm path")
        return export.run(opts, settings, log)
    from zkherd.farm import fields

    if cmd == "get" and values["host"] is not None:  # FARM --host MEMBER: the member FARM/MEMBER
        paths.validate(values["farm_path"], what="farm path")
        paths.validate_name(values["host"])
        values = dict(values, farm_path=paths.join(values["farm_path"], values["host"]))
    if cmd in ("drain", "undrain"):
        if not values["host"]:
            raise ConfigError("farm %s needs --host HOST (the member's name)" % cmd)
        paths.validate(values["farm_path"], what="farm path")
        paths.validate_name(values["host"])
        values = dict(values, farm_path=paths.join(values["farm_path"], values["host"]), field=fields.DRAINED,
                      value=None)
    return fields.main(values, settings)
