"""`zkherd tree load|dump|diff`: a local directory <-> a subtree of znodes (znodes/treecmd.py)."""

from __future__ import annotations

from zkherd.core.argtypes import file_mode

NAMES = ("tree",)
DEFAULTS = dict(tree_cmd=None, local_dir=None, znode=None, prune=False, dry_run=False, force=False,
                dump_file_mode=0o600)
EXIT_CODES = ("Exit codes: 0 done (diff: equal), 1 diff: different, 64 bad usage or local input (a bad path, a file "
              "over 1 MB), 65 data that cannot be dumped, 66 the znode does not exist, 69 ZooKeeper unreachable or "
              "the connection lost, 73 DIR cannot be written (not empty without --force, another user's or writable by "
              "others, a symlink in it: nothing of the dump is written), 75 another writer "
              "changed the tree meanwhile (nothing of this run stays), 77 access denied.")


def add_parsers(commands):
    tree = commands.add("tree", help="tree load|dump|diff: a local directory <-> a subtree of znodes",
                        description="A folder is a znode, a file a znode holding the file's bytes, and the file "
                                    ".znode inside a folder holds the folder's own data (the znode_tree module's "
                                    "convention). " + EXIT_CODES, epilog=None)
    trees = commands.nested(tree, dest="tree_cmd")
    load = trees.add("load", help="make the subtree at ZNODE equal to DIR (transactions, compare-and-set)",
                     description="Prints one line per znode created, updated, deleted or kept, then a summary. "
                                 + EXIT_CODES)
    load.add_argument("local_dir", metavar="DIR")
    load.add_argument("znode", metavar="ZNODE")
    load.add_argument("--prune", action="store_true", help="delete znodes below ZNODE that DIR does not have "
                                                           "(never ephemeral ones)")
    load.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    dump = trees.add("dump", help="write the subtree at ZNODE into DIR as files", description=EXIT_CODES)
    dump.add_argument("znode", metavar="ZNODE")
    dump.add_argument("local_dir", metavar="DIR")
    dump.add_argument("--force", action="store_true", help="write into a DIR that is not empty (files of the same "
                                                           "name are replaced, other entries left alone)")
    dump.add_argument("--file-mode", dest="dump_file_mode", type=file_mode, metavar="MODE",
                      help="mode of the files the dump creates, in octal (default 0600: a dump may hold ACL-protected "
                           "data; its folders get x where r is, 0700; a file it replaces keeps its own)")
    diff = trees.add("diff", help="list how ZNODE differs from DIR: exit 0 equal, 1 different",
                     description="'+ PATH' only in DIR, '- PATH' only in ZooKeeper, '~ PATH' different data (what "
                                 "a `tree load --prune` would change). " + EXIT_CODES)
    diff.add_argument("local_dir", metavar="DIR")
    diff.add_argument("znode", metavar="ZNODE")


def main(values, settings, log):
    from zkherd.core.settings import ConfigError
    from zkherd.znodes import treecmd

    if not values["tree_cmd"]:
        raise ConfigError("tree needs a command: load, dump or diff")
    return treecmd.main(values, settings)
