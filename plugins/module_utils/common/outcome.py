# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find out whether ZooKeeper applied a transaction whose reply was lost.

A lost connection during a commit is ambiguous: the server may have applied the transaction
or not. Once the client is connected again (kazoo keeps the session if it can), a sync puts this
session's earlier request and the server's view behind us; then the transaction's znodes tell:
  - a set or delete still finds its znode at the version (and creation zxid) it was planned
    against, or a create finds its znode made before the commit was sent: not applied (versions
    never go back, a re-created znode gets a new creation zxid; a multi applies all or nothing);
  - every op shows its effect, and the creates and sets all carry one zxid: applied (one
    transaction made exactly these changes);
  - every op finds its znode as before it was sent, with nothing that proves it: taken as not
    applied. For a transaction of creates only (no set, delete or guard), "as before" is "missing",
    which is also what it looks like if it applied and someone else deleted those znodes since;
    sending it again then makes them again. The callers guard their multi-transaction writes
    (txn.Guard), which turns that case into a set that proves it;
  - anything else (someone else changed those znodes meanwhile), or no connection: unknown.

Shared by the Ansible plugins and the runner: no Ansible imports.
"""

from __future__ import annotations

import time

APPLIED, NOT_APPLIED, UNKNOWN = "applied", "not applied", "unknown"
_NOT, _BEFORE, _AFTER, _OTHER = range(4)  # what one op's znode shows: for sure not, as before, as after


def lost_connection(exc, client):
    """Whether *exc* leaves the outcome of a request unknown (not a refusal by the server)."""
    from kazoo.exceptions import ConnectionLoss, OperationTimeoutError, SessionExpiredError

    return isinstance(exc, (ConnectionLoss, SessionExpiredError, OperationTimeoutError,
                            client.handler.timeout_exception))


def find_out(client, ops, zxid_before, wait):
    """APPLIED, NOT_APPLIED or UNKNOWN for the transaction *ops* (txn.Op), sent when the client
    had seen *zxid_before*, waiting up to *wait* seconds for the connection. Returns
    (outcome, reason): the reason says why it is unknown."""
    deadline = time.monotonic() + wait
    reason = _sync(client, deadline, wait)
    if reason:
        return UNKNOWN, reason
    try:
        reads = [(op, client.exists_async(op.path) if op.kind == "delete" else client.get_async(op.path))
                 for op in ops]
        answers = [(op, _answer(result, deadline)) for op, result in reads]
    except Exception as exc:  # the connection went again, or a read was refused
        return UNKNOWN, "could not read the transaction's znodes back (%s)" % (type(exc).__name__,)
    return decide(answers, zxid_before)


def decide(answers, zxid_before):
    """(outcome, reason) from [(op, what reading its znode gave)]: (data, stat) for a create or
    set, the stat for a delete, None for a missing znode."""
    seen = [_look(op, answer, zxid_before) for op, answer in answers]
    states = [state for state, _zxid in seen]
    zxids = {zxid for _state, zxid in seen if zxid is not None}
    if _NOT in states:
        return NOT_APPLIED, ""
    if all(state == _AFTER for state in states) and len(zxids) <= 1:
        return APPLIED, ""
    if all(state == _BEFORE for state in states):
        return NOT_APPLIED, ""
    return UNKNOWN, "its znodes were changed by someone else meanwhile"


def _sync(client, deadline, wait):
    """Wait for the connection and sync; an error text when that is not possible in time."""
    from kazoo.exceptions import ConnectionClosedError

    last = "no answer"
    while time.monotonic() < deadline:
        try:
            client.sync_async("/").get(timeout=max(0.1, deadline - time.monotonic()))
            return ""
        except ConnectionClosedError:
            return "the client was closed"
        except Exception as exc:
            if not lost_connection(exc, client):
                return "sync failed: %s" % (type(exc).__name__,)
            last = "%s" % (type(exc).__name__,)
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    return "no connection to ZooKeeper within %g s (%s)" % (wait, last)


def _answer(result, deadline):
    from kazoo.exceptions import NoNodeError

    try:
        return result.get(timeout=max(0.1, deadline - time.monotonic()))
    except NoNodeError:
        return None


def _look(op, answer, zxid_before):
    """(what op's znode shows, the zxid that made it so or None)."""
    if op.kind == "delete":
        stat = answer
        if stat is None or (op.czxid is not None and stat.czxid != op.czxid):
            return _AFTER, None
        return (_NOT if op.czxid is not None else _BEFORE), None
    if answer is None:
        return (_BEFORE if op.kind == "create" else _OTHER), None
    data, stat = answer
    data = data or b""
    if op.kind == "create":
        if stat.czxid <= zxid_before:
            return _NOT, None  # it was there before the commit was sent
        return (_AFTER, stat.czxid) if data == (op.data or b"") else (_OTHER, None)
    if op.czxid is not None and stat.czxid != op.czxid:
        return _OTHER, None
    if stat.version == op.version:
        return _NOT, None
    if stat.version == op.version + 1 and data == (op.data or b""):
        return _AFTER, stat.mzxid
    return _OTHER, None
