"""Reading the nodes of a path for `zkherd status`: children with data and stat, pipelined (one
round trip for the names, one for all the nodes)."""

from __future__ import annotations

import json

from kazoo.exceptions import NoNodeError

from zkherd.common import paths


class Node:
    """A child as read: its name, data (bytes) and stat."""

    def __init__(self, name, data, stat):
        self.name, self.data, self.stat = name, data, stat

    @property
    def ephemeral(self):
        return self.stat.ephemeralOwner != 0

    @property
    def session(self):
        return "0x%x" % self.stat.ephemeralOwner if self.ephemeral else None

    @property
    def created(self):
        return self.stat.ctime / 1000.0

    @property
    def changed(self):
        return self.stat.mtime / 1000.0

    def text(self, limit=200):
        text = (self.data or b"").decode("utf-8", "replace")
        return text if len(text) <= limit else text[:limit] + "..."

    def json_object(self):
        """The data as a JSON object, or None."""
        try:
            doc = json.loads((self.data or b"").decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        return doc if isinstance(doc, dict) else None


def children(client, path, wait, wanted=None):
    """{name: Node} of *path*'s children (those for which wanted(name) holds); None if *path* is
    missing. Children that go while we look are left out."""
    try:
        names = wait(client.get_children_async(path))
    except NoNodeError:
        return None
    names = [n for n in names if wanted is None or wanted(n)]
    pending = [(name, client.get_async(paths.join(path, name))) for name in names]
    found = {}
    for name, result in pending:
        try:
            data, stat = wait(result)
        except NoNodeError:
            continue
        found[name] = Node(name, data, stat)
    return found


def node(client, path, wait):
    """The Node at *path*, or None."""
    try:
        data, stat = wait(client.get_async(path))
    except NoNodeError:
        return None
    return Node(path.rsplit("/", 1)[-1], data, stat)
