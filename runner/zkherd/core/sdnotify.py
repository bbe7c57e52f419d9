"""The systemd notification protocol (sd_notify(3)), without a dependency: datagrams of
`KEY=VALUE` lines sent to the unix socket named by $NOTIFY_SOCKET (a path, or an abstract socket
when it starts with '@'). With no $NOTIFY_SOCKET (not started by systemd with Type=notify) every
call does nothing. A failed send is never fatal: readiness is a courtesy to the supervisor.

    notify = Notifier()
    notify.send(READY=1, STATUS="waiting for lock /locks/x")
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, address=None, log=None):
        if address is None:
            address = os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address if address.startswith(("/", "\0")) else None  # anything else: not ours
        self.log = log
        self.sock = None
        self.status = None  # the last STATUS sent
        self.ready = False

    @property
    def enabled(self):
        return self.address is not None

    def send(self, **fields):
        """Send KEY=VALUE lines in one datagram; returns True if it was sent."""
        if self.address is None or not fields:
            return False
        payload = "".join("%s=%s\n" % (key, str(value).replace("\n", " ")) for key, value in fields.items())
        try:
            if self.sock is None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self.sock.sendto(payload.encode("utf-8"), self.address)
        except OSError as exc:
            if self.log is not None:
                self.log.debug("could not notify the service manager", error=exc.strerror or str(exc))
            return False
        return True

    def set_status(self, status, ready=False):
        """STATUS=... when it changed, with READY=1 the first time *ready* is true."""
        fields = {}
        if ready and not self.ready:
            fields["READY"] = 1
        if status != self.status:
            fields["STATUS"] = status
        if fields:
            self.send(**fields)  # not sent again if it failed: a courtesy, not worth a retry loop
            self.status = status
            self.ready = self.ready or "READY" in fields

    def stopping(self, status="stopping"):
        if self.status != status:
            self.send(STOPPING=1, STATUS=status)
            self.status = status

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
