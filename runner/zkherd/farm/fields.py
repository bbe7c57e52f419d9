"""`zkherd farm ls|get|set|unset`: read and change farm members from anywhere, as zkfarmer did
(`get` without a field: the whole member, one line of JSON).

Exit codes: 0; 1 when the member or field does not exist; 64 bad usage; 65 a member that is not a
JSON object (it is reported, never overwritten, and `ls` goes on with the others); 69 ZooKeeper
unreachable; 75 a `set` or `unset` that lost the race against other writers 5 times in a row (never
hidden); 77 access denied.
"""

from __future__ import annotations

import json
import sys

from zkherd.common import farm, paths
from zkherd.common.connection import ZkError, connected, translate
from zkherd.common.errors import AUTH, NO_NODE, USAGE, VERSION
from zkherd.core import exits

NO_FIELD = 1  # the member or the field does not exist: the command's own answer, like grep's
DRAINED = "drained"  # `farm drain` sets it to true, `farm undrain` removes it; export leaves such members out


def main(values, settings, out=sys.stdout, err=sys.stderr):
    cmd = values["farm_cmd"]
    target = values["farm_path"]
    try:  # bad usage is told before connecting, with exit 64 (not 65, which is about the data)
        paths.validate(target, what="farm path" if cmd == "ls" else "member path")
        if cmd != "ls" and not (cmd == "get" and values.get("field") is None):
            farm.check_field(values["field"])  # never empty: '' is no field of the member
            for what in ("field", "value"):  # argv bytes not UTF-8 (surrogateescape): JSON would store "\udcfc"
                text = values.get(what)
                if isinstance(text, str) and farm.json_problem(text):
                    raise farm.FarmError("%s %s is not UTF-8 text (bytes such as Latin-1's)%s" % (
                        what.upper(), ascii(text)[:80], "" if cmd == "get" else "; nothing written"))
    except (paths.PathError, farm.FarmError) as exc:
        err.write("zkherd: %s\n" % exc.message)
        return exits.USAGE_ERROR
    try:
        with connected(settings) as client:
            if cmd == "ls":
                fields = [f for f in (values.get("fields") or "").split(",") if f]
                return ls(client, target, fields, out, err)
            if cmd == "get":
                return get(client, target, values["field"], out, err)
            if cmd in ("drain", "undrain"):
                return drain(client, target, cmd == "drain")
            return change(client, target, values["field"], values.get("value"), cmd == "unset", err)
    except farm.FarmError as exc:
        err.write("zkherd: %s\n" % exc.message)
        return exits.DATAERR
    except ZkError as exc:
        err.write("zkherd: %s\n" % exc.message)
        return {NO_NODE: NO_FIELD, USAGE: exits.USAGE_ERROR, AUTH: exits.NOPERM, VERSION: exits.TEMPFAIL}.get(
            exc.kind, exits.UNAVAILABLE)


def ls(client, path, fields, out, err):
    """Children of *path*; with fields, each member's fields in zkfarmer's layout."""
    if not fields:
        try:
            names = sorted(client.get_children(path))
        except Exception as exc:
            raise translate(exc, "list", path) from None
        out.write("".join(name + "\n" for name in names))
        return 0
    members, problems = farm.read_members(client, path)
    for problem in problems:
        err.write("zkherd: skipping %s\n" % problem)
    for name, doc in members.items():
        out.write(farm.ls_line(name, doc, fields) + "\n")
    return exits.DATAERR if problems else 0


def get(client, node, field, out, err):
    """The member's *field* (a string as it is, anything else as JSON); without one, the whole
    member as one line of JSON."""
    try:
        data = client.get(node)[0]
    except Exception as exc:
        raise translate(exc, "read", node) from None
    doc = farm.decode_member(data, "member %s" % node)
    if field is None:
        out.write(json.dumps(doc, sort_keys=True) + "\n")
        return 0
    try:
        out.write(farm.text(farm.get_field(doc, field)) + "\n")
    except KeyError:
        err.write("zkherd: %s has no field %s\n" % (node, field))
        return NO_FIELD
    return 0


def change(client, node, field, value, unset, err):
    """Compare-and-set with a bounded retry (common.farm.update_member); a lost race is exit 75."""
    def apply(doc):
        return farm.unset_field(doc, field) if unset else farm.set_field(doc, field, value)

    try:
        farm.update_member(client, node, apply)
    except KeyError:
        err.write("zkherd: %s has no field %s\n" % (node, field))
        return NO_FIELD
    return 0


def drain(client, node, drained):
    """`farm drain|undrain`: the member's drained field (true, or absent); idempotent."""
    def apply(doc):
        if drained:
            return dict(doc, **{DRAINED: True})
        return {k: v for k, v in doc.items() if k != DRAINED}

    farm.update_member(client, node, apply)
    sys.stdout.write("%s %s\n" % ("drained" if drained else "undrained", node))
    return 0
