"""Registration for discovery, as zkdo did it: an ephemeral sequential znode PATH<seq> holding the
given data, present while the child runs, created again with the same data after a session
expiry, removed when the child stops."""

from __future__ import annotations

from kazoo.exceptions import NoNodeError

from zkherd.common.connection import translate


class Registration:
    def __init__(self, path, data, log):
        self.path = path
        self.data = data
        self.log = log
        self.node = None

    def ensure(self, client, timeout):
        if self.node is None:
            try:
                self.node = client.create_async(self.path, self.data, ephemeral=True, sequence=True,
                                                makepath=True).get(timeout=timeout)
            except Exception as exc:
                if isinstance(exc, client.handler.timeout_exception):
                    raise
                raise translate(exc, "register at", self.path) from None
            self.log.info("registered", node=self.node, data=self.data.decode("utf-8", "replace")[:200])
        return self.node

    def remove(self, client, timeout):
        if self.node is not None:
            try:
                client.delete_async(self.node).get(timeout=timeout)
                self.log.info("unregistered", node=self.node)
            except NoNodeError:
                pass
            self.node = None

    def forget_session(self):
        self.node = None
