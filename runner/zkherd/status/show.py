"""Reads every path in one connection and prints them (text or JSON); the exit code."""

from __future__ import annotations

import json
import sys

from zkherd.common import paths
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
    def wait(result):
        return result.get(timeout=timeout)

    shown, code = [], exits.OK
    for path in given:
        status = recognize(client, path, wait)
        flags = drained(client, path, wait)
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
    if as_json:
        out.write(json.dumps(shown, indent=2, sort_keys=True) + "\n")
    return code
