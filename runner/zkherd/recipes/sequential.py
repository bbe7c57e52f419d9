"""Ephemeral sequential nodes of ours: their names, their order, and finding them again after a
lost reply.

A create whose reply never comes (the connection dropped after the server applied it, or the
request timed out) may or may not have made its node. Trying again blindly makes a second one;
the first, an ephemeral node of our own live session, then stays until the session ends - a
phantom that holds a slot of a lock, leads a pool or registers a service twice. So every create
that a retry may repeat remembers that its outcome is unknown, and the retry first looks for what
the earlier try made:

- Nodes whose names are ours to choose (lock-, run-, member-) carry a per-attempt token, as
  kazoo's lock recipe does: PREFIX + TOKEN + '-' + the server's ten-digit sequence, which stays
  last so that the order of a line is still the order of the sequence (in_order).
- Nodes whose name the user chose (a registration, PATH<seq>, which discovery consumers parse)
  are ours when our session owns them and they hold our data.

Either way only nodes that our session owns count (own_nodes). The look starts with a sync: a
create that reached the server before our connection dropped is then visible, whichever server
we talk to now (a request of the old connection that arrives later is refused by the leader: the
session moved).
"""

from __future__ import annotations

import os

from kazoo.exceptions import ConnectionLoss, KazooException, NoNodeError, OperationTimeoutError

from zkherd.common import paths
from zkherd.common.sequence import in_order, is_sequence  # one rule (common/sequence.py)
from zkherd.core.session import session_id

__all__ = ["in_order", "is_sequence"]  # also used from here by the recipes and status


def new_token():
    """A fresh attempt token: 64 random bits, so no other contender's node carries it."""
    return os.urandom(8).hex()  # as secrets.token_hex, without importing hmac


def tagged(prefix, token):
    """The name to create for an attempt: the server appends the sequence number."""
    return "%s%s-" % (prefix, token)


def nothing_made(exc):
    """True if *exc*, raised by a create, is the server's answer that it made nothing (not a
    connection loss or a timeout, after which the node may exist)."""
    return isinstance(exc, KazooException) and not isinstance(exc, (ConnectionLoss, OperationTimeoutError))


def create(client, path, data, get, **flags):
    """create_async(path, data, **flags) whose every request is one we wait for: missing parents are
    made by us after the server's NoNodeError, then the create is sent again. Never kazoo's
    makepath=True: kazoo answers the NoNodeError from its own thread, whether or not anyone still
    waits, so a create we gave up on (a timeout, then a look that found nothing and a second
    create) would land later as a node of our session that nothing deletes. A NoNodeError is the
    server's answer that nothing was made, so trying again is safe; a folder deleted by hand each
    time we made it (three times) ends it."""
    for _attempt in range(2):
        try:
            return get(client.create_async(path, data, **flags))
        except NoNodeError:
            get(client.ensure_path_async(paths.parent(path)))
    return get(client.create_async(path, data, **flags))


def made_as(prefix):
    """A name test: PREFIX followed by exactly a sequence number."""
    return lambda name: name.startswith(prefix) and is_sequence(name[len(prefix):])


def own_nodes(client, folder, wanted, get, data=None):
    """[(name, stat)] of the children of *folder* for which wanted(name) holds, that our session
    owns and (if *data* is given) that hold *data*, in sequence order; [] if *folder* is missing.
    *get* waits for an async result (the caller's timeout). Reads are pipelined: one round trip
    for the names, one for all their stats or data."""
    owner = session_id(client)
    if owner is None:  # whose nodes they are cannot be told without a live session
        raise ConnectionLoss("no connection to ZooKeeper")
    get(client.sync_async(folder))
    try:
        names = [name for name in get(client.get_children_async(folder)) if wanted(name)]
    except NoNodeError:
        return []
    read = client.exists_async if data is None else client.get_async
    pending = [(name, read(paths.join(folder, name))) for name in names]
    found = []
    for name, result in pending:
        try:
            answer = get(result)
        except NoNodeError:
            continue
        stat = answer if data is None else answer[1]
        if stat is not None and stat.ephemeralOwner == owner and (data is None or answer[0] == data):
            found.append((name, stat))
    return sorted(found, key=lambda item: int(item[0][-10:]))


def delete_all(client, nodes, get):
    """Delete *nodes* (paths), pipelined; those already gone are fine."""
    pending = [client.delete_async(node) for node in nodes]
    for result in pending:
        try:
            get(result)
        except NoNodeError:
            pass
