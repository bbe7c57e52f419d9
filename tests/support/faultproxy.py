"""TCP proxy on loopback that injects network faults between client and server.

    proxy = FaultProxy(server.hosts)      # KazooClient(proxy.hosts)
    proxy.delay(0.2)                      # +0.2 s per direction
    proxy.blackhole()                     # partition
    proxy.heal()

Semantics:
* passthrough()/heal(): forward everything, no latency.
* delay(s): forward each chunk s seconds after it arrived, in both
  directions (a request/response round trip gains 2*s).
* drop_new(): new connections are accepted and closed at once; existing
  ones keep forwarding.
* hang_new(): new connections are accepted and never answered, never
  closed (until the proxy is): a server that is starting can do that
  (ZooKeeper 3.8.0: "ZooKeeperServer not running", then an exception before
  the close). They stay hung after passthrough(); existing ones keep forwarding.
* blackhole(): a partition. Nothing is delivered in either direction, not
  even a FIN or RST, so each end only notices through its own timeouts. New
  connections are accepted but hang the same way. Bytes are *held*, not
  discarded: heal() delivers them in order, like TCP retransmission after a
  real partition heals. Closes that happened meanwhile (a client giving up,
  the server expiring a session) are delivered after the held bytes. Call
  reset_all() before heal() to drop the partitioned connections instead.
* reset_all(): abort every open connection with an RST on both ends.
* lose_reply(opcode, nth=1, then="pass"): lose the reply of a request. The
  nth request of that type from now on (over any connection; "multi" is a
  transaction, see OPCODES) is forwarded to the server as usual; when the
  server's reply to it arrives, the reply is dropped, the bytes before it
  are delivered, and the connection is reset (RST) on both ends. So the
  server did process the request (and committed it, for a write that it
  accepted), but the client only sees a lost connection: the ambiguous
  outcome every "retry after a lost reply" has to handle. The client then
  reconnects (same session, if it does so within the session timeout).
  `then` is the mode the proxy switches to at that moment: "pass" (the
  client reconnects at once), "drop_new" or "blackhole" (it cannot).
* after_reply(opcode, nth=1, then="blackhole"): the same request's reply is
  delivered, and then the proxy switches to mode `then`: with "blackhole",
  the client is held right after that request (say, between the two
  transactions of a task) until heal().
* before_request(opcode, nth=1, then="blackhole"): switch to mode `then` as
  that request arrives, before it is forwarded: with "blackhole", it is held
  (with everything after it) until heal() delivers it.
  One rule is armed at a time (arming replaces it, disarm() forgets it) and it fires once;
  `fired` counts the rules fired so far, wait_fired(n) waits for the nth.
  Rules need ZooKeeper's own framing (not TLS): the proxy follows the
  packets of each connection (a 4-byte length, then xid and type; the
  first packet each way is the handshake) and leaves anything else
  (four-letter words) alone.

One selector thread does all socket work; the public methods hand it a
function and wait until it has run, so a fault is in force when they return.
"""

import functools
import queue
import selectors
import socket
import struct
import threading
import time
from collections import deque

_LOOPBACK = "127.0.0.1"
# Stop reading from a side once this much is queued for the other side, so a
# held or slow connection applies back-pressure instead of eating memory.
_MAX_QUEUED = 1 << 20
_RECV_SIZE = 65536


# ZooKeeper request types (OpCode in the server's source), for lose_reply().
OPCODES = {
    "create": 1, "delete": 2, "exists": 3, "get_data": 4, "set_data": 5, "get_acl": 6, "set_acl": 7,
    "get_children": 8, "sync": 9, "get_children2": 12, "check": 13, "multi": 14, "create2": 15,
    "create_container": 19, "create_ttl": 21, "multi_read": 22, "close_session": -11,
}
_HOUSEKEEPING = {11, 100, 101, 105}  # ping, auth, set watches: never "the nth request of any type"
_MAX_PACKET = 64 << 20  # larger "lengths" mean the stream is not ZooKeeper's framing


class _Packets:
    """Follows the packets of one direction of a ZooKeeper connection: a 4-byte big-endian
    length, then the packet, whose first bytes are the xid (and, from the client, the type).
    The first packet each way is the session handshake, which has neither."""

    def __init__(self, head_size: int):
        self.head_size = head_size  # length + xid (+ type): what identifies a packet
        self.number = 0  # packets started so far; 1 is the handshake
        self.got = 0  # bytes of the current packet seen so far (0: at a boundary)
        self.total = 0  # 4 + length of the current packet, once known
        self.head = bytearray()
        self.broken = False

    def feed(self, data: bytes) -> list:
        """Split data at packet boundaries: [(piece, number, head)], head being the packet's
        first head_size bytes once all are known (else None). Not ZooKeeper's framing: one
        piece with number 0."""
        if self.broken:
            return [(data, 0, None)]
        pieces, pos = [], 0
        while pos < len(data):
            if self.got == 0:
                self.number += 1
                self.total = 0
                self.head = bytearray()
            start = pos
            if not self.total:  # the length first
                take = data[pos:pos + 4 - len(self.head)]
                self.head += take
                self.got += len(take)
                pos += len(take)
                if len(self.head) == 4:
                    length = struct.unpack(">i", self.head)[0]
                    if not 0 <= length <= _MAX_PACKET:
                        self.broken = True
                        return pieces + [(data[start:], 0, None)]
                    self.total = 4 + length
            want = min(self.head_size, self.total) - len(self.head) if self.total else 0
            if want > 0:
                take = data[pos:pos + want]
                self.head += take
                self.got += len(take)
                pos += len(take)
            complete = bool(self.total) and len(self.head) >= min(self.head_size, self.total)
            if complete:
                take = min(len(data) - pos, self.total - self.got)
                self.got += take
                pos += take
            pieces.append((data[start:pos], self.number, bytes(self.head) if complete else None))
            if complete and self.got >= self.total:
                self.got = 0
        return pieces


class _Conn:
    """A proxied connection; index 0 is the client side, 1 the upstream side."""

    def __init__(self, client: socket.socket, upstream: socket.socket):
        self.socks = (client, upstream)
        # queues[i] holds (due_time, bytes | None) read from socks[i] for the
        # other side; None marks EOF: close the pair once it is reached.
        self.queues: tuple[deque, deque] = (deque(), deque())
        self.queued = [0, 0]
        self.eof = [False, False]
        self.events = [0, 0]
        self.closed = False
        self.packets = (_Packets(12), _Packets(8))  # client: length, xid, type; server: length, xid
        self.reply_xid: int | None = None  # the reply a rule waits for (lose_reply, after_reply)
        self.gate_from = 0  # server packets from this number on wait for their xid to be known
        self.held = bytearray()  # start of a server packet whose xid is not known yet
        self.reply_action = ""  # what to do at that reply: "cut" or "switch"
        self.then = "pass"  # the mode to switch to then
        self.after_reply = ""  # the reply came: "cut" (lost: reset once what came before it is
        # delivered) or "switch" (switch modes once it is delivered)
        self.requests_seen = 0  # client packets whose head was looked at


def _parse_target(target: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(target, str):
        host, port = target.rsplit(":", 1)
        return host, int(port)
    return target


class FaultProxy:
    def __init__(self, target: str | tuple[str, int]):
        self.target = _parse_target(target)
        self._mode = "pass"  # pass | drop_new | hang_new | blackhole
        self._hung: list[socket.socket] = []  # connections taken in hang_new mode
        self._delay = 0.0
        self._rule = None  # the armed rule: [opcode or None, requests left to skip, action, then-mode]
        self._fired = 0
        self._fired_cond = threading.Condition()
        self._conns: set[_Conn] = set()
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False

        self._listener = socket.create_server((_LOOPBACK, 0), backlog=128)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, self._accept)
        self._sel.register(self._wake_r, selectors.EVENT_READ, self._run_calls)
        self._thread = threading.Thread(target=self._loop, name=f"faultproxy-{self.port}", daemon=True)
        self._thread.start()

    @property
    def hosts(self) -> str:
        return f"{_LOOPBACK}:{self.port}"

    # -- public controls (run inside the loop thread) ------------------------

    def passthrough(self) -> None:
        self._call(self._set_mode, "pass", 0.0)

    def heal(self) -> None:
        self.passthrough()

    def delay(self, seconds: float) -> None:
        self._call(self._set_mode, "pass", float(seconds))

    def drop_new(self) -> None:
        self._call(self._set_mode, "drop_new", self._delay)

    def hang_new(self) -> None:
        self._call(self._set_mode, "hang_new", self._delay)

    def blackhole(self) -> None:
        self._call(self._set_mode, "blackhole", self._delay)

    def reset_all(self) -> None:
        def reset() -> None:
            for conn in list(self._conns):
                self._close_conn(conn, rst=True)

        self._call(reset)

    def lose_reply(self, opcode: str | int | None = "multi", nth: int = 1, then: str = "pass") -> None:
        """Lose the reply to the nth request of type *opcode* from now on (a name in OPCODES, a
        number, or None for any request but pings, auth and set-watches): it is forwarded, its
        reply dropped, the connection reset, and the proxy switches to mode *then*."""
        self._arm("cut", opcode, nth, then)

    def after_reply(self, opcode: str | int | None = "multi", nth: int = 1, then: str = "blackhole") -> None:
        """Switch to mode *then* once the reply to the nth request of type *opcode* is delivered."""
        self._arm("switch", opcode, nth, then)

    def before_request(self, opcode: str | int | None = "multi", nth: int = 1, then: str = "blackhole") -> None:
        """Switch to mode *then* as the nth request of type *opcode* arrives, before it is forwarded."""
        self._arm("before", opcode, nth, then)

    def _arm(self, action: str, opcode, nth: int, then: str) -> None:
        code = OPCODES[opcode] if isinstance(opcode, str) else opcode
        if then not in ("pass", "drop_new", "blackhole") or nth < 1:
            raise ValueError("nth >= 1, and then one of pass, drop_new, blackhole")

        def arm() -> None:
            self._rule = [code, nth - 1, action, then]

        self._call(arm)

    def disarm(self) -> None:
        """Forget the armed rule, if it has not fired (a reply it already waits for is still cut)."""
        def forget() -> None:
            self._rule = None

        self._call(forget)

    @property
    def fired(self) -> int:
        """Rules (lose_reply, after_reply, before_request) fired so far."""
        return self._fired

    def wait_fired(self, count: int = 1, timeout: float = 30.0) -> bool:
        with self._fired_cond:
            return self._fired_cond.wait_for(lambda: self._fired >= count, timeout)

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def hung_count(self) -> int:
        """Connections taken in hang_new mode so far."""
        return self._call(lambda: len(self._hung))

    @property
    def connection_count(self) -> int:
        return self._call(lambda: len(self._conns))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._wake_w.send(b"x")
        except OSError:  # the loop already ended and closed it
            pass
        self._thread.join(5)

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _set_mode(self, mode: str, delay: float) -> None:
        self._mode, self._delay = mode, delay

    def _call(self, fn, *args):
        if self._closed or not self._thread.is_alive():
            raise RuntimeError("fault proxy is closed")
        done = threading.Event()
        result: list = []
        self._calls.put((functools.partial(fn, *args), done, result))
        self._wake_w.send(b"x")
        if not done.wait(5):
            raise RuntimeError("fault proxy thread is not responding")
        if isinstance(result[0], BaseException):
            raise result[0]
        return result[0]

    # -- loop thread ---------------------------------------------------------

    def _loop(self) -> None:
        try:
            while not self._closed:
                for key, mask in self._sel.select(self._next_timeout()):
                    key.data(mask)
                for conn in list(self._conns):
                    self._flush(conn)
                for conn in list(self._conns):
                    self._update_events(conn)
        finally:
            for conn in list(self._conns):
                self._close_conn(conn, rst=True)
            self._sel.close()
            for sock in (self._listener, self._wake_r, self._wake_w, *self._hung):
                sock.close()

    def _run_calls(self, _mask: int) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        while not self._calls.empty():
            fn, done, result = self._calls.get()
            try:
                result.append(fn())
            except Exception as exc:  # handed back to the caller
                result.append(exc)
            done.set()

    def _next_timeout(self) -> float | None:
        if self._mode == "blackhole":
            return None
        # Chunks already due wait for EVENT_WRITE instead (no busy loop).
        now = time.monotonic()
        dues = [q[0][0] for conn in self._conns for q in conn.queues if q and q[0][0] > now]
        return min(dues) - now if dues else None

    def _accept(self, _mask: int) -> None:
        while True:
            try:
                client = self._listener.accept()[0]
            except BlockingIOError:
                return
            if self._mode == "hang_new":
                self._hung.append(client)
                continue
            if self._mode == "drop_new":
                client.close()
                continue
            try:
                # Loopback connects complete or fail at once.
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(client, upstream)
            self._conns.add(conn)
            self._update_events(conn)

    def _on_event(self, conn: _Conn, side: int, mask: int) -> None:
        # Writes happen in _flush; only reads need handling here.
        if conn.closed or not mask & selectors.EVENT_READ:
            return
        try:
            data = conn.socks[side].recv(_RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            conn.eof[side] = True
        elif side == 0:
            self._watch_requests(conn, data)
        elif conn.after_reply == "cut":
            return  # the reply is lost, and everything after it
        elif conn.reply_xid is not None:
            data = self._gate_replies(conn, data)
        else:
            conn.packets[1].feed(data)  # only to know where packets start
        if data or conn.eof[side]:
            self._queue(conn, side, data)

    def _queue(self, conn: _Conn, side: int, data: bytes) -> None:
        conn.queues[side].append((time.monotonic() + self._delay, data or None))
        conn.queued[side] += len(data)

    def _watch_requests(self, conn: _Conn, data: bytes) -> None:
        """Find the request the armed rule is about."""
        for _piece, number, head in conn.packets[0].feed(data):
            if self._rule is None or head is None or number < 2 or len(head) < 12:
                continue
            if number <= conn.requests_seen:
                continue  # its head was known in an earlier piece
            conn.requests_seen = number
            xid, kind = struct.unpack(">ii", head[4:12])
            code, skip, action, then = self._rule
            if skip < 0 or ((kind in _HOUSEKEEPING) if code is None else (kind != code)):
                continue  # taken already, or another kind of request
            self._rule[1] -= 1
            if skip:
                continue
            if action == "before":  # before _flush forwards it
                self._fire(then)
            else:
                conn.reply_xid, conn.then = xid, then
                conn.reply_action = action
                conn.gate_from = conn.packets[1].number + 1

    def _gate_replies(self, conn: _Conn, data: bytes) -> bytes:
        """Pass the server's packets on until the reply to conn.reply_xid; returns what may be
        delivered (for lose_reply, not that reply nor anything after it)."""
        out = bytearray()
        for piece, number, head in conn.packets[1].feed(data):
            if 0 < number < conn.gate_from or number == 0:
                out += piece
            elif head is None:
                conn.held += piece
            elif struct.unpack(">i", head[4:8])[0] == conn.reply_xid:
                conn.reply_xid = None
                conn.after_reply = conn.reply_action
                if conn.after_reply == "cut":
                    conn.held.clear()
                    break
                out += conn.held + piece
                conn.held.clear()
            else:
                out += conn.held + piece
                conn.held.clear()
        return bytes(out)

    def _fire(self, then: str) -> None:
        self._rule = None
        self._mode = then
        with self._fired_cond:
            self._fired += 1
            self._fired_cond.notify_all()

    def _flush(self, conn: _Conn) -> None:
        if self._mode == "blackhole":
            return
        now = time.monotonic()
        for side, pending in enumerate(conn.queues):
            dst = conn.socks[1 - side]
            while pending and pending[0][0] <= now:
                due, data = pending[0]
                if data is None:
                    self._close_conn(conn)
                    return
                try:
                    sent = dst.send(data)
                except BlockingIOError:
                    break
                except OSError:
                    self._close_conn(conn, rst=True)
                    return
                conn.queued[side] -= sent
                if sent < len(data):
                    pending[0] = (due, data[sent:])
                    break
                pending.popleft()
        if conn.after_reply and not conn.queues[1]:  # what came before it is delivered
            cut, conn.after_reply = conn.after_reply == "cut", ""
            self._fire(conn.then)  # first: the mode is in force once the client sees the reset
            if cut:
                self._close_conn(conn, rst=True)

    def _update_events(self, conn: _Conn) -> None:
        if conn.closed:
            return
        now = time.monotonic()
        for side, sock in enumerate(conn.socks):
            events = 0
            if not conn.eof[side] and conn.queued[side] < _MAX_QUEUED:
                events |= selectors.EVENT_READ
            incoming = conn.queues[1 - side]
            if self._mode != "blackhole" and incoming and incoming[0][0] <= now:
                events |= selectors.EVENT_WRITE
            if events == conn.events[side]:
                continue
            if not conn.events[side]:
                self._sel.register(sock, events, functools.partial(self._on_event, conn, side))
            elif events:
                self._sel.modify(sock, events, functools.partial(self._on_event, conn, side))
            else:
                self._sel.unregister(sock)
            conn.events[side] = events

    def _close_conn(self, conn: _Conn, rst: bool = False) -> None:
        conn.closed = True
        self._conns.discard(conn)
        for side, sock in enumerate(conn.socks):
            if conn.events[side]:
                self._sel.unregister(sock)
                conn.events[side] = 0
            if rst:
                # Linger 0 turns close() into an RST.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
