"""A lock for N holders (N=1: a mutex) without a herd effect, that stays exclusive when a lock node
is deleted by hand.

Two queues of ephemeral sequential znodes under the lock path:

  lock-NNNNNNNNNN   every contender's place in line. The first N hold the lock. A waiter at
                    place i watches only the N places before it (i-N .. i-1): when one of them goes,
                    it looks again; nodes further ahead going away cannot change its standing.
  run-NNNNNNNNNN    created by a holder, in one transaction with a check that its lock- node still
                    exists, before its child starts; deleted only after its child is dead. A holder
                    starts its child only when its run- node is among the first N run- nodes.

So if somebody deletes a holder's lock- node by hand, the next in line becomes a holder at once
but waits for the old holder's run- node, which goes only once the old child is dead. The fencing
token is the czxid of the run- node: it grows with every new holder.
"""

from __future__ import annotations

from kazoo.exceptions import ConnectionLoss, KazooException, NoNodeError, SessionExpiredError

from zkherd.common import paths
from zkherd.common.connection import translate

QUEUE, RUN = "lock-", "run-"


def _sequence(name):
    return int(name[-10:])


def _line(children, prefix):
    return sorted((c for c in children if c.startswith(prefix) and c[-10:].isdigit()), key=_sequence)


class LockLost(Exception):
    pass


class Lock:
    def __init__(self, path, slots, ident, wakeup, log, op_timeout):
        self.path = path
        self.slots = slots
        self.ident = ident.encode("utf-8")
        self.wakeup = wakeup
        self.log = log
        self.op_timeout = op_timeout
        self.client = None
        self.place = None  # our lock- node name
        self.run = None  # our run- node name
        self.token = None

    def _watch(self, event):
        self.wakeup.post("lock", event.path)

    def _get(self, result):
        return result.get(timeout=self.op_timeout)

    @property
    def node(self):
        return paths.join(self.path, self.place) if self.place else None

    def step(self, client):
        """Move towards holding; True when our child may run now. Called on every event."""
        self.client = client
        try:
            return self._step()
        except (ConnectionLoss, SessionExpiredError):
            raise  # the loop tries again once connected
        except KazooException as exc:
            raise translate(exc, "take the lock", self.path) from None

    def _step(self):
        client = self.client
        if self.place is None:
            path = self._get(client.create_async(paths.join(self.path, QUEUE), self.ident,
                                                 ephemeral=True, sequence=True, makepath=True))
            self.place = path.rsplit("/", 1)[1]
            self.log.info("queued for lock", lock=self.path, node=path)
        children = self._get(client.get_children_async(self.path))
        line = _line(children, QUEUE)
        if self.place not in line:
            self._forget("our lock node %s is gone" % self.node)
        index = line.index(self.place)
        if index >= self.slots:
            return self._wait_for(line[index - self.slots:index])
        if self.run is None:
            txn = client.transaction()
            txn.check(self.node, -1)
            txn.create(paths.join(self.path, RUN), self.ident, ephemeral=True, sequence=True)
            results = self._get(txn.commit_async())
            if isinstance(results[0], NoNodeError):
                self._forget("our lock node %s is gone" % self.node)
            failed = next((r for r in results if isinstance(r, Exception)), None)
            if failed is not None:
                raise translate(failed, "create a run node under", self.path)
            self.run = results[1].rsplit("/", 1)[1]
            children = self._get(client.get_children_async(self.path))
        runs = _line(children, RUN)
        if self.run not in runs:
            self._forget("our run node %s/%s is gone" % (self.path, self.run))
        index = runs.index(self.run)
        if index >= self.slots:
            self.log.info("lock held, waiting for an earlier holder's child to end", lock=self.path,
                          waiting_for=",".join(runs[index - self.slots:index]))
            return self._wait_for(runs[index - self.slots:index])
        stat = self._get(client.exists_async(paths.join(self.path, self.run), watch=self._watch))
        held = self._get(client.exists_async(self.node, watch=self._watch))
        if stat is None or held is None:
            self._forget("our lock node was deleted while we took the lock")
        self.token = stat.czxid
        return True

    def _wait_for(self, names):
        """Watch the nodes ahead of us; if one is already gone, look again now."""
        pending = [self.client.exists_async(paths.join(self.path, n), watch=self._watch) for n in names]
        if any(self._get(p) is None for p in pending):
            return self._step()
        return False

    def still_held(self, client):
        """After a watch fired while holding: are our lock- and run- nodes both still there?"""
        nodes = [paths.join(self.path, self.place), paths.join(self.path, self.run)]
        pending = [client.exists_async(n, watch=self._watch) for n in nodes]
        return all(self._get(p) is not None for p in pending)

    def _forget(self, why):
        self.place = None
        raise LockLost(why)

    def release(self, client):
        """Delete our run- and lock- nodes in one transaction (one wake-up for the next in line);
        called only once our child is dead."""
        names = [n for n in (self.run, self.place) if n]
        if names:
            txn = client.transaction()
            for name in names:
                txn.delete(paths.join(self.path, name))
            if any(isinstance(r, Exception) for r in self._get(txn.commit_async())):
                for name in names:  # one was deleted by hand: delete what is left
                    try:
                        self._get(client.delete_async(paths.join(self.path, name)))
                    except NoNodeError:
                        pass
        self.place = self.run = self.token = None

    def forget_session(self):
        """The session expired: the server deleted our ephemeral nodes."""
        self.place = self.run = self.token = None
