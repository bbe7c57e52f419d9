"""A lock for N holders (N=1: a mutex) without a herd effect, that stays exclusive when one of a
holder's nodes is deleted by hand.

Each contender creates, in one transaction, two ephemeral sequential znodes under the lock path:

  lock-NNNNNNNNNN   its place in line
  run-NNNNNNNNNN    deleted only once its child is dead

Both lines are in the same order (one transaction each, applied one after the other). A contender
may run its child when it is among the first N of *both* lines. A waiter watches only the nodes at
most N places ahead of it in each line: nodes further ahead going away cannot change its standing.

A holder whose lock- node is deleted by hand stops its child and deletes its run- node only then;
the next in line is first in the lock- line at once, but not in the run- line until the old child
is dead. The same holds the other way round when a run- node is deleted by hand. The fencing
token is the czxid of the run- node: it grows with every new holder.

A persistent (or container) node in either line is foreign: runners only make ephemeral nodes,
so no runner holds it and it would never go away (a client that may write the lock can squat it
that way). It is left out of the line, logged at WARNING once and reported to *on_foreign* (the
alert command). We learn it from the stats of the nodes we wait on, which we fetch anyway to watch
them: a foreign node costs one more look, a lock without one costs nothing more. Skipping it keeps
mutual exclusion: every contender sees the same stat for a node, and a node that no session owns
runs no child.
"""

from __future__ import annotations

from kazoo.exceptions import ConnectionLoss, KazooException, NoNodeError, SessionExpiredError

from zkherd.common import paths
from zkherd.common.connection import translate

QUEUE, RUN = "lock-", "run-"
# ephemeralOwner of the nodes that no session owns: 0 (persistent) and Long.MIN_VALUE (a container,
# which the server never deletes while it has had no children). TTL nodes go when their TTL ends.
NO_SESSION = (0, -(2 ** 63))


def _sequence(name):
    return int(name[-10:])


def in_order(children, prefix):
    return sorted((c for c in children if c.startswith(prefix) and c[-10:].isdigit()), key=_sequence)


def _ahead(line, name, slots):
    """The nodes we wait for: up to *slots* places ahead of *name*, none if it is among the first."""
    index = line.index(name)
    return line[max(0, index - slots):index] if index >= slots else []


class LockLost(Exception):
    pass


class Lock:
    def __init__(self, path, slots, ident, wakeup, log, op_timeout, event="lock", on_foreign=None):
        self.path = path
        self.event = event  # what our watches post to the main loop
        self.slots = slots
        self.ident = ident.encode("utf-8")
        self.wakeup = wakeup
        self.log = log
        self.op_timeout = op_timeout
        self.client = None
        self.place = None  # our lock- node name
        self.run = None  # our run- node name
        self.token = None
        self.lost = False  # one of our nodes went: release deletes only what is still ours
        self.on_foreign = on_foreign  # called with a message for each foreign node seen
        self.foreign = set()  # (name, czxid) of the foreign nodes already reported

    def _watch(self, event):
        self.wakeup.post(self.event, event.path)

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

    def _enqueue(self):
        client = self.client
        self._get(client.ensure_path_async(self.path))
        txn = client.transaction()
        txn.create(paths.join(self.path, QUEUE), self.ident, ephemeral=True, sequence=True)
        txn.create(paths.join(self.path, RUN), self.ident, ephemeral=True, sequence=True)
        results = self._get(txn.commit_async())
        failed = next((r for r in results if isinstance(r, Exception)), None)
        if failed is not None:
            raise translate(failed, "queue for the lock", self.path)
        self.place, self.run = (r.rsplit("/", 1)[1] for r in results)
        # watch our own nodes from now on: a deletion by hand must reach us at once
        pending = [client.exists_async(paths.join(self.path, n), watch=self._watch) for n in (self.run, self.place)]
        stat, held = [self._get(p) for p in pending]
        if stat is None or held is None:
            self.lost = True
            raise LockLost("our lock nodes were deleted as soon as they were made")
        self.token = stat.czxid
        self.log.info("queued for lock", lock=self.path, node=self.node)

    def _step(self):
        if self.place is None:
            self._enqueue()
        children = self._get(self.client.get_children_async(self.path))
        line, runs = in_order(children, QUEUE), in_order(children, RUN)
        if self.place not in line or self.run not in runs:
            self.lost = True
            raise LockLost("one of our lock nodes (%s, %s) is gone" % (self.place, self.run))
        self.log.debug("lock: looked at the line", lock=self.path, contenders=len(line))
        waiting_for = self._waiting_for(line, runs)
        if waiting_for is None:
            return self._step()  # one of them went meanwhile: look again
        if not waiting_for:
            # We hold it: watch our own nodes (again) before the child may start. A connection
            # loss clears every watch - kazoo does not set them again on the new connection - and
            # a deletion by hand must still reach us while the child runs.
            if not self.still_held(self.client):
                raise LockLost("one of our lock nodes (%s, %s) is gone" % (self.place, self.run))
            return True
        if not set(waiting_for) & set(line):
            self.log.info("first in line, waiting for an earlier holder's child to end", lock=self.path,
                          waiting_for=",".join(waiting_for))
        return False

    def _waiting_for(self, line, runs):
        """The nodes ahead of us that we wait for, each watched, foreign ones left out; None if
        one of them is gone already."""
        stats, foreign = {}, set()
        while True:
            wanted = (_ahead([n for n in line if n not in foreign], self.place, self.slots)
                      + _ahead([n for n in runs if n not in foreign], self.run, self.slots))
            new = [n for n in wanted if n not in stats]
            pending = [self.client.exists_async(paths.join(self.path, n), watch=self._watch) for n in new]
            stats.update(zip(new, (self._get(p) for p in pending)))
            if any(stats[n] is None for n in wanted):
                return None
            persistent = [n for n in wanted if stats[n].ephemeralOwner in NO_SESSION]
            if not persistent:
                return wanted
            for name in persistent:
                self._report_foreign(name, stats[name])
            foreign.update(persistent)

    def _report_foreign(self, name, stat):
        if (name, stat.czxid) in self.foreign:
            return
        self.foreign.add((name, stat.czxid))
        node = paths.join(self.path, name)
        action = ("delete it, and give the lock an ACL that only the deployment's credentials may write "
                  "(--acl auth::rwcda)")
        self.log.warning("foreign node in the lock, ignored: no session owns it, so no runner holds it; " + action,
                         lock=self.path, node=node)
        if self.on_foreign is not None:
            self.on_foreign("foreign node %s in the lock %s (owned by no session, ignored): %s"
                            % (node, self.path, action))

    def still_held(self, client):
        """After a watch fired while holding: are our lock- and run- nodes both still there, and
        still ours (not a node of the same name made by someone else after deleting ours)?"""
        pending = [client.exists_async(paths.join(self.path, n), watch=self._watch) for n in (self.place, self.run)]
        held = all(self._owned(client, self._get(p)) for p in pending)
        self.lost = self.lost or not held
        return held

    def release(self, client):
        """Delete what is left of our nodes, in one transaction (one wake-up for the next in
        line); called only once our child is dead."""
        names = [n for n in (self.run, self.place) if n]
        if self.lost:  # someone deleted one of them and may have made a node of the same name
            names = [n for n in names if self._ours(client, n)]
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
        self.lost = False

    def _ours(self, client, name):
        return self._owned(client, self._get(client.exists_async(paths.join(self.path, name))))

    @staticmethod
    def _owned(client, stat):
        return stat is not None and stat.ephemeralOwner == client.client_id[0]

    def forget_session(self):
        """The session expired: the server deleted our ephemeral nodes."""
        self.place = self.run = self.token = None
        self.lost = False
