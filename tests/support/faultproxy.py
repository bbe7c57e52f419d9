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
* blackhole(): a partition. Nothing is delivered in either direction, not
  even a FIN or RST, so each end only notices through its own timeouts. New
  connections are accepted but hang the same way. Bytes are *held*, not
  discarded: heal() delivers them in order, like TCP retransmission after a
  real partition heals. Closes that happened meanwhile (a client giving up,
  the server expiring a session) are delivered after the held bytes. Call
  reset_all() before heal() to drop the partitioned connections instead.
* reset_all(): abort every open connection with an RST on both ends.

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


def _parse_target(target: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(target, str):
        host, port = target.rsplit(":", 1)
        return host, int(port)
    return target


class FaultProxy:
    def __init__(self, target: str | tuple[str, int]):
        self.target = _parse_target(target)
        self._mode = "pass"  # pass | drop_new | blackhole
        self._delay = 0.0
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

    def blackhole(self) -> None:
        self._call(self._set_mode, "blackhole", self._delay)

    def reset_all(self) -> None:
        def reset() -> None:
            for conn in list(self._conns):
                self._close_conn(conn, rst=True)

        self._call(reset)

    @property
    def mode(self) -> str:
        return self._mode

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
            for sock in (self._listener, self._wake_r, self._wake_w):
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
        conn.queues[side].append((time.monotonic() + self._delay, data or None))
        conn.queued[side] += len(data)

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
