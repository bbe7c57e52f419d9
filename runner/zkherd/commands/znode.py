"""`zkherd get|set|ls|rm ZNODE`: single znodes without zkCli.sh (znodes/single.py)."""

from __future__ import annotations

NAMES = ("get", "set", "ls", "rm")
DEFAULTS = dict(znode=None, stat=False, value_type="raw", set_value=None, create=False, expect_version=None,
                recursive=False)
EXIT_CODES = ("Exit codes: 0 done, 64 bad usage (a bad path, a value over 1 MB), 65 data that is not of --type, or "
              "rm of a znode with children without -r, 66 the znode does not exist, 69 ZooKeeper unreachable or the "
              "connection lost, 75 the znode is not at --version (or changed meanwhile), 77 access denied.")


def add_parsers(commands):
    get = commands.add("get", help="print a znode's data (or its --stat)", description=EXIT_CODES)
    get.add_argument("znode", metavar="ZNODE")
    get.add_argument("--stat", action="store_true", help="print the znode's stat instead of its data")
    get.add_argument("--type", dest="value_type", choices=["raw", "json", "yaml"],
                     help="raw (default: the bytes as they are; binary data on a terminal is summarized), or decode "
                          "JSON/YAML and print it as JSON")
    put = commands.add("set", help="set a znode's data (compare-and-set)", description=EXIT_CODES)
    put.add_argument("znode", metavar="ZNODE")
    put.add_argument("set_value", metavar="VALUE|@FILE", help="the data: text, @FILE for a file's bytes, @- for stdin")
    put.add_argument("--create", action="store_true", help="create the znode (and its parents) if missing")
    put.add_argument("--version", dest="expect_version", type=int, metavar="N",
                     help="only if the znode is at data version N")
    ls = commands.add("ls", help="list a znode's children", description=EXIT_CODES)
    ls.add_argument("znode", metavar="ZNODE")
    ls.add_argument("-R", "--recursive", action="store_true", help="every path below ZNODE (one snapshot)")
    rm = commands.add("rm", help="delete a znode", description=EXIT_CODES)
    rm.add_argument("znode", metavar="ZNODE")
    rm.add_argument("-r", "--recursive", action="store_true", help="with its subtree (guarded transactions)")
    rm.add_argument("--version", dest="expect_version", type=int, metavar="N",
                    help="only if the znode is at data version N")


def main(values, settings, log):
    from zkherd.znodes import single

    return single.main(values, settings)
