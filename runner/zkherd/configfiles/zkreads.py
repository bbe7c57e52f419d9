"""The znodes templates read (configfiles/templates.py): a cache that watches decide is still true,
and the proof that one render read one consistent state.

Every read leaves a watch (a data watch on a value, a child watch on a listing, an exists watch on
a znode that is missing). A watch that fires marks its path invalid (on kazoo's callback thread,
under a lock) and wakes the loop; the next render drops those entries and reads them again, so a
change among 200 znodes costs one read, not 200. The other znodes the previous render read and that
are not cached are fetched pipelined before the render starts.

Why a cached entry can be trusted: ZooKeeper sends a watch notification before any reply to a
request it serves after the change, and kazoo queues notifications on its callback thread before it
hands over any later reply. So after the last reply of a render, a no-op put on that same callback
queue (confirm()) runs after every notification for a change the server had made by then: if none
of them touched a znode the render used, every value used was still true when the server served
that last reply - one moment, one consistent state. If one did, the render is thrown away (Moving)
and done again. This also covers a value read and then changed within the render, which a cache
could not check with zxids alone.
"""

from __future__ import annotations

import threading

from kazoo.exceptions import ConnectionLoss, KazooException, NoNodeError, SessionExpiredError
from kazoo.protocol.states import Callback

from zkherd.common import paths
from zkherd.common.connection import translate

DATA, CHILDREN = "data", "children"


class RenderError(Exception):
    """A template that cannot be rendered (it raised, or read what it may not); *version*: the newest
    zxid it had read."""

    def __init__(self, message, version=0):
        super().__init__(message)
        self.message, self.version = message, version


class Moving(Exception):
    """What a render read changed while it was read: render again in a moment."""


class ZnodeCache:
    def __init__(self, post):
        self.post = post
        self.entries = {}  # (DATA, path) -> (bytes, stat) or None (missing); (CHILDREN, path) -> (names, stat) or None
        self.used = set()  # the paths read by the current render
        self.absent = {}  # path found missing -> pzxid of its nearest existing ancestor (its version)
        # path -> that number when it was first found missing, kept while it stays missing (rechecks and
        # new connections included): the same inputs keep one version, whatever changes beside them
        self.missing_since = {}
        self._invalid = set()  # paths whose watch fired (written by kazoo's callback thread)
        self._everything = False  # a connection loss: no cached entry is trusted
        self._lock = threading.Lock()
        self.pending = {}  # key -> async result of a read sent ahead (prefetch)

    def _watch(self, event):
        with self._lock:
            if event.path is None:
                self._everything = True
            else:
                self._invalid.add(event.path)
        self.post("template", event.path)

    def forget(self):
        """A new connection or session: nothing cached is trusted (watches may be gone)."""
        with self._lock:
            self._everything = True

    def begin(self):
        """Start a render: drop what watches said changed."""
        with self._lock:
            invalid, everything = self._invalid, self._everything
            self._invalid, self._everything = set(), False
        if everything:
            self.entries.clear()
            self.absent.clear()
        else:
            for path in invalid:
                self.entries.pop((DATA, path), None)
                self.entries.pop((CHILDREN, path), None)
                self.absent.pop(path, None)
        self.pending = {}
        self.used = set()

    def absent_in_use(self):
        """The znodes the last render found missing."""
        return [path for path in self.absent if path in self.used]

    def recheck_absent(self):
        """Read the missing znodes again on the next render: ZooKeeper does not deliver the exists
        watch's NodeCreated to a client that may not read the new znode, so one created with such an
        ACL would otherwise stay unseen - and the default, or the wait, silent - for ever."""
        with self._lock:
            self._invalid.update(self.absent_in_use())

    def prefetch(self, client, keys):
        """Send the reads of *keys* that are not cached, all at once (answers are collected as used)."""
        for key in keys:
            if key not in self.entries and key not in self.pending:
                self.pending[key] = self._send(client, key)

    def _send(self, client, key):
        kind, path = key
        if kind == DATA:
            return client.get_async(path, watch=self._watch)
        return client.get_children_async(path, watch=self._watch, include_data=True)

    def read(self, loop, key):
        """The entry of *key*: (bytes or names, stat), or None if the znode is missing."""
        self.used.add(key[1])
        if key in self.entries:
            return self.entries[key]
        result = self.pending.pop(key, None) or self._send(loop.client, key)
        try:
            entry = loop.get(result)
        except NoNodeError:
            entry = None
            path = key[1]
            # its number first, then the check that it is still missing: a creation in between is Moving
            number = self.missing_since.get(path) or self._ancestor_pzxid(loop, path)
            if loop.get(loop.client.exists_async(path, watch=self._watch)) is not None:
                raise Moving("%s appeared while it was read" % path) from None
            self.absent[path] = self.missing_since[path] = number
        except (ConnectionLoss, SessionExpiredError):
            raise  # the loop tries again
        except KazooException as exc:  # denied by its ACL, say: the template's problem, not the runner's end
            raise RenderError("cannot read znode %s: %s" % (key[1], translate(exc, "read", key[1]).message)) from None
        if entry is not None:
            self.missing_since.pop(key[1], None)
        self.entries[key] = entry
        return entry

    def _ancestor_pzxid(self, loop, path):
        """The pzxid of the nearest existing ancestor of the missing *path*: at least the zxid that
        deleted it (or its branch), so a render that now misses it has a newer version than one
        that read it. No watch is needed on the ancestor: the exists watch on *path* says when the
        missing znode comes back. Taken once when it is found missing (missing_since): a sibling's
        change would make the number larger, and a failed version come back as a new one."""
        while path != "/":
            path = paths.parent(path)
            stat = loop.get(loop.client.exists_async(path))
            if stat is not None:
                return stat.pzxid
        return 0

    def read_many(self, loop, keys):
        """[entry] of several keys, their reads sent together."""
        keys = list(keys)
        self.prefetch(loop.client, keys)
        return [self.read(loop, key) for key in keys]

    def confirm(self, loop):
        """After the last reply of a render: Moving if a watch says a znode it used changed."""
        done = threading.Event()
        loop.client.handler.dispatch_callback(Callback("barrier", done.set, ()))
        if not done.wait(loop.op_timeout()):
            raise Moving("kazoo's callback thread is busy")
        with self._lock:
            moved = self._everything or bool(self._invalid & self.used)
        if moved:
            raise Moving("a znode a template read changed while it was read")
        if len(self.entries) > 2 * len(self.used) + 64:  # what no template reads any more is not kept
            self.entries = {key: entry for key, entry in self.entries.items() if key[1] in self.used}
            self.absent = {path: zxid for path, zxid in self.absent.items() if path in self.used}
            self.missing_since = {path: zxid for path, zxid in self.missing_since.items() if path in self.used}

    def version(self):
        """The newest zxid among the entries the render used; a znode it found missing counts the
        pzxid of its nearest existing ancestor (a deletion shows there, not in any mzxid): whatever
        changes in the inputs, deletions included, makes a newer version."""
        newest = max((zxid for path, zxid in self.absent.items() if path in self.used), default=0)
        for (_kind, path), entry in self.entries.items():
            if entry is not None and path in self.used:
                newest = max(newest, entry[1].mzxid, entry[1].pzxid)
        return newest
