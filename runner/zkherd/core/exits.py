"""Exit codes of every zkherd command, in one place (sysexits.h names; docs/runner.md lists them).

A command's own outcome (the child's code for `run`, 1 for "not the leader" of `is-leader`...) is
its own; these are the codes zkherd itself chooses."""

from __future__ import annotations

from zkherd.common.errors import AUTH, CONNECT, USAGE

OK = 0
USAGE_ERROR = 64  # bad usage or configuration
DATAERR = 65  # data in ZooKeeper that cannot be used (farm get of a malformed member)
NOINPUT = 66  # the znode asked for does not exist (get, set without --create, rm, tree dump)
UNAVAILABLE = 69  # ZooKeeper unreachable at start
SOFTWARE = 70  # a bug: an exception nobody expected (logged without a traceback)
CANTCREAT = 73  # a local file cannot be written (farm export --once)
TEMPFAIL = 75  # lock not obtained in time, the job still runs here, the barrier timed out
LOST = 76  # cron: leadership lost while the job ran
NOPERM = 77  # ZooKeeper denied access (ACL, credentials)
NOT_FOUND = 127  # the command to run does not exist


FATAL_KINDS = (AUTH, USAGE)  # errors that trying again will not mend: the command ends


def for_error(error):
    """The exit code for a UserError (or ZkError) that ends a command."""
    kind = getattr(error, "kind", None)
    if kind == AUTH:
        return NOPERM
    if kind == USAGE:
        return USAGE_ERROR
    if kind == CONNECT:
        return UNAVAILABLE
    return UNAVAILABLE
