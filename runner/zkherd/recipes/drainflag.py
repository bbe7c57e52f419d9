"""Drain flags: an operator's "stay out of PATH" for the runner of one id (`zkherd drain`), and the
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
which is the wanted outcome."""

from __future__ import annotations

import json
import os
import socket
import time
from urllib.parse import quote, unquote

from kazoo.exceptions import NodeExistsError, NoNodeError, NotEmptyError

from zkherd.common import paths

FLAGS, ANSWERS = "/zkherd/drain", "/zkherd/drained"


def encode(text):
    """One znode name for *text* (a path or an id); '.' and '..' alone are no names."""
    name = quote(text, safe="")
    return name.replace(".", "%2E") if name in (".", "..") else name


def flag_path(path, ident):
    return paths.join(paths.join(FLAGS, encode(path)), encode(ident))


def answer_path(path, ident):
    return paths.join(paths.join(ANSWERS, encode(path)), encode(ident))


def flags_of(path):
    """The folders of the flags and answers of *path* (for status)."""
    return paths.join(FLAGS, encode(path)), paths.join(ANSWERS, encode(path))


def decode(name):
    return unquote(name)


def answer_data(ident):
    return json.dumps({"id": ident, "host": socket.gethostname(), "pid": os.getpid(), "since": time.time()},
                      sort_keys=True).encode("utf-8")


def set_flag(client, path, ident, get):
    """Make the flag (nothing if it is there): its stat."""
    node = flag_path(path, ident)
    data = json.dumps({"by": socket.gethostname(), "at": time.time()}, sort_keys=True).encode("utf-8")
    try:
        get(client.create_async(node, data, makepath=True))
    except NodeExistsError:
        pass  # drained already, or our own create whose reply was lost
    return get(client.exists_async(node))


class FlagNotEmpty(Exception):
    """A flag node with children: not made by zkherd (flags have none); left for the operator."""


def clear_flag(client, path, ident, get):
    """Delete the flag: True if it was there (a retry after a lost reply says False)."""
    try:
        get(client.delete_async(flag_path(path, ident)))
        return True
    except NoNodeError:
        return False
    except NotEmptyError:
        raise FlagNotEmpty(flag_path(path, ident)) from None


def answered(flag, answer):
    """The answer (a stat or None) was made for this flag (a stat): younger than it, and ephemeral
    (a runner's answer goes with its session; a persistent node there is someone else's)."""
    return flag is not None and answer is not None and answer.czxid > flag.czxid and answer.ephemeralOwner != 0
