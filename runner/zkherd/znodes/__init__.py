"""Znodes and trees from the command line: `zkherd tree load|dump|diff`, `zkherd get|set|ls|rm`.

The reading, planning and writing is zkherd.common's (tree, treeload, znodes, txn), the same code
the znode and znode_tree modules run; this package only prints and chooses exit codes."""

from __future__ import annotations

import sys

from zkherd.common.connection import ZkError, connected
from zkherd.common.errors import AUTH, CONNECT, EXISTS, NO_NODE, NOT_EMPTY, USAGE, VERSION, UserError
from zkherd.core import exits

KIND_EXIT = {USAGE: exits.USAGE_ERROR, NO_NODE: exits.NOINPUT, AUTH: exits.NOPERM, VERSION: exits.TEMPFAIL,
             EXISTS: exits.TEMPFAIL, NOT_EMPTY: exits.DATAERR, CONNECT: exits.UNAVAILABLE}


class LocalError(UserError):
    """A local file or directory problem; *code* is the exit code."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def run(settings, body, err=None):
    """body(client) with a connection; a UserError becomes its message and exit code."""
    err = err or sys.stderr
    try:
        with connected(settings) as client:
            return body(client)
    except LocalError as exc:
        err.write("zkherd: %s\n" % exc.message)
        return exc.code
    except ZkError as exc:
        err.write("zkherd: %s\n" % exc.message)
        return KIND_EXIT.get(exc.kind, exits.UNAVAILABLE)
    except UserError as exc:  # a value that does not decode (codec)
        err.write("zkherd: %s\n" % exc.message)
        return exits.DATAERR
    except Exception as exc:  # a bug: one line, never a traceback (docs/runner.md, exit 70)
        err.write("zkherd: unexpected error (a bug in zkherd): %s: %s\n" % (type(exc).__name__, exc))
        return exits.SOFTWARE


def fail(message, code):
    """Before connecting: bad usage or input."""
    sys.stderr.write("zkherd: %s\n" % message)
    return code
