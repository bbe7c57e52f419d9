"""Registration for discovery, as zkdo did it: an ephemeral sequential znode PATH<seq> holding the
given data, present while the child runs, created again with the same data after a session
expiry, removed when the child stops.

Safe against a lost reply (sequential.py): a create or delete that got no answer leaves the
registration *doubtful* - a node of ours may be there or not. The next ensure() or remove() first
looks for our nodes among PATH's siblings (owned by our session, holding our data): ensure() keeps
the first and deletes any other, remove() deletes them all. The name stays the user's PATH<seq>:
that is what discovery consumers parse.

A node deleted by hand is made again: ensure() watches our node and looks once more whenever the
watch fires or the connection is new (the child keeps the ZKHERD_REGISTERED_PATH it started with).
"""

from __future__ import annotations

from kazoo.exceptions import ConnectionLoss

from zkherd.common import paths
from zkherd.common.connection import translate
from zkherd.core.session import ours
from zkherd.recipes.sequential import create, delete_all, made_as, nothing_made, own_nodes


class Registration:
    def __init__(self, path, data, log, wakeup=None):
        self.path = path
        self.data = data
        self.log = log
        self.wakeup = wakeup
        self.node = None
        self.unchecked = False  # our node may be gone: look (and watch) again on the next ensure()
        self.doubtful = False  # a create or delete of ours got no answer: a node of ours may be there
        self.folder, self.prefix = paths.parent(path), path.rsplit("/", 1)[1]  # our nodes: FOLDER/PREFIX<seq>

    def ensure(self, client, timeout):
        """Our node's path, made if needed (again, if it was deleted by hand)."""
        if self.node is not None and self.unchecked:
            self._check(client, timeout)
        if self.node is None:
            try:
                self._ensure(client, lambda result: result.get(timeout=timeout))
            except Exception as exc:
                if isinstance(exc, client.handler.timeout_exception):
                    raise
                raise translate(exc, "register at", self.path) from None
        node = self.node
        if self.unchecked:  # a new node: watch it at once (if it is gone already, the watch's wakeup says so)
            self._check(client, timeout)
        return node

    def _ensure(self, client, get):
        if self.doubtful:
            mine = self._find(client, get)
            if mine:
                self.node = mine[0]
                delete_all(client, mine[1:], get)
                self.doubtful = False
                self.unchecked = True
                self.log.info("registered (found the node made by an earlier try that got no answer)", node=self.node,
                              duplicates_deleted=len(mine) - 1)
                return
        self.doubtful = True  # until the answer comes
        try:
            self.node = create(client, self.path, self.data, get, ephemeral=True, sequence=True)
        except Exception as exc:
            self.doubtful = not nothing_made(exc)
            raise
        self.doubtful = False
        self.unchecked = True  # watch it from now on
        self.log.info("registered", node=self.node, data=self.data.decode("utf-8", "replace")[:200])

    def _check(self, client, timeout):
        """Watch our node; forget it if it is gone, so that ensure() makes it again."""
        self.unchecked = False  # before the request: a watch that fires meanwhile sets it again
        try:
            there = client.exists_async(self.node, watch=self._watch).get(timeout=timeout)
        except Exception as exc:
            self.unchecked = True
            if isinstance(exc, client.handler.timeout_exception):
                raise
            raise translate(exc, "look at the registration", self.node) from None
        try:
            mine = ours(client, there)
        except ConnectionLoss:
            self.unchecked = True  # looked at again with a connection
            raise
        if not mine:
            self.log.warning("our registration was deleted; registering again", node=self.node)
            self.node = None
            if self.wakeup is not None:
                self.wakeup.post("registration", None)  # made again on the next turn

    def _watch(self, event):
        self.unchecked = True  # a plain flag: read by the loop's thread on its next turn
        if self.wakeup is not None:
            self.wakeup.post("registration", event.path)

    def recheck(self):
        """A new connection: watches set before it may be gone."""
        self.unchecked = self.node is not None

    def remove(self, client, timeout):
        """Delete our node (and, if doubtful, any node of ours). Raises if ZooKeeper does not
        answer: the registration is doubtful then, and the next ensure() or remove() looks first."""
        if self.node is None and not self.doubtful:
            return

        def get(result):
            return result.get(timeout=timeout)

        node, self.node, self.unchecked = self.node, None, False
        doubtful, self.doubtful = self.doubtful, True  # until the answer comes
        targets = [node] if node is not None else []
        if doubtful:
            targets = sorted(set(targets) | set(self._find(client, get)))
        delete_all(client, targets, get)
        self.doubtful = False
        if targets:
            self.log.info("unregistered", node=",".join(targets))

    def _find(self, client, get):
        """The paths of our nodes (our session's, with our data), in sequence order."""
        found = own_nodes(client, self.folder, made_as(self.prefix), get, data=self.data)
        return [paths.join(self.folder, name) for name, _stat in found]

    def forget_session(self):
        """The session expired: the server deleted our ephemeral nodes."""
        self.node = None
        self.doubtful = self.unchecked = False
