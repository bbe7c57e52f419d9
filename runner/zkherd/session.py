"""The runner's ZooKeeper session: connection with a clear wait at start, the negotiated session
timeout, and when the server last heard from us, which is what fencing is computed from.

The server expires a session *timeout* after it last received anything from the client. Every
probe we send and see answered was received by the server after we sent it, so the send time of
the newest answered probe is a lower bound of the server's "last heard": the session cannot
expire before last_heard + timeout.
"""

from __future__ import annotations

import logging
import time

from zkherd.common.connection import open_client
from zkherd.logs import KazooBridge

BLATHER = 5  # kazoo's most verbose level; the negotiated timeout is only logged there


class _NegotiatedTimeout(logging.Handler):
    """Kazoo keeps the negotiated session timeout to itself and only logs it."""

    def __init__(self, session):
        super().__init__(BLATHER)
        self.session = session

    def emit(self, record):
        try:
            if isinstance(record.msg, str) and record.msg.startswith("Session created") and len(record.args) > 2:
                self.session.timeout = float(record.args[2]) / 1000.0
        except Exception:  # never break the connection thread
            pass


class Session:
    def __init__(self, settings, wakeup, log):
        self.settings = settings
        self.wakeup = wakeup
        self.log = log
        self.timeout = settings.session_timeout  # replaced by the negotiated value on connect
        self.last_heard = None
        self.client = None
        self.connected = False
        self._next_probe = 0.0
        logger = logging.getLogger("zkherd.kazoo.%d" % id(self))
        logger.propagate = False
        logger.setLevel(BLATHER)
        logger.addHandler(_NegotiatedTimeout(self))
        logger.addHandler(KazooBridge(log))
        self._logger = logger

    def connect(self):
        """Connect or raise ZkError(CONNECT) after settings.connect_timeout."""
        def waiting(reason, left):
            self.log.warning("ZooKeeper is not reachable yet, retrying", hosts=self.settings.hosts,
                             reason=reason or "no answer", gives_up_in="%.0fs" % left)

        sent = time.monotonic()
        self.log.info("connecting to ZooKeeper", hosts=self.settings.hosts)
        self.client = open_client(self.settings, logger=self._logger, waiting=waiting)
        self.last_heard = sent
        self.connected = True
        self.client.add_listener(lambda state: self.wakeup.post("state", state))
        self.log.info("connected to ZooKeeper", hosts=self.settings.hosts, session="0x%x" % self.client.client_id[0],
                      session_timeout="%.3fs" % self.timeout)

    @property
    def probe_interval(self):
        return max(0.05, min(1.0, self.timeout / 10.0))

    def probe(self):
        """Send a probe when one is due; returns seconds until the next one."""
        now = time.monotonic()
        if now >= self._next_probe:
            self._next_probe = now + self.probe_interval
            self.client.exists_async("/").rawlink(lambda result: self._answered(now, result))
        return self._next_probe - now

    def _answered(self, sent, result):
        if result.successful() and (self.last_heard is None or sent > self.last_heard):
            self.last_heard = sent

    def expires_no_earlier_than(self):
        """The earliest moment the server may expire our session (monotonic clock)."""
        return self.last_heard + self.timeout

    def close(self):
        if self.client is not None:
            try:
                self.client.stop()
                self.client.close()
            except Exception:  # closing is best effort; the session expires anyway
                pass
