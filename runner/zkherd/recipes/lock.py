"""A lock for N holders (N=1: a mutex) without a herd effect, that stays exclusive when one of a
holder's nodes is deleted by hand.

Each contender creates, in one transaction, two ephemeral sequential znodes under the lock path:

  lock-TOKEN-NNNNNNNNNN   its place in line
  run-TOKEN-NNNNNNNNNN    deleted only once its child is dead

TOKEN is new for each attempt to queue (sequential.py): if the reply to the transaction is lost,
the retry finds the pair that the first try made (by the token, owned by our session) instead of
queueing a second pair behind it that nobody would delete. The sequence stays last, so names of
runners that made plain lock-NNNNNNNNNN nodes sort into the same line.

Both lines are in the same order (one transaction each, applied one after the other). A contender
may run its child when it is among the first N of *both* lines. A waiter watches only the nodes at
most N places ahead of it in each line: nodes further ahead going away cannot change its standing.

A holder whose lock- node is deleted by hand stops its child and deletes its run- node only then;
the next in line is first in the lock- line at once, but not in the run- line until the old child
is dead. The same holds the other way round when a run- node is deleted by hand. The fencing
token is the czxid of the run- node: it grows with every new holder.

A persistent (or container) node in either line is foreign (foreign.py): no runner holds it and
it would never go away (a client that may write the lock can squat it that way). It is left out of
the line, logged and alerted (aggregated, rate-limited). We learn it from the stats of the nodes we
wait on, which we fetch anyway to watch them: a lock without one costs nothing more. When one is
found, the stats of every node ahead are fetched at once (pipelined, one round trip) and the
foreign ones remembered, so that no look walks past them one round trip at a time. Skipping them
keeps mutual exclusion: every contender sees the same stat for a node, and a node that no session
owns runs no child.

Both nodes hold the same JSON object, for `zkherd status` and operators (holdernote.py): who we
are, and in the run- node, once we hold the lock, since when and what publish() was told. Nothing
in the recipe reads it back: runners of older versions, whose nodes hold the bare id, share the line.

Names are parsed strictly: a sequence suffix is ten ASCII digits ('lock-' + ten superscript twos
is no node of ours, whatever str.isdigit() says).
"""

from __future__ import annotations

from kazoo.exceptions import (
    ConnectionLoss,
    KazooException,
    NoChildrenForEphemeralsError,
    NoNodeError,
    SessionExpiredError,
)

from zkherd.common import paths
from zkherd.common.connection import ZkError, translate
from zkherd.common.errors import USAGE
from zkherd.core.session import ours
from zkherd.recipes.foreign import ForeignNodes, is_foreign
from zkherd.recipes.holdernote import HolderNote
from zkherd.recipes.sequential import in_order, made_as, new_token, own_nodes, tagged

QUEUE, RUN = "lock-", "run-"


def _ahead(line, name, slots):
    """The nodes we wait for: up to *slots* places ahead of *name*, none if it is among the first."""
    index = line.index(name)
    return line[max(0, index - slots):index] if index >= slots else []


class LockLost(Exception):
    pass


class Lock:
    def __init__(self, path, slots, ident, wakeup, log, op_timeout, event="lock", on_foreign=None, kind="lock"):
        self.path, self.slots = path, slots
        self.note = HolderNote(ident, slots, kind)  # what our nodes say about us
        self.event = event  # what our watches post to the main loop
        self.wakeup, self.log, self.op_timeout = wakeup, log, op_timeout
        self.client = None
        self.place = None  # our lock- node name
        self.queue_place = None  # our place in line when last looked at: 1 = next, 0 = among the holders
        self.run = None  # our run- node name
        self.token = None
        self.attempt = None  # the token of our nodes, set before the transaction that makes them is sent
        self.lost = False  # one of our nodes went: release deletes only what is still ours
        self.foreign = ForeignNodes(path, log, on_foreign)

    def _watch(self, event):
        self.wakeup.post(self.event, event.path)

    def _get(self, result):
        timeout = self.op_timeout() if callable(self.op_timeout) else self.op_timeout  # the loop's, fence-bounded
        return result.get(timeout=timeout)

    @property
    def node(self):
        return paths.join(self.path, self.place) if self.place else None

    @property
    def engaged(self):
        """We have nodes in the lock, or may have (a transaction got no answer): release() first."""
        return any(x is not None for x in (self.place, self.run, self.attempt))

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
        if self.attempt is not None:  # an earlier try got no answer: it may have queued us
            self.place, self.run = self._recover(client)
            if self.place or self.run:
                self.log.info("found our place in line, made by an earlier try that got no answer", lock=self.path,
                              node=self.node or paths.join(self.path, self.run))
                if not (self.place and self.run):
                    self.lost = True
                    raise LockLost("one of the lock nodes made by a try whose reply was lost is gone")
                return
        else:
            self.attempt = new_token()
        self._get(client.ensure_path_async(self.path))
        txn = client.transaction()
        txn.create(paths.join(self.path, tagged(QUEUE, self.attempt)), self.note.queued, ephemeral=True, sequence=True)
        txn.create(paths.join(self.path, tagged(RUN, self.attempt)), self.note.queued, ephemeral=True, sequence=True)
        results = self._get(txn.commit_async())
        failed = next((r for r in results if isinstance(r, Exception)), None)
        if failed is not None:  # answered, and a transaction is all or nothing: none of it was made
            self.attempt = None
            if isinstance(failed, NoChildrenForEphemeralsError):  # another tool's one-node lock (exit 64)
                raise ZkError("cannot queue for the lock %s: %s is an ephemeral znode, another tool's lock held "
                              "as one node (zkdo's -lock is), so no line can be made under it; stop that holder "
                              "or use another path (docs/migration.md)" % (self.path, self.path), USAGE)
            raise translate(failed, "queue for the lock", self.path)
        self.place, self.run = (r.rsplit("/", 1)[1] for r in results)

    def _recover(self, client):
        """(lock- name, run- name) of the nodes of our attempt in progress, each None if not there."""
        mine = [name for name, _stat in own_nodes(client, self.path, self._of_attempt, self._get)]
        return (next((n for n in mine if n.startswith(QUEUE)), None),
                next((n for n in mine if n.startswith(RUN)), None))

    def _of_attempt(self, name):
        return made_as(tagged(QUEUE, self.attempt))(name) or made_as(tagged(RUN, self.attempt))(name)

    def _watch_own(self):
        """Watch our own nodes from now on (a deletion by hand must reach us at once), check that
        they are ours, and take the fencing token from the run- node."""
        client = self.client
        pending = [client.exists_async(paths.join(self.path, n), watch=self._watch) for n in (self.run, self.place)]
        stat, held = [self._get(p) for p in pending]
        if not (ours(client, stat) and ours(client, held)):
            self.lost = True
            raise LockLost("our lock nodes were deleted as soon as they were made")
        self.token = stat.czxid
        self.log.info("queued for lock", lock=self.path, node=self.node)

    def _step(self):
        if self.place is None:
            self._enqueue()
        if self.token is None:  # also when a try was cut off right after the transaction
            self._watch_own()
        # Our own nodes are looked at (and watched) in the same round trip as the line: if we hold
        # the lock, the child may start without another one (see still_held()).
        look = self.client.get_children_async(self.path, include_data=True)
        own = self._look_at_own(self.client)
        children, folder = self._get(look)
        self.foreign.folder_is(folder.czxid)
        line, runs = in_order(children, QUEUE), in_order(children, RUN)
        if self.place not in line or self.run not in runs:
            self.lost = True
            raise LockLost("one of our lock nodes (%s, %s) is gone" % (self.place, self.run))
        self.queue_place = max(0, line.index(self.place) - self.slots + 1)  # 1: next in line (metrics, status)
        waiting_for = self._waiting_for(line, runs)
        self.log.debug("lock: looked at the line", lock=self.path, contenders=len(line),
                       waiting_for=",".join(waiting_for or ()) or "-")
        if waiting_for is None:
            return self._step()  # one of them went meanwhile: look again
        if not waiting_for:
            # We hold it: watch our own nodes (again) before the child may start. A connection
            # loss clears every watch - kazoo does not set them again on the new connection - and
            # a deletion by hand must still reach us while the child runs.
            if not self._held(self.client, own):
                raise LockLost("one of our lock nodes (%s, %s) is gone" % (self.place, self.run))
            self.note.holding(self.client, paths.join(self.path, self.run))
            return True
        if not set(waiting_for) & set(line):
            self.log.info("first in line, waiting for an earlier holder's child to end", lock=self.path,
                          waiting_for=",".join(waiting_for))
        return False

    def _waiting_for(self, line, runs):
        """The nodes ahead of us that we wait for, each watched, foreign ones left out; None if
        one of them is gone already."""
        skip, found, stats = set(self.foreign.names), [], {}
        try:
            while True:
                wanted = (_ahead([n for n in line if n not in skip], self.place, self.slots)
                          + _ahead([n for n in runs if n not in skip], self.run, self.slots))
                new = [n for n in wanted if n not in stats]
                stats.update(zip(new, self._stats(new, watch=True)))
                if any(stats[n] is None for n in wanted):
                    return None
                foreign = [n for n in wanted if is_foreign(stats[n])]
                if not foreign:
                    return wanted
                # more may wait further ahead: learn the stats of all the others at once
                ahead = line[:line.index(self.place)] + runs[:runs.index(self.run)]
                rest = [n for n in ahead if n not in skip and n not in stats]
                foreign += [n for n, stat in zip(rest, self._stats(rest)) if stat is not None and is_foreign(stat)]
                skip.update(foreign)
                found += foreign
        finally:
            self.foreign.report(found)

    def _stats(self, names, watch=False):
        """The stats of *names* (None: gone), pipelined: one round trip however many."""
        pending = [self.client.exists_async(paths.join(self.path, n), watch=self._watch if watch else None)
                   for n in names]
        return [self._get(p) for p in pending]

    def still_held(self, client):
        """After a watch fired while holding: are our lock- and run- nodes both still there, and
        still ours (not a node of the same name made by someone else after deleting ours)?"""
        held = self._held(client, self._look_at_own(client))
        if held:
            self.note.resend(client, paths.join(self.path, self.run))
        return held

    def publish(self, **told):
        """While we hold the lock: *told* goes into our run- node for `zkherd status` (holdernote.py)."""
        self.note.publish(self.client, paths.join(self.path, self.run) if self.run else None, **told)

    def _look_at_own(self, client):
        return [client.exists_async(paths.join(self.path, n), watch=self._watch) for n in (self.place, self.run)]

    def _held(self, client, pending):
        held = all(ours(client, self._get(p)) for p in pending)
        self.lost = self.lost or not held
        return held

    def release(self, client):
        """Delete what is left of our nodes, in one transaction (one wake-up for the next in
        line); called only once our child is dead."""
        if self.place is None and self.run is None and self.attempt is not None:
            self.place, self.run = self._recover(client)  # a transaction got no answer: it may have queued us
            self.lost = True
        names = [n for n in (self.run, self.place) if n]
        if self.lost:  # someone deleted one of them and may have made a node of the same name
            pending = [(n, client.exists_async(paths.join(self.path, n))) for n in names]
            names = [n for n, result in pending if ours(client, self._get(result))]
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
        self.place = self.run = self.token = self.attempt = None
        self.lost = False
        self.note.reset()

    def leave(self, client):
        """release() where a failure must not escape (after LockLost): True once done; False if
        ZooKeeper cannot be asked now - our nodes are kept track of, and the next step, finding
        them lost again, comes back here (they are ephemeral: the session takes them at worst)."""
        try:
            self.release(client)
            return True
        except (KazooException, client.handler.timeout_exception) as exc:
            self.log.debug("could not leave the lock yet, trying again", lock=self.path, error=type(exc).__name__)
            return False

    def forget_session(self):
        """The session expired: the server deleted our ephemeral nodes."""
        self.place = self.run = self.token = self.attempt = None
        self.lost = False
        self.note.reset()
