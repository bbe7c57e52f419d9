"""The HTTP listener of --metrics-listen: GET (any path) answers the metrics. Bounded, as it
listens on all addresses by default and shares the process (and its GIL) with the fence: at most
MAX_CLIENTS connections at a time (more are closed at once), each dropped DEADLINE seconds after
it came, however slowly it trickles its request in. prometheus_client's own server starts a thread
per connection without limit."""

from __future__ import annotations

import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

MAX_CLIENTS = 8
DEADLINE = 5.0  # seconds for a whole connection, request and answer (a scrape takes milliseconds)


class _DeadlineReader(io.RawIOBase):
    """The socket's reads, each given only what is left of the connection's DEADLINE (a socket
    timeout is per recv: one byte every few seconds would keep a slot for ever)."""

    def __init__(self, sock, deadline):
        super().__init__()
        self.sock, self.deadline = sock, deadline

    def readable(self):
        return True

    def readinto(self, buffer):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the connection's time is up")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def setup(self):
        super().setup()
        deadline = time.monotonic() + DEADLINE
        self.connection.settimeout(DEADLINE)  # the answer's writes too
        self.rfile.close()  # the plain one: the socket is really closed only when all its files are
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, deadline))

    def do_GET(self):  # noqa: N802  # the name http.server calls
        body = self.server.render()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # scrapes are not news
        pass


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # waiting in the kernel costs no thread

    def __init__(self, address, family, render):
        self.address_family = family
        self.render = render
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)
        super().__init__(address, _Handler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):  # full: this one is closed, not queued on a thread
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread (say, none can be started): the slot is free again
            self.slots.release()
            raise  # socketserver closes the request

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address):  # a client that went away: no traceback
        pass


def serve(addr, port, render, spec):
    """Listen on ADDR:PORT in a daemon thread; ValueError (said plainly) for a bad or busy address."""
    try:
        family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError("--metrics-listen %s: cannot listen: %s" % (spec, getattr(exc, "strerror", None) or exc)) \
            from None
    try:
        server = MetricsServer((addr, port), family, render)
    except OSError as exc:
        raise ValueError("--metrics-listen %s: cannot listen: %s" % (spec, exc.strerror or exc)) from None
    threading.Thread(target=server.serve_forever, name="metrics-listener", daemon=True).start()
    return server
