# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drain flags, the one copy of their format (`zkherd drain`, the runner, `zkherd status` and the
zkherd.ops.drain module): an operator's "stay out of PATH" for the runner of one id, and the
runner's answer that it holds nothing there now.

    /zkherd/drain/QPATH/QID      persistent, made by `zkherd drain`, deleted by `zkherd undrain`
    /zkherd/drained/QPATH/QID    ephemeral, the runner's: made once it holds nothing at PATH under
                                 that flag (its data: {"id", "host", "pid", "since"})

QPATH and QID are PATH and the id percent-encoded into one znode name ('/' -> %2F). The flags live
in a folder of their own, never under PATH: a lock's line, a registration folder that discovery
lists and `zkherd status` see nothing new, and runners of older versions are not confused. A
flag's czxid names it: an answer counts for the flag it was made for only if it is younger (a
drain, undrain and drain again never takes the first answer for the second) and ephemeral (a
persistent node at an answer's path is nobody's answer). Who may write these folders decides what
`drain` believes: docs/security.md "Drain flags".

Making or deleting a flag is idempotent: a retry after a lost reply finds NodeExists or NoNode,
which is the wanted outcome. No Ansible imports; kazoo is imported where it is used.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from urllib.parse import quote, unquote

from . import paths, sequence

FLAGS, ANSWERS = "/zkherd/drain", "/zkherd/drained"
# The prefixes of a lock's line (runner recipes/lock.py QUEUE and RUN) and the sequence suffix.
LINE_PREFIXES = ("lock-", "run-")  # recipes/lock.py QUEUE, RUN (this module cannot import the runner)
RETRIES = 5  # a request that got no answer (a lost reply) is asked again: both are idempotent
RECHECK = 0.5  # seconds: looked at again even if no watch fires
UNDRAINED = "undrained meanwhile"
ANSWERED = "the runner answered"
NOT_IN_LINE = "no node of it in the lock's line"


def encode(text):
    """One znode name for *text* (a path or an id); '.' and '..' alone are no names."""
    name = quote(text, safe="")
    return name.replace(".", "%2E") if name in (".", "..") else name


def decode(name):
    return unquote(name)


def flag_path(path, ident):
    return paths.join(paths.join(FLAGS, encode(path)), encode(ident))


def answer_path(path, ident):
    return paths.join(paths.join(ANSWERS, encode(path)), encode(ident))


def flags_of(path):
    """The folders of the flags and answers of *path* (for status)."""
    return paths.join(FLAGS, encode(path)), paths.join(ANSWERS, encode(path))


def flag_data(token=None):
    """A flag's data: who set it and when; *token* (the module's) tells its own create after a lost reply."""
    doc = {"by": socket.gethostname(), "at": time.time()}
    if token:
        doc["token"] = token
    return json.dumps(doc, sort_keys=True).encode("utf-8")


def flag_token(data):
    try:
        doc = json.loads((data or b"").decode("utf-8", "replace"))
    except ValueError:
        return None
    return doc.get("token") if isinstance(doc, dict) else None


def answer_data(ident):
    return json.dumps({"id": ident, "host": socket.gethostname(), "pid": os.getpid(), "since": time.time()},
                      sort_keys=True).encode("utf-8")


def answered(flag, answer):
    """The answer (a stat or None) was made for this flag (a stat): younger than it, and ephemeral
    (a runner's answer goes with its session; a persistent node there is someone else's)."""
    return flag is not None and answer is not None and answer.czxid > flag.czxid and answer.ephemeralOwner != 0


class FlagNotEmpty(Exception):
    """A flag node with children: not made by zkherd (flags have none); left for the operator."""


def set_flag(client, path, ident, get, token=None, acl=None):
    """Make the flag (nothing if it is there): (its stat, its data). *acl* (kazoo ACLs) for the flag
    and the folders it makes; None: the client's default."""
    from kazoo.exceptions import NodeExistsError, NoNodeError

    node = flag_path(path, ident)
    try:
        get(client.create_async(node, flag_data(token), acl=acl, makepath=True))
    except NodeExistsError:
        pass  # drained already, or our own create whose reply was lost
    try:
        data, stat = get(client.get_async(node))
    except NoNodeError:  # undrained between the create and this read: the wait says so
        return None, None
    return stat, data


def clear_flag(client, path, ident, get):
    """Delete the flag: True if it was there (a retry after a lost reply says False)."""
    from kazoo.exceptions import NoNodeError, NotEmptyError

    try:
        get(client.delete_async(flag_path(path, ident)))
        return True
    except NoNodeError:
        return False
    except NotEmptyError:
        raise FlagNotEmpty(flag_path(path, ident)) from None


def retried(call, timeout):
    """call(get) again after a request that got no answer (the reply may be lost: both are idempotent)."""
    from kazoo.exceptions import ConnectionLoss, OperationTimeoutError
    from kazoo.handlers.threading import KazooTimeoutError

    def get(result):
        return result.get(timeout=timeout)

    for attempt in range(RETRIES):
        try:
            return call(get)
        except (ConnectionLoss, OperationTimeoutError, KazooTimeoutError):
            if attempt == RETRIES - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    return None  # not reached


def line_of(names):
    """A lock's line among *names*: its queue and run nodes, each in sequence order."""
    return [name for prefix in LINE_PREFIXES for name in sequence.in_order(names, prefix)]


def holder_id(data):
    """The id in a lock node (JSON since issue 16, the bare id before); anyone who may write the
    line wrote it: an "id" that is no string is no id (None)."""
    text = (data or b"").decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    if not isinstance(doc, dict):
        return text
    ident = doc.get("id")
    return ident if isinstance(ident, str) else None


def holds(client, path, ident, watch, get):
    """None while ID may hold something at PATH; else why it holds nothing:
    the runner answered, or PATH is a lock whose line has other nodes but none of ID (a runner that
    queues after that reads its flag again before it starts a child: run/runner.py); UNDRAINED if
    the flag is gone. A flag made again meanwhile (undrain, drain) is followed."""
    from kazoo.exceptions import NoNodeError

    flag = get(client.exists_async(flag_path(path, ident), watch=watch))
    if flag is None:
        return UNDRAINED
    answer = get(client.exists_async(answer_path(path, ident), watch=watch))
    if answered(flag, answer):
        return ANSWERED
    try:
        names = get(client.get_children_async(path, watch=watch))
    except NoNodeError:
        return None
    line = line_of(names)
    if not line:
        return None  # not a lock (a registration path), or nobody in line: only the runner can tell
    pending = [client.get_async(paths.join(path, name)) for name in line]
    ids = set()
    for result in pending:
        try:
            ids.add(holder_id(get(result)[0]))
        except NoNodeError:
            pass
    # nodes deleted between the listing and the reads are no line: only nodes read count
    return None if ident in ids or not ids else NOT_IN_LINE


def wait_drained(client, path, ident, deadline, op_timeout):
    """Wait (until the time.monotonic() *deadline*) until ID holds nothing at PATH: why (holds()),
    UNDRAINED, or None at the deadline."""
    changed = threading.Event()

    def watch(_event):  # one function: kazoo keeps a watcher once per function, not once per recheck
        changed.set()

    while True:
        changed.clear()
        state = retried(lambda get: holds(client, path, ident, watch, get), op_timeout)
        if state is not None:
            return state
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        changed.wait(min(left, RECHECK))
