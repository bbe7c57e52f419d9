"""`zkherd drain PATH --id ID [--no-wait] [--timeout S]` and `zkherd undrain PATH --id ID`: planned
maintenance (recipes/drainflag.py, run/drain.py; docs/operations.md "Planned maintenance")."""

from __future__ import annotations

import sys
import time

from kazoo.exceptions import KazooException, NoChildrenForEphemeralsError
from kazoo.handlers.threading import KazooTimeoutError

from zkherd.common import paths
from zkherd.common.connection import ZkError, translate
from zkherd.common.drainflags import retried
from zkherd.common.errors import CONNECT
from zkherd.core import exits
from zkherd.core.argtypes import seconds
from zkherd.core.safetext import safe

NAMES = ("drain", "undrain")
DEFAULTS = dict(drain_path=None, id=None, no_wait=False, timeout=None)  # None: 60 s (main)
EXIT_CODES = ("Exit codes: 0 done, 64 bad usage, 65 the flag cannot be made (an ephemeral node on its path, not "
              "zkherd's), 69 ZooKeeper unreachable, 75 no answer within --timeout (the flag stays) or undrained "
              "meanwhile, 77 access denied.")


def add_parsers(commands):
    drain = commands.add(
        "drain", usage="zkherd drain PATH --id ID [--no-wait] [--timeout S]",
        help="planned maintenance: the runner of ID stops its child and leaves the lock (or registration) at PATH",
        description="Flags the runner started with --id ID on the --lock or --register PATH: under the lock it "
                    "stops its child, releases the lock at once (the next in line takes over) and stays out of "
                    "the line until `zkherd undrain`; a registration leaves discovery while the child keeps "
                    "running. Waits until ID holds nothing at PATH and prints how long it took. Idempotent. "
                    + EXIT_CODES)
    drain.add_argument("drain_path", metavar="PATH")
    drain.add_argument("--id", metavar="ID", help="the runner's --id")
    drain.add_argument("--no-wait", action="store_true", help="set the flag and return at once")
    drain.add_argument("--timeout", type=seconds, metavar="S", help="give up waiting after S (default 60)")
    undrain = commands.add(
        "undrain", usage="zkherd undrain PATH --id ID",
        help="end a drain: the runner of ID queues for the lock (or registers) again",
        description="Removes the drain flag of ID at PATH; idempotent. Exit codes: 0, 64 bad usage, 65 the flag "
                    "node has children (not zkherd's: remove them first), 69 ZooKeeper unreachable, 77 access "
                    "denied.")
    undrain.add_argument("drain_path", metavar="PATH")
    undrain.add_argument("--id", metavar="ID", help="the runner's --id")


def main(values, settings, log):
    from zkherd.znodes import fail, run

    try:
        path = paths.validate(values["drain_path"])
    except paths.PathError as exc:
        return fail(exc.message, exits.USAGE_ERROR)
    ident = values["id"]
    if not ident:
        return fail("--id ID is required: the --id of the runner to %s" % values["cmd"], exits.USAGE_ERROR)
    timeout = float(values["timeout"] if values["timeout"] is not None else 60.0)
    if values["cmd"] == "undrain":
        return run(settings, translated(lambda client: undrain(client, path, ident, settings.connect_timeout),
                                        "undrain %s at" % safe(ident), path))
    return run(settings, translated(lambda client: drain(client, path, ident, values["no_wait"], timeout,
                                                         settings.connect_timeout), "drain %s at" % safe(ident), path))


def translated(body, action, path):
    """body(client), with a ZooKeeper error the shared flag code lets through (access denied on the
    flags or the lock's line...) made a clear message and its exit code (77...), never 70."""
    def call(client):
        try:
            return body(client)
        except ZkError:
            raise
        except KazooException as exc:
            raise translate(exc, action, path) from None
        except KazooTimeoutError:  # the server stopped answering (not a KazooException)
            raise ZkError("ZooKeeper did not answer while trying to %s %s" % (action, path), CONNECT) from None
    return call


def undrain(client, path, ident, timeout, out=None):
    from zkherd.common import drainflags as drainflag

    try:
        was = retried(lambda get: drainflag.clear_flag(client, path, ident, get), timeout)
    except drainflag.FlagNotEmpty as exc:
        sys.stderr.write("zkherd: the drain flag %s has child nodes (not made by zkherd); the flag stays: delete "
                         "them first, then undrain again\n" % safe(exc.args[0]))
        return exits.DATAERR
    (out or sys.stdout).write("undrained %s at %s%s\n" % (safe(ident), path, "" if was else " (was not drained)"))
    return exits.OK


def drain(client, path, ident, no_wait, timeout, op_timeout, out=None):
    from zkherd.common import drainflags as drainflag

    out = out or sys.stdout
    started = time.monotonic()
    try:
        retried(lambda get: drainflag.set_flag(client, path, ident, get), op_timeout)
    except NoChildrenForEphemeralsError:
        sys.stderr.write("zkherd: cannot make the drain flag %s: a node on its way is ephemeral (not made by "
                         "zkherd, which makes persistent folders there): delete it, then drain again\n"
                         % safe(drainflag.flag_path(path, ident)))
        return exits.DATAERR
    shown = safe(ident)
    if no_wait:
        out.write("drain flag set for %s at %s\n" % (shown, path))
        return exits.OK
    state = drainflag.wait_drained(client, path, ident, started + timeout, op_timeout)
    if state == drainflag.UNDRAINED:
        sys.stderr.write("zkherd: %s was undrained meanwhile at %s (someone ran `zkherd undrain`)\n"
                         % (shown, path))
        return exits.TEMPFAIL
    if state is not None:
        out.write("drained %s at %s in %.3f s (%s)\n" % (shown, path, time.monotonic() - started, state))
        return exits.OK
    sys.stderr.write("zkherd: no answer from the runner of %s at %s after %.1f s, and it may still hold "
                     "something there (an unknown id, a runner that is not running, one older than "
                     "drain, or one that cannot write its answer: see its log); the flag stays: `zkherd "
                     "undrain` lifts it\n" % (shown, path, timeout))
    return exits.TEMPFAIL
