"""`zkherd barrier PATH --count N [--timeout S] [-- CMD]`: a double barrier, on the Loop.

Enter: each participant creates an ephemeral sequential node PATH/p-N; once N are there, the first
to see it creates PATH/ready and everyone goes on (a participant arriving after that goes on too).
Then CMD runs, if given (contained, as `zkherd run`'s child: run/job.py). Leave: each deletes its
node and waits until all have left; the last one deletes PATH/ready. Waiting is driven by watches,
with a re-check every half second, so a connection blip (kazoo reconnects with the same session)
does not lose a wake-up; a request that fails on the way is asked again. If the session expires
while entering, the participant's node is made again. A create whose reply was lost is never made
twice: the participant first looks for a node of its own session (a second node would count as a
second participant).

Exit codes: CMD's (or 0), 69 if ZooKeeper cannot be reached at start, 75 if the others do not
arrive (or leave) within --timeout, 77 if ZooKeeper denies access, 127 if CMD cannot start, 128+N
when stopped by signal N (CMD is stopped first). The node is removed on every way out, so a late
barrier is not blocked by it.
"""

from __future__ import annotations

import signal
import time

from kazoo.exceptions import ConnectionLoss, NodeExistsError, NoNodeError, NotEmptyError
from kazoo.protocol.states import KazooState

from zkherd.common import paths
from zkherd.core import exits
from zkherd.core.loop import Program, asking
from zkherd.core.session import session_id
from zkherd.core.shellcmd import command_env
from zkherd.run.job import ChildError, Job

PREFIX, READY = "p-", "ready"
RECHECK = 0.5
STOP_TIMEOUT = 10.0  # CMD stopped by a signal to the barrier: SIGKILL this long after the stop signal
ENTER, RUN, LEAVE = "enter", "run", "leave"


class Barrier(Program):
    def __init__(self, path, count, ident, timeout, command, log):
        self.path = path
        self.count = count
        self.ident = ident.encode("utf-8")
        self.timeout = timeout
        self.command = command
        self.log = log
        self.phase = ENTER
        self.node = None  # our participant node
        self.creating = False  # a create was sent and its answer not read: it may have happened
        self.path_made = False
        self.said_waiting = False
        self.seen = 0  # participants seen at the last look
        self.deadline = None
        self.job = None
        self.code = 0
        self.stopping = None  # the signal that stops us
        self.post = None

    def start(self, loop):
        self.post = loop.wakeup.post
        self.deadline = time.monotonic() + self.timeout

    def _changed(self, event):
        self.post("barrier", None)

    def on_event(self, kind, value):
        if kind == "signal":
            self.stopping = value
            self.log.info("received %s, leaving the barrier" % signal.Signals(value).name)
            if self.job is not None:
                self.job.stop(STOP_TIMEOUT, "received %s" % signal.Signals(value).name)
        elif kind == "state":
            if value == KazooState.LOST:
                self.log.warning("the ZooKeeper session expired; our node went with it")
                self.node, self.creating = None, False  # made again while entering
            elif value == KazooState.SUSPENDED:
                self.log.warning("lost contact with ZooKeeper, waiting for it to come back")
            else:
                self.log.info("contact with ZooKeeper is back")

    def turn(self, loop):
        if self.phase == RUN:
            return self.supervise()
        if self.stopping is not None:
            return self.give_up(loop, 128 + self.stopping)
        left = self.deadline - time.monotonic()
        if left <= 0:
            what = ("only %d of %d participants arrived" % (self.seen, self.count) if self.phase == ENTER
                    else "%d participants have not left yet" % self.seen)
            self.log.error("barrier %s: %s within %g s" % (self.path, what, self.timeout))
            return self.give_up(loop, exits.TEMPFAIL)
        if not loop.connected:
            return left
        loop.talk()
        if self.phase == ENTER:
            self.enter(loop)
        else:
            self.leave(loop)
        return 0.0 if self.phase == RUN else min(RECHECK, left)

    def participants(self, loop):
        """Our watch on PATH's children is set again with every look."""
        children = loop.get(loop.client.get_children_async(self.path, watch=self._changed))
        return [c for c in children if c.startswith(PREFIX)], READY in children

    def enter(self, loop):
        with asking("enter the barrier at", self.path):
            try:
                arrived = self.arrive(loop)
            except NoNodeError:  # PATH was deleted meanwhile: made again on the next turn
                self.path_made = False
                raise
        if not arrived:
            return
        self.log.info("all participants arrived", barrier=self.path, count=self.count)
        if self.command:
            self.start_command()
        else:
            self.begin_leaving()

    def arrive(self, loop):
        """Our node made (once) and the others counted; True once all are there."""
        client = loop.client
        if not self.path_made:
            loop.get(client.ensure_path_async(self.path))
            self.path_made = True
        if self.node is None and self.creating:  # a create got no answer: see it, whichever server we talk to now
            loop.get(client.sync_async(self.path))
        here, ready = self.participants(loop)
        if self.node is not None and self.node.rsplit("/", 1)[1] not in here:
            self.node = None  # it went with an expired session
        if self.node is None:
            self.node = self.own_node(loop, here) if self.creating else None
            if self.node is None:
                self.creating = True
                self.node = loop.get(client.create_async(paths.join(self.path, PREFIX), self.ident,
                                                         ephemeral=True, sequence=True))
                here, ready = self.participants(loop)
            self.creating = False
            self.log.debug("entered the barrier", node=self.node)
        self.seen = len(here)
        if not ready and len(here) < self.count:
            if not self.said_waiting:
                self.said_waiting = True
                self.log.info("waiting for the others", barrier=self.path, arrived=len(here), count=self.count)
            return False
        if not ready:
            try:
                loop.get(client.create_async(paths.join(self.path, READY)))
            except NodeExistsError:
                pass
        return True

    def own_node(self, loop, here):
        """The node a create whose answer was lost made for our session, if it did (after a sync:
        the create was done, or never will be - a late request of an old connection is refused)."""
        ours = session_id(loop.client)
        if ours is None:
            raise ConnectionLoss("lost contact with ZooKeeper")
        names = [(name, loop.client.exists_async(paths.join(self.path, name))) for name in here]
        for name, result in names:
            stat = loop.get(result)
            if stat is not None and stat.ephemeralOwner == ours:
                self.log.debug("found our node after a lost reply", node=name)
                return paths.join(self.path, name)
        return None

    def start_command(self):
        self.phase = RUN
        self.job = Job(self.command, command_env(), self.log, "zkherd-barrier")
        try:
            self.job.start()
        except ChildError as exc:
            self.log.error(str(exc))
            self.code = exits.NOT_FOUND
            self.begin_leaving()

    def supervise(self):
        code, wait = self.job.poll()
        if code is None:
            return wait
        self.code = code
        self.begin_leaving()
        return 0.0

    def begin_leaving(self):
        self.phase = LEAVE
        self.deadline = max(self.deadline, time.monotonic() + self.timeout)  # the command's time does not count

    def leave(self, loop):
        client = loop.client
        with asking("leave the barrier at", self.path):
            if self.node is not None:
                try:
                    loop.get(client.delete_async(self.node))
                except NoNodeError:
                    pass
                self.node = None
            try:
                here = self.participants(loop)[0]
            except NoNodeError:  # PATH was deleted: nobody is left in it
                here = []
            self.seen = len(here)
            if here:
                return
            try:
                loop.get(client.delete_async(paths.join(self.path, READY)))
            except (NoNodeError, NotEmptyError):
                pass
        self.log.info("all participants left", barrier=self.path)
        self.exit_code = self.code

    def give_up(self, loop, code):
        """Timed out or stopped: remove our node now (it would go with the session anyway)."""
        if self.node is not None and loop.connected:
            try:
                loop.get(loop.client.delete_async(self.node))
            except Exception:  # ephemeral: it goes when the session is closed on the way out
                pass
            self.node = None
        self.exit_code = code
        return None

    def close(self, loop):
        if self.job is not None:
            self.job.close()
