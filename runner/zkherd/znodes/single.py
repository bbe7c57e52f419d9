"""`zkherd get|set|ls|rm ZNODE`: one znode, with the znode module's code (common.znodes).

Exit codes: commands/znode.py's EXIT_CODES (66 for a missing znode, like sysexits' EX_NOINPUT)."""

from __future__ import annotations

import json
import os
import re
import sys

from zkherd.common import codec, paths, tree, znodes
from zkherd.common.connection import ZkError, stat_dict, to_kazoo_acls, translate
from zkherd.common.errors import NO_NODE, USAGE, VERSION
from zkherd.core import exits
from zkherd.znodes import LocalError, fail, run

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but tab and newline


def main(values, settings, out=None):
    out = out or sys.stdout
    cmd = values["cmd"]
    try:
        path = paths.validate(values["znode"])
        if cmd == "rm" and path == "/":
            raise ZkError("refusing to delete the root znode /", USAGE)
        data = value_bytes(path, values["set_value"]) if cmd == "set" else None
    except (paths.PathError, ZkError) as exc:
        return fail(exc.message, exits.USAGE_ERROR)
    except LocalError as exc:
        return fail(exc.message, exc.code)
    wait = settings.connect_timeout
    if cmd == "get":
        return run(settings, lambda client: get(client, path, values["stat"], values["value_type"] or "raw", out))
    if cmd == "ls":
        return run(settings, lambda client: ls(client, path, values["recursive"], out))
    if cmd == "set":
        create_acl = to_kazoo_acls(settings.default_acl) if settings.default_acl else None
        return run(settings, lambda client: put(client, path, data, values, create_acl, wait, out))
    return run(settings, lambda client: remove(client, path, values, wait, out))


def value_bytes(path, value):
    """VALUE as UTF-8, @FILE's bytes, @- stdin's; never more than a znode may hold."""
    if not value.startswith("@"):
        return tree.check_value_size(path, value.encode("utf-8", "surrogateescape"), "the value")
    source = value[1:]
    try:
        handle = sys.stdin.fileno() if source == "-" else os.open(source, os.O_RDONLY)
    except OSError as exc:
        raise LocalError("cannot read %r: %s" % (source, exc.strerror), exits.USAGE_ERROR) from None
    try:
        data = tree.read_up_to(handle, tree.MAX_VALUE_BYTES + 1)
    except OSError as exc:
        raise LocalError("cannot read %r: %s" % (source, exc.strerror), exits.USAGE_ERROR) from None
    finally:
        if source != "-":
            os.close(handle)
    what = "standard input" if source == "-" else "file %r" % source
    if len(data) > tree.MAX_VALUE_BYTES:
        raise LocalError("%s is over the %d bytes a znode value may hold" % (what, tree.MAX_VALUE_BYTES),
                         exits.USAGE_ERROR)
    return data


def existing(client, path):
    before = znodes.read(client, path)
    if before is None:
        raise ZkError("znode %s does not exist" % path, NO_NODE)
    return before


def get(client, path, show_stat, value_type, out):
    data, stat = existing(client, path)[:2]
    if show_stat:
        out.write("".join("%s: %s\n" % item for item in stat_dict(stat).items()))
    elif value_type != "raw":
        value = codec.decode(data, value_type, "data of %s" % path)
        out.write(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    elif out.isatty():  # a terminal gets text: binary data summarized, control characters escaped
        text = _CONTROL.sub(lambda found: "\\x%02x" % ord(found.group()), codec.preview(data, limit=len(data) + 1))
        out.write(text if text.endswith("\n") or not text else text + "\n")
    else:  # a pipe or a file gets the bytes exactly: `get > f` and `set @f` round-trip
        out.flush()
        out.buffer.write(data)
        out.buffer.flush()
    return 0


def ls(client, path, recursive, out):
    if recursive:
        nodes = tree.read_tree(client, path)
        if not nodes:
            raise ZkError("znode %s does not exist" % path, NO_NODE)
        out.write("".join(p + "\n" for p in sorted(nodes) if p != path))
        return 0
    try:
        names = sorted(client.get_children(path))
    except Exception as exc:
        error = translate(exc, "list", path)
        if error.kind == NO_NODE:
            error.message = "znode %s does not exist" % path
        raise error from None
    out.write("".join(name + "\n" for name in names))
    return 0


def put(client, path, data, values, create_acl, wait, out):
    version = values["expect_version"]
    before = znodes.read(client, path)
    if before is None:
        if not values["create"]:
            raise ZkError("znode %s does not exist (give --create to create it)" % path, NO_NODE)
        if version not in (None, -1):
            raise ZkError("znode %s does not exist, so it cannot be at version %d" % (path, version), VERSION)
        parents = znodes.missing_parents(client, path, makepath=True)
        znodes.create(client, path, data, parents, create_acl, wait)
        out.write("created %s%s\n" % (path, " (and %d parents)" % len(parents) if parents else ""))
        return 0
    znodes.check_version(path, version, before[1])
    if before[0] == data:
        out.write("unchanged %s (version %d)\n" % (path, before[1].version))
        return 0
    znodes.set_value(client, path, data, before, wait)
    out.write("updated %s (version %d)\n" % (path, before[1].version + 1))
    return 0


def remove(client, path, values, wait, out):
    before = existing(client, path)
    znodes.check_version(path, values["expect_version"], before[1])
    nodes, doomed = znodes.subtree(client, path, before, values["recursive"], how="give -r to delete")
    znodes.delete(client, path, before, nodes, doomed, wait)
    below = len(doomed) - 1
    out.write("deleted %s%s\n" % (path, " and the %d znodes below it" % below if below else ""))
    return 0
