"""The runner's ZooKeeper session: connection with a clear wait at start, the negotiated session
timeout, and when the server last heard from us, which is what fencing is computed from.

The server expires a session *timeout* after it last received anything from the client. A request
whose answer we read was received by the server after we sent it, so the send time of the newest
answered request is a lower bound of the server's "last heard": the session cannot expire before
last_heard + timeout. Kazoo pings every timeout/3 when idle; we send no pings of our own (they
would stop kazoo's pings, and with them its detection of a dead connection). Kazoo does not expose
send and receive times, so we read them from its (debug) log records: if a kazoo version logged
differently, last_heard would stay old and the child would be stopped early - safe, and loud.
"""

from __future__ import annotations

import logging
import signal
import time

from zkherd.common.connection import ZkError, open_client
from zkherd.logs import KazooBridge

BLATHER = 5
EX_UNAVAILABLE = 69  # kazoo's most verbose level; the negotiated timeout is only logged there


def session_id(client):
    """The id of the client's session, None while kazoo has no live connection (its client_id
    is None then, even if the session goes on)."""
    found = client.client_id
    return found[0] if found else None


def fence_margin(session_timeout):
    """Time kept between a fenced child's death and the earliest possible session expiry."""
    return 0.05 + 0.1 * session_timeout


class _Traffic(logging.Handler):
    """Reads kazoo's log records for the negotiated session timeout and for the send time of
    every request (by xid) and ping whose answer arrives."""

    def __init__(self, session):
        super().__init__(BLATHER)
        self.session = session
        self.sent = {}  # xid -> monotonic send time
        self.ping_sent = None

    def emit(self, record):
        try:
            msg = record.msg
            if msg == "Sending request(xid=%s): %s":
                if record.args[0] == -2:  # kazoo's ping xid
                    self.ping_sent = record.created_monotonic
                else:
                    self.sent[record.args[0]] = record.created_monotonic
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
    """A private logger (not in logging's registry) whose records carry a monotonic time."""

    def makeRecord(self, *args, **kwargs):
        record = super().makeRecord(*args, **kwargs)
        record.created_monotonic = time.monotonic()
        return record


class Session:
    def __init__(self, settings, wakeup, log, quiet=False):
        self.settings = settings
        self.quiet = quiet  # connecting is logged at debug level (a cron job says nothing when all is well)
        self.wakeup = wakeup
        self.log = log
        self.timeout = settings.session_timeout  # replaced by the negotiated value on connect
        self.last_heard = None
        self.client = None
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
        started = time.monotonic()
        self.client = open_client(self.settings, logger=self._logger, waiting=waiting)
        self.heard(started)  # in case the connect request was not seen in the log
        self.client.add_listener(lambda state: self.wakeup.post("state", state))
        say("connected to ZooKeeper", hosts=self.settings.hosts, session="0x%x" % (session_id(self.client) or 0),
            session_timeout="%.3fs" % self.timeout)

    def heard(self, sent):
        """A request sent at *sent* (monotonic) was answered: the server heard us then."""
        if sent is not None and (self.last_heard is None or sent > self.last_heard):
            self.last_heard = sent

    def expires_no_earlier_than(self):
        """The earliest moment the server may expire our session (monotonic clock)."""
        return self.last_heard + self.timeout

    def serve(self, loop, signals=(signal.SIGTERM, signal.SIGINT)):
        """For the long-running commands (elect, farm join, farm export): connect (exit code 69
        if ZooKeeper cannot be reached), let *signals* wake the loop, run loop(), always close."""
        try:
            self.connect()
        except ZkError as exc:
            self.log.error(exc.message)
            return EX_UNAVAILABLE
        self.wakeup.install_signals(signals)
        try:
            return loop()
        finally:
            self.close()
            self.wakeup.close()

    def close(self):
        if self.client is not None:
            try:
                self.client.stop()
                self.client.close()
            except Exception:  # closing is best effort; the session expires anyway
                pass
