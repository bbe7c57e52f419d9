"""The server's own view of its clients' sessions, from the `cons` four-letter word.

    view = sessions(server)          # {session id: Connection}
    view[sid].heard_no_earlier_than  # CLOCK_MONOTONIC seconds: the server surely heard the client then
    view[sid].established            # CLOCK_REALTIME seconds: when this connection was made

`cons` prints one line per connection, e.g.

    /127.0.0.1:57422[1](queued=0,recved=2,sent=2,sid=0x1000084d7e00000,lop=GETD,est=1795778393597,
    to=10000,lcxid=0x1,lzxid=0x1,lresp=8706069,llat=1,minlat=0,avglat=2,maxlat=3)

`est` is the wall clock (ms); `lresp`, the time of the last response, is ZooKeeper's elapsed time
(System.nanoTime, which is CLOCK_MONOTONIC on Linux, in ms) - the clock its session tracker expires
sessions by. `llat` is that response's latency from the moment the request was received, when the
server also touched the session. So lresp - llat is a moment at which the server certainly heard
from the client: a session cannot expire before it plus the negotiated timeout (`to`).
"""

from __future__ import annotations

import dataclasses
import re

_LINE = re.compile(r"^\s*/(?P<peer>[^\[]+)\[\d+\]\((?P<fields>[^)]*)\)\s*$")


@dataclasses.dataclass
class Connection:
    peer: str
    sid: int
    established: float  # CLOCK_REALTIME, seconds
    timeout: float  # negotiated session timeout, seconds
    last_response: float | None  # CLOCK_MONOTONIC, seconds (None before the first response)
    last_latency: float

    @property
    def heard_no_earlier_than(self):
        """A moment (CLOCK_MONOTONIC) at which the server certainly heard from this session."""
        if self.last_response is None:
            return None
        return self.last_response - self.last_latency

    @property
    def expires_no_earlier_than(self):
        """The earliest moment (CLOCK_MONOTONIC) the server may expire the session, as of now."""
        heard = self.heard_no_earlier_than
        return None if heard is None else heard + self.timeout


def parse(text):
    """{session id: Connection} from the output of `cons` (connections without a session skipped)."""
    found = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        fields = dict(item.split("=", 1) for item in match.group("fields").split(",") if "=" in item)
        if "sid" not in fields:
            continue  # the four-letter word's own connection
        sid = int(fields["sid"], 16)
        lresp = int(fields.get("lresp", "0"))
        found[sid] = Connection(peer=match.group("peer"), sid=sid, established=int(fields["est"]) / 1000.0,
                                timeout=int(fields["to"]) / 1000.0,
                                last_response=lresp / 1000.0 if lresp > 0 else None,
                                last_latency=int(fields.get("llat", "0")) / 1000.0)
    return found


def sessions(server, timeout=2.0):
    """The server's connected sessions now ({} if it does not answer)."""
    try:
        return parse(server.four_letter("cons", timeout=timeout))
    except OSError:
        return {}


def session_of(log_text):
    """The session id a zkherd process logged when it connected ("session=0x..."), or None."""
    found = re.findall(r"connected to ZooKeeper.*?session=0x([0-9a-f]+)", log_text)
    return int(found[0], 16) if found else None
