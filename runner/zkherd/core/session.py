"""The command's ZooKeeper session: connecting with a clear wait at start, the negotiated session
timeout, the connection state, and when the server last heard from us - what the fence is
computed from.

The server expires a session *timeout* after it last received anything from the client. A request
whose answer we read was received by the server after we sent it, so the send time of the newest
answered request is a lower bound of the server's "last heard": the session cannot expire before
last_heard + timeout. Times are on the boot clock (core/clock.py), which counts a suspend of the
host as the server does. Kazoo pings every timeout/3 when idle; we send no pings of our own (they
would stop kazoo's pings, and with them its detection of a dead connection). Kazoo does not expose
send and receive times, so we read them from its (debug) log records: if a kazoo version logged
differently, last_heard would stay old and the child would be stopped early - safe, and loud.
"""

from __future__ import annotations

import logging

from kazoo.protocol.states import KazooState

from zkherd.common.connection import open_client
from zkherd.core import clock
from zkherd.core.logs import KazooBridge

BLATHER = 5  # kazoo's most verbose level; the negotiated timeout is only logged there


def session_id(client):
    """The id of the client's session, None while kazoo has no live connection (its client_id
    is None then, even if the session goes on)."""
    found = client.client_id
    return found[0] if found else None


class _Traffic(logging.Handler):
    """Reads kazoo's log records for the negotiated session timeout and for the send time of
    every request (by xid) and ping whose answer arrives."""

    def __init__(self, session):
        super().__init__(BLATHER)
        self.session = session
        self.sent = {}  # xid -> send time (boot clock)
        self.ping_sent = None

    def emit(self, record):
        try:
            msg = record.msg
            if msg == "Sending request(xid=%s): %s":
                if record.args[0] == -2:  # kazoo's ping xid
                    self.ping_sent = record.created_boot
                else:
                    self.sent[record.args[0]] = record.created_boot
            elif msg == "Received Ping":
                self.session.heard(self.ping_sent)
            elif msg == "Reading for header %r":
                self.session.heard(self.sent.pop(record.args[0].xid, None))
            elif isinstance(msg, str) and msg.startswith("Session created") and len(record.args) > 2:
                self.session.timeout = float(record.args[2]) / 1000.0
                self.session.heard(self.sent.pop(None, None))  # the connect request (no xid)
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
        self.last_heard = None
        self.client = None
        self.connected = False
        self.session_id = None
        self._overdue_since = None  # a request got no answer in time, at this moment
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
        self.heard(started)  # in case the connect request was not seen in the log
        self.connected = True
        self.session_id = session_id(self.client)
        self.client.add_listener(lambda state: self.wakeup.post("state", state))
        say("connected to ZooKeeper", hosts=self.settings.hosts, session="0x%x" % self.session_id,
            session_timeout="%.3fs" % self.timeout)

    def on_state(self, state):
        """A state event reached the loop (kazoo's listener posted it)."""
        self.connected = state == KazooState.CONNECTED
        self._overdue_since = None  # kazoo noticed: requests may go again once connected
        if self.connected:
            self.session_id = session_id(self.client) or self.session_id

    def heard(self, sent):
        """A request sent at *sent* (boot clock) was answered: the server heard us then."""
        if sent is not None and (self.last_heard is None or sent > self.last_heard):
            self.last_heard = sent

    def expires_no_earlier_than(self):
        """The earliest moment the server may expire our session (boot clock)."""
        return self.last_heard + self.timeout

    def overdue(self):
        """A request got no answer in time: keep quiet until something is answered again."""
        if self._overdue_since is None:
            self._overdue_since = clock.now()

    def may_talk(self):
        """False from an overdue request until the server answered something sent after it (a
        ping, most likely: kazoo pings a connection that is quiet) or the state changed."""
        since = self._overdue_since
        if since is None or (self.last_heard is not None and self.last_heard > since):
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
