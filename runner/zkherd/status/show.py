"""Reads every path in one connection and prints them (text or JSON); the exit code. A ZooKeeper
error while reading (access denied, the connection lost, no answer in time) ends it with its code
(77, 69) as every znode command does (znodes.run)."""

from __future__ import annotations

import json
import sys

from kazoo.exceptions import KazooException

from zkherd.common import paths
from zkherd.common.connection import ZkError, translate
from zkherd.common.errors import CONNECT
from zkherd.core import exits
from zkherd.status import text
from zkherd.status.drained import drained
from zkherd.status.kinds import recognize
from zkherd.znodes import fail, run


def main(given, as_json, settings, out=None):
    out = out or sys.stdout
    try:
        checked = [paths.validate(path) for path in given]
    except paths.PathError as exc:
        return fail(exc.message, exits.USAGE_ERROR)
    return run(settings, lambda client: show(client, checked, as_json, settings.connect_timeout, out))


def show(client, given, as_json, timeout, out):
    shown, code = [], exits.OK
    for path in given:
        status, flags = _read(client, path, timeout)
        if status is None and flags:
            status = {"kind": "empty"}  # a registration drained: nothing else to show
        if status is None:
            sys.stderr.write("zkherd: %s: no such znode, and no registration of that name\n" % path)
            code = max(code, exits.NOINPUT)
            continue
        status = dict(status, path=path)
        if flags:
            status["drained"] = flags
        if status["kind"] == "unknown":
            code = max(code, exits.DATAERR)
        shown.append(status)
        if not as_json:
            out.write(text.render(status))
    if as_json:  # every number was checked (safe.py): allow_nan=False only guards that
        out.write(json.dumps(shown, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return code


def _read(client, path, timeout):
    """(status or None, drained flags) of *path*; a ZkError if ZooKeeper fails us."""
    def wait(result):
        try:
            return result.get(timeout=timeout)
        except client.handler.timeout_exception:
            raise ZkError("ZooKeeper did not answer within %s s while reading %s" % (timeout, path), CONNECT) from None

    try:
        return recognize(client, path, wait), drained(client, path, wait)
    except KazooException as exc:  # NoNodeError of a path that goes is handled where it is read
        raise translate(exc, "read", path) from None
