"""`zkherd farm ls|get|set|unset`: read and change farm members from anywhere, as zkfarmer did.

Exit codes: 0; 1 when the member or field does not exist; 64 bad usage; 65 a member that is not a
JSON object (it is reported, never overwritten, and `ls` goes on with the others); 69 ZooKeeper
unreachable; 75 a `set` or `unset` that lost the race against other writers 5 times in a row (never
hidden); 77 access denied.
"""

from __future__ import annotations

import sys

from kazoo.exceptions import BadVersionError, NoNodeError

from zkherd.common import farm, paths
from zkherd.common.connection import ZkError, connected, translate
from zkherd.common.errors import AUTH, NO_NODE, USAGE

EX_NOFIELD, EX_DATAERR, EX_UNAVAILABLE, EX_TEMPFAIL = 1, 65, 69, 75
RETRIES = 5


def main(values, settings, out=sys.stdout, err=sys.stderr):
    cmd = values["farm_cmd"]
    target = values["farm_path"]
    try:
        paths.validate(target, what="farm path" if cmd == "ls" else "member path")
        with connected(settings) as client:
            if cmd == "ls":
                fields = [f for f in (values.get("fields") or "").split(",") if f]
                return ls(client, target, fields, out, err)
            if cmd == "get":
                return get(client, target, values["field"], out, err)
            return change(client, target, values["field"], values.get("value"), cmd == "unset", err)
    except farm.FarmError as exc:
        err.write("zkherd: %s\n" % exc.message)
        return EX_DATAERR
    except ZkError as exc:
        err.write("zkherd: %s\n" % exc.message)
        return {NO_NODE: EX_NOFIELD, USAGE: 64, AUTH: 77}.get(exc.kind, EX_UNAVAILABLE)
    except paths.PathError as exc:
        err.write("zkherd: %s\n" % exc.message)
        return 64


def ls(client, path, fields, out, err):
    """Children of *path*; with fields, each member's fields in zkfarmer's layout."""
    try:
        names = sorted(client.get_children(path))
    except Exception as exc:
        raise translate(exc, "list", path) from None
    if not fields:
        out.write("".join(name + "\n" for name in names))
        return 0
    pending = [(name, client.get_async(paths.join(path, name))) for name in names]
    code = 0
    for name, result in pending:
        try:
            doc = farm.decode_member(result.get()[0], "member %s" % paths.join(path, name))
        except NoNodeError:
            continue  # left the farm while we listed it
        except farm.FarmError as exc:
            err.write("zkherd: skipping %s\n" % exc.message)
            code = EX_DATAERR
            continue
        out.write(farm.ls_line(name, doc, fields) + "\n")
    return code


def read(client, node):
    try:
        data, stat = client.get(node)
    except Exception as exc:
        raise translate(exc, "read", node) from None
    return farm.decode_member(data, "member %s" % node), stat


def get(client, node, field, out, err):
    doc = read(client, node)[0]
    try:
        out.write(farm.text(farm.get_field(doc, field)) + "\n")
    except KeyError:
        err.write("zkherd: %s has no field %s\n" % (node, field))
        return EX_NOFIELD
    return 0


def change(client, node, field, value, unset, err):
    """Compare-and-set: read, change, write with the version read; on a conflict read again,
    at most RETRIES times, then say so."""
    for _attempt in range(RETRIES):
        doc, stat = read(client, node)
        try:
            new = farm.unset_field(doc, field) if unset else farm.set_field(doc, field, value)
        except KeyError:
            err.write("zkherd: %s has no field %s\n" % (node, field))
            return EX_NOFIELD
        if new == doc:
            return 0
        try:
            client.set(node, farm.encode_member(new), version=stat.version)
            return 0
        except BadVersionError:
            continue  # someone wrote in between: read their version and apply ours on top
        except Exception as exc:
            raise translate(exc, "update", node) from None
    err.write("zkherd: %s changed %d times while we tried to update it; nothing written\n" % (node, RETRIES))
    return EX_TEMPFAIL
