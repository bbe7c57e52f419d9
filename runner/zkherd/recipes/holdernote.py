"""What a contender's lock nodes say about it, for `zkherd status` and operators (docs/operations.md,
"Node formats"); nothing in the lock recipe reads it back.

Both nodes are made holding {"id", "host", "pid", "slots", "kind"}. Once the contender holds the
lock, its run- node's data is set again with "since" (when it got the lock, its clock) and what the
user of the lock tells (a rolling-lock holder: the version it applies and its phase). These writes
are sent without waiting for the answer: a lost reply is harmless, and a failed write is sent again
by the next resend() (the lock calls it on its next look at its nodes).
"""

from __future__ import annotations

import json
import os
import socket
import time

from kazoo.exceptions import KazooException, NoNodeError


def holder_data(ident, slots, kind, **more):
    """Who we are; *more* once we hold the lock (since, and what was told)."""
    return json.dumps(dict({"id": ident, "host": socket.gethostname(), "pid": os.getpid(), "slots": slots,
                            "kind": kind}, **more), sort_keys=True).encode("utf-8")


class HolderNote:
    def __init__(self, ident, slots, kind):
        self.ident, self.slots, self.kind = ident, slots, kind
        self.since = None  # when we got the lock (time.time())
        self.told = {}  # what publish() was told while we hold it
        self.failed = False  # the last write failed: resend() sends it again
        self.sending = False  # a write is on its way (its answer not in yet)
        self.applied = False  # the last write was applied

    @property
    def queued(self):
        """The data both nodes are made with."""
        return holder_data(self.ident, self.slots, self.kind)

    def holding(self, client, node):
        """We got the lock (again after reset()): say since when. Found holding again (after a
        reconnect): again only if the last write is not known to be applied and none is on its way
        (each write fires our own watch on the node: writing on every look would loop)."""
        if self.since is None:
            self.since = time.time()
            self.publish(client, node)
        elif not self.applied and not self.sending:
            self.publish(client, node)

    def resend(self, client, node):
        if self.failed:
            self.publish(client, node)

    def publish(self, client, node, **told):
        """Set *node*'s data (our run- node) to who we are, since when we hold, and *told* (kept for
        the next writes). Not waited for."""
        self.told.update(told)
        if self.since is None or node is None or client is None:
            return
        self.failed = self.applied = False
        data = holder_data(self.ident, self.slots, self.kind, since=round(self.since, 3), **self.told)
        try:
            result = client.set_async(node, data)
        except KazooException:  # no connection now
            self.failed = True
            return
        self.sending = True
        result.rawlink(self._written)

    def _written(self, result):
        """On kazoo's callback thread: plain flags, read by the loop's thread on its next look."""
        self.sending = False
        if result.successful():
            self.applied = True
        elif not isinstance(result.exception, NoNodeError):
            self.failed = True

    def reset(self):
        """Our nodes are gone (released, or the session expired)."""
        self.since, self.told, self.failed, self.applied = None, {}, False, False
