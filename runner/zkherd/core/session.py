"""The command's ZooKeeper session: connecting with a clear wait at start, the negotiated session
timeout, the connection state, and a lower bound of when the *leader* last heard from us - what the
fence is computed from.

Only the leader expires sessions: *timeout* after the last touch it got. A follower answers its
clients' pings and reads by itself and passes their touches on to the leader in its replies to the
leader's pings (every tickTime/2); a follower cut off from the leader goes on answering for up to
syncLimit*tickTime (10 s by default) while the leader counts down. So an answer from our server
proves nothing about the leader; a `sync` does: the follower forwards it to the leader on the same
connection as its ping replies, so when a sync sent at S is answered, every ping reply the follower
sent before S reached the leader. A request answered at A, with S - A > 0.3*timeout > tickTime/2
(ZooKeeper's default minSessionTimeout is 2*tickTime), was touched at the follower before a leader
ping that came before S: the leader heard of it, no earlier than the request's send time. The
connect request is such a proof by itself (the leader makes or revalidates the session).

The fence thread sends the syncs (beat(), one at a time, every timeout/40, at most every 0.5 s)
while it lives; times are on the boot clock (core/clock.py), which counts a suspend of the host as the
server does. Kazoo does not expose send and receive times, so we read them from its (debug) log
records: if a kazoo version logged differently, the bound would stay old and the child would be
stopped early - safe, and loud.
"""

from __future__ import annotations

import collections
import logging
import threading

from kazoo.exceptions import ConnectionLoss
from kazoo.protocol.states import KazooState

from zkherd.common.connection import open_client
from zkherd.core import clock
from zkherd.core.logs import KazooBridge

BLATHER = 5  # kazoo's most verbose level; the negotiated timeout is only logged there
# A sync proves what was answered this long before it was sent: timeout/4 >= tickTime/2 (the
# leader's ping interval) when timeout >= 2*tickTime, plus a fifth for a late ping.
PROOF_GAP = 0.3


def session_id(client):
    """The id of the client's session, None while kazoo has no live connection (its client_id
    is None then, even if the session goes on)."""
    found = client.client_id
    return found[0] if found else None


def ours(client, stat):
    """True if *stat* is of an ephemeral node of our session. Raises ConnectionLoss while kazoo has
    no live connection: whose node it is cannot be told then (the caller tries again later)."""
    owner = session_id(client)
    if owner is None:
        raise ConnectionLoss("lost contact with ZooKeeper")
    return stat is not None and stat.ephemeralOwner == owner


class _Traffic(logging.Handler):
    """Reads kazoo's log records for the negotiated session timeout and for the send time of
    every request (by xid) and ping whose answer arrives, and which of them were syncs."""

    def __init__(self, session):
        super().__init__(BLATHER)
        self.session = session
        self.sent = {}  # xid -> (send time on the boot clock, a sync)
        self.ping_sent = None

    def emit(self, record):
        try:
            msg = record.msg
            if msg == "Sending request(xid=%s): %s":
                if record.args[0] == -2:  # kazoo's ping xid
                    self.ping_sent = record.created_boot
                else:
                    self.sent[record.args[0]] = (record.created_boot, type(record.args[1]).__name__ == "Sync")
            elif msg == "Received Ping":
                self.session.answered(self.ping_sent, record.created_boot)
            elif msg == "Reading for header %r":
                header = record.args[0]
                sent, sync = self.sent.pop(header.xid, (None, False))
                # a sync answered with an error (a follower's throttle) may never have reached the leader
                self.session.answered(sent, record.created_boot, sync and header.err == 0)
            elif isinstance(msg, str) and msg.startswith("Session created") and len(record.args) > 2:
                self.session.timeout = float(record.args[2]) / 1000.0
                self.session.new_connection(self.sent.pop(None, (None, False))[0])  # the connect request
                self.sent.clear()
        except Exception:  # never break the connection thread
            pass


class _KazooLogger(logging.Logger):
    """A private logger (not in logging's registry) whose records carry a boot-clock time."""

    def makeRecord(self, *args, **kwargs):
        record = super().makeRecord(*args, **kwargs)
        record.created_boot = clock.now()
        return record


class Session:
    def __init__(self, settings, wakeup, log, quiet=False):
        self.settings = settings
        self.quiet = quiet
        self.wakeup = wakeup
        self.log = log
        self.timeout = settings.session_timeout  # replaced by the negotiated value on connect
        self.last_heard = None  # the leader heard of us no earlier than this (see above)
        self.last_answer = None  # the send time of the newest request our server answered
        # (sent, answered) of recent requests, for the syncs to prove; bounded for commands that never
        # sync (the oldest go first: a proof then comes later, never wrong)
        self._answers = collections.deque(maxlen=1024)
        self._sync_sent = self._sync_answered = None
        self._lock = threading.Lock()
        self.client = None
        self.connected = False
        self.session_id = None
        self._overdue_since = None  # a request got no answer in time, at this moment
        self.renewing = False  # we closed the session ourselves (renew()) and wait for the new one
        logger = _KazooLogger("zkherd.kazoo.%d" % id(self))
        logger.setLevel(BLATHER)
        logger.addHandler(_Traffic(self))
        logger.addHandler(KazooBridge(log))
        self._logger = logger

    def connect(self):
        """Connect or raise ZkError(CONNECT) after settings.connect_timeout."""
        def waiting(reason, left):
            self.log.warning("ZooKeeper is not reachable yet, retrying", hosts=self.settings.hosts,
                             reason=reason or "no answer", gives_up_in="%.0fs" % left)

        say = self.log.debug if self.quiet else self.log.info
        say("connecting to ZooKeeper", hosts=self.settings.hosts)
        started = clock.now()
        self.client = open_client(self.settings, logger=self._logger, waiting=waiting)
        self.leader_heard(started)  # in case the connect request was not seen in the log
        self.connected = True
        self.session_id = session_id(self.client)
        self.client.add_listener(lambda state: self.wakeup.post("state", state))
        say("connected to ZooKeeper", hosts=self.settings.hosts, session="0x%x" % self.session_id,
            session_timeout="%.3fs" % self.timeout)

    def on_state(self, state):
        """A state event reached the loop (kazoo's listener posted it)."""
        self.connected = state == KazooState.CONNECTED
        if self.connected:
            self.renewing = False
        self._overdue_since = None  # kazoo noticed: requests may go again once connected
        if self.connected:
            self.session_id = session_id(self.client) or self.session_id

    def answered(self, sent, at, sync=False):
        """A request sent at *sent* was answered at *at* (boot clock), from kazoo's thread."""
        if sent is None:
            return
        with self._lock:
            if self.last_answer is None or sent > self.last_answer:
                self.last_answer = sent
            self._answers.append((sent, at))
            if sync:
                self._sync_sent, self._sync_answered = None, at
            # a sync answered after the session could have expired proves nothing (the touch may have
            # reached a leader already closing the session)
            if sync and self.last_heard is not None and at < self.last_heard + self.timeout:
                limit = sent - PROOF_GAP * self.timeout  # answered before that: the leader has heard of it
                proven = [s for s, a in self._answers if a <= limit]
                if proven:
                    self.leader_heard(max(proven))
                while len(self._answers) > 1 and self._answers[0][1] <= limit:
                    self._answers.popleft()

    def new_connection(self, sent):
        """Connected (again) by a request sent at *sent*: the leader made or revalidated the session
        then. What the server before answered proves nothing about this one: forgotten."""
        with self._lock:
            self._answers.clear()
            self._sync_sent = self._sync_answered = None
        self.leader_heard(sent)

    def leader_heard(self, sent):
        """The leader heard of our session no earlier than *sent* (boot clock)."""
        if sent is not None and (self.last_heard is None or sent > self.last_heard):
            self.last_heard = sent

    def beat(self):
        """Send a sync if one is due (from the fence's thread); returns seconds until the next."""
        every = min(0.5, self.timeout / 40.0)
        now = clock.now()
        with self._lock:
            if self._sync_sent is not None and now - self._sync_sent < self.timeout:
                return every  # one at a time: kazoo pings, and notices a dead connection, when we are quiet
            last = max(self._sync_answered or 0.0, self._sync_sent or 0.0)
            # kazoo's own flag: the loop's may lag behind a reconnect it has not handled yet
            if self.client is None or not self.client.connected or now - last < every:
                return max(0.01, every - (now - last))
            self._sync_sent = now
        try:
            self.client.sync_async("/").rawlink(self._sync_failed)
        except Exception:  # closed meanwhile: the next beat tries again
            with self._lock:
                self._sync_sent = None
        return every

    def _sync_failed(self, result):
        if not result.successful():  # a lost connection: the next beat sends another
            with self._lock:
                self._sync_sent = None

    def lapsed(self):
        """The proof has run out: the leader may have expired the session by now. No sync can renew
        it from here (answered() refuses one answered after that moment), only a new connection can,
        and kazoo makes none while this one answers: see renew()."""
        return self.last_heard is not None and clock.now() >= self.last_heard + self.timeout

    def renew(self):
        """Close this session and open a new one, without waiting (kazoo's restart() without its
        blocking start): its ephemeral nodes go, kazoo posts LOST and, once connected with the new
        session, CONNECTED - the path of a session expiry. The connect request of the new session is
        a fresh proof. Blocks the loop until the close is answered or kazoo gives the connection up
        (up to 2/3 of the timeout, when the leader is slow - the very case that lapses): no child
        runs then (the caller's rule), the fence's thread goes on, signals wait."""
        self.connected, self.renewing = False, True
        self._overdue_since = None
        try:
            self.client.stop()  # posts LOST (kazoo's listener) before it returns
        except Exception:  # the connection was gone already: kazoo closed it; start again all the same
            pass
        self.client.start_async()

    def expires_no_earlier_than(self):
        """The earliest moment the leader may expire our session (boot clock)."""
        return self.last_heard + self.timeout

    def overdue(self):
        """A request got no answer in time: keep quiet until something is answered again."""
        if self._overdue_since is None:
            self._overdue_since = clock.now()

    def may_talk(self):
        """False from an overdue request until the server answered something sent after it (a
        ping, most likely: kazoo pings a connection that is quiet) or the state changed."""
        since = self._overdue_since
        if since is None or (self.last_answer is not None and self.last_answer > since):
            self._overdue_since = None
            return True
        return False

    def close(self):
        if self.client is not None:
            try:
                self.client.stop()
                self.client.close()
            except Exception:  # closing is best effort; the session expires anyway
                pass
