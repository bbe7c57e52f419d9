"""Leader election for a pool of hosts: `zkherd elect` (a member), `zkherd is-leader`, `zkherd pool ls`.

Each member holds an ephemeral sequential znode ELECTION/member-TOKEN-NNNNNNNNNN whose data is its
id (default: the host name). The leader is the member with the lowest sequence number: derived
from ZooKeeper alone, with no persistent "master" znode that could outlive a dead leader. A member
watches only the member just ahead of it, and joins again with a new node after a session expiry.
TOKEN is new for each attempt to join (sequential.py): if the reply to the create is lost, the
retry finds the node the first try made instead of queueing a second one behind it - the first
would lead the pool in our name while we said we did not, until the session ended. Plain
member-NNNNNNNNNN nodes (older runners) sort into the same line.
"""

from __future__ import annotations

import signal
import sys
import time

from kazoo.exceptions import ConnectionLoss, KazooException, NoNodeError, SessionExpiredError
from kazoo.protocol.states import KazooState

from zkherd.common import paths
from zkherd.common.connection import ZkError, translate
from zkherd.common.errors import AUTH
from zkherd.core import clock, exits
from zkherd.core.loop import Program
from zkherd.recipes.lease import LeaseWriter
from zkherd.recipes.sequential import create, delete_all, in_order, made_as, new_token, nothing_made, own_nodes, tagged

MEMBER = "member-"


def pool(client, election, wait):
    """[(node name, id)] of the members, the leader first; [] for an empty or missing pool.
    *wait(result)* waits for an async request's answer (Loop.get, or a plain timeout); kazoo's
    exceptions go up as they are."""
    try:
        names = in_order(wait(client.get_children_async(election)), MEMBER)
    except NoNodeError:
        return []
    pending = [(name, client.get_async(paths.join(election, name))) for name in names]
    members = []
    for name, result in pending:
        try:
            members.append((name, wait(result)[0].decode("utf-8", "replace")))
        except NoNodeError:
            continue  # left while we looked
    return members


def pool_within(client, election, timeout):
    """pool() for a one-shot command: every answer within *timeout*; any failure is a ZkError."""
    try:
        return pool(client, election, lambda result: result.get(timeout=timeout))
    except Exception as exc:
        if isinstance(exc, client.handler.timeout_exception):
            raise ZkError("ZooKeeper did not answer within %g s" % timeout) from None
        raise translate(exc, "read the pool", election) from None


class Member(Program):
    """`zkherd elect`: hold candidacy until stopped; log every change of leadership.

    Looks at the pool whenever something may have changed (a watch, a new connection), with a
    watch on the member just ahead and on its own node: a member node deleted by hand - its own or
    the one ahead - is seen at once and the member joins again within a turn."""

    def __init__(self, election, ident, log, lease_dir=None):
        self.election = election
        self.lease_dir = lease_dir  # --lease-dir (recipes/lease.py)
        self.ident = ident
        self.log = log
        self.node = None
        self.attempt = None  # the token of our member node, set before the create is sent
        self.dirty = True
        self.leading = None
        self.stopping = None
        self.lease = None  # the leadership lease `zkherd cron` fences its job on (recipes/lease.py)

    def on_event(self, kind, value):
        if kind == "signal":
            self.stopping = value
            self.log.info("received %s, leaving the pool" % signal.Signals(value).name)
        elif kind == "state":
            if value == KazooState.LOST:
                self.log.warning("the ZooKeeper session %s; joining the pool again"
                                 % ("was closed" if self.session.renewing else "expired"))
                self.node = self.attempt = None
                self.lease.hold(None, None)
                self.set_leading(False)
            elif value == KazooState.SUSPENDED:
                self.log.warning("lost contact with ZooKeeper")
            self.dirty = True
        else:
            self.dirty = True

    def turn(self, loop):
        if self.stopping is not None:
            self.leave(loop)
            self.exit_code = 0
            return None
        if loop.connected and loop.session.lapsed():
            # as `run` does (core/session.py): no sync can renew a lapsed proof, and cron would
            # take our lease for an expired one on every tick while our member node still leads
            loop.renew_session("(cron would see this member as dead)", election=self.election)
        if not loop.connected or not self.dirty:
            return self.lapse_in(loop)
        loop.talk()
        self.dirty = False
        try:
            self.look(loop)
        except BaseException:
            self.dirty = True  # look again on the next turn
            raise
        return 0.0 if self.dirty else self.lapse_in(loop)

    @staticmethod
    def lapse_in(loop):
        """Seconds until the proof would lapse (the syncs normally push it on): a look then."""
        if not loop.connected or loop.session.last_heard is None:
            return None
        return max(0.0, loop.session.expires_no_earlier_than() - clock.now()) + 0.01

    def on_error(self, loop, error):
        if error.kind == AUTH:  # will not get better by trying again
            return super().on_error(loop, error)
        self.log.warning("could not look at the pool, trying again", error=error.message)
        self.dirty = True
        return 1.0

    def _watch(self, event):
        self.post("pool", event.path)

    def start(self, loop):
        self.post = loop.wakeup.post
        self.session = loop.session
        loop.fence  # noqa: B018  # its syncs through the leader keep the lease's bound fresh
        self.lease = LeaseWriter(loop.session, self.log, self.lease_dir)

    def close(self, loop):
        if self.lease is not None:
            self.lease.close()

    def look(self, loop):
        try:
            self._look(loop)
        except (ConnectionLoss, SessionExpiredError):
            raise
        except KazooException as exc:
            raise translate(exc, "join the pool", self.election) from None

    def _look(self, loop):
        client = loop.client
        if self.node is None:
            self.node = self.join(loop)
            self.lease.hold(self.node, loop.session.session_id)
        mine = self.node.rsplit("/", 1)[1]
        try:
            names = in_order(loop.get(client.get_children_async(self.election)), MEMBER)
        except NoNodeError:  # the pool's folder deleted by hand, our node with it
            names = []
        if mine not in names:
            self.log.warning("our member node is gone; joining again", node=self.node)
            self.node, self.attempt, self.dirty = None, None, True
            self.set_leading(False)  # what the log says agrees with is-leader meanwhile
            self.lease.hold(None, None)
            return
        index = names.index(mine)
        watched = [mine] if index == 0 else [names[index - 1], mine]  # ahead of us, and our own node
        results = [client.exists_async(paths.join(self.election, n), watch=self._watch) for n in watched]
        if any(loop.get(r) is None for r in results):
            self.dirty = True  # one of them went meanwhile: look again at once
            return
        self.set_leading(index == 0)

    def join(self, loop):
        """Our new member node; the one an earlier try made, if its reply was lost."""
        client = loop.client
        if self.attempt is not None:  # an earlier try got no answer: it may have made our node
            ours = own_nodes(client, self.election, made_as(tagged(MEMBER, self.attempt)), loop.get)
            mine = [paths.join(self.election, name) for name, _stat in ours]
            if mine:
                delete_all(client, mine[1:], loop.get)
                self.log.info("joined the pool (found the node made by an earlier try that got no answer)",
                              election=self.election, node=mine[0], id=self.ident)
                return mine[0]
        else:
            self.attempt = new_token()
        try:
            node = create(client, paths.join(self.election, tagged(MEMBER, self.attempt)), self.ident.encode("utf-8"),
                          loop.get, ephemeral=True, sequence=True)
        except KazooException as exc:
            if nothing_made(exc):
                self.attempt = None
            raise
        self.log.info("joined the pool", election=self.election, node=node, id=self.ident)
        return node

    def set_leading(self, leading):
        if leading != self.leading:
            self.leading = leading
            if leading:
                self.log.info("this member leads the pool", election=self.election, id=self.ident)
            else:
                self.log.info("this member does not lead the pool", election=self.election, id=self.ident)

    def leave(self, loop):
        if self.node is not None and loop.connected:
            try:
                loop.get(loop.client.delete_async(self.node))
            except Exception:  # ephemeral: it goes with the session anyway
                pass
            self.node = self.attempt = None
            self.lease.hold(None, None)


def is_leader(election, ident, settings, log):
    """Exit code: 0 if *ident* leads the pool, 1 if not, 2 if it cannot be told in time."""
    from zkherd.common.connection import close_client, open_client

    started = time.monotonic()
    try:
        client = open_client(settings)
    except ZkError as exc:
        log.warning(exc.message)
        return 2
    try:
        members = pool_within(client, election, max(0.1, settings.connect_timeout - (time.monotonic() - started)))
    except ZkError as exc:
        log.warning(exc.message)
        return 2
    finally:
        close_client(client)
    leader = members[0][1] if members else None
    log.debug("leader of the pool", election=election, leader=leader or "-", members=len(members))
    return 0 if leader == ident else 1


def pool_ls(election, settings, out):
    from zkherd.common.connection import connected

    try:
        with connected(settings) as client:
            members = pool_within(client, election, settings.connect_timeout)
    except ZkError as exc:
        sys.stderr.write("zkherd: %s\n" % exc.message)
        return exits.UNAVAILABLE
    width = max((len(name) for name, _ident in members), default=0)
    for index, (name, ident) in enumerate(members):
        out.write("%-*s %s%s\n" % (width, name, ident, "  (leader)" if index == 0 else ""))
    return 0
