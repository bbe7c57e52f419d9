"""`zkherd run` under systemd's Type=notify: READY=1 for the holder once its child runs and for a
standby once it is queued for the lock (so `systemctl start` never waits for the lock), STATUS=
lines on transitions, STOPPING=1 at shutdown, and no NOTIFY_SOCKET in the child's environment."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for


class NotifySocket:
    """A unix datagram socket standing in for systemd's notification socket."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.2)
        self.env = "@" + address[1:] if address.startswith("\0") else address
        self.messages = []  # [{KEY: VALUE}] one per datagram

    def collect(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, BlockingIOError):
                return self.messages
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line))

    def wait(self, key, value=None, timeout=15.0):
        """The first message with *key* (equal to *value*, or starting with it if it ends with '*')."""
        def found():
            for message in self.collect():
                got = message.get(key)
                if got is not None and (value is None or got == value
                                        or (value.endswith("*") and got.startswith(value[:-1]))):
                    return message
            return None
        wait_for(found, timeout, message=lambda: "%s=%s among %s" % (key, value, self.messages))
        return found()

    def statuses(self):
        return [m["STATUS"] for m in self.collect() if "STATUS" in m]

    def close(self):
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    sockets = []

    def make(abstract=False):
        if abstract:
            address = "\0zkherd-test-%d-%d" % (os.getpid(), len(sockets))
        else:
            address = str(tmp_path / ("notify%d" % len(sockets)))
            if len(address) > 100:  # sun_path is 108 bytes
                pytest.skip("temporary directory path too long for a unix socket")
        sockets.append(NotifySocket(address))
        return sockets[-1]

    yield make
    for sock in sockets:
        sock.close()


def run_args(hosts, *extra):
    return ["run", "--zk", hosts, "--session-timeout", "2", "--stop-timeout", "2", *extra]


def env_of(path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def wait_env(path):
    """The environment the child wrote, once it is complete."""
    wait_for(lambda: path.exists() and "ZKHERD_LOCK_PATH" in path.read_text())
    return env_of(path)


def test_ready_for_holder_and_standby_and_no_notify_socket_in_child(zk_server, zk_base, tmp_path, notify_socket):
    lock = zk_base + "/locks/svc"
    holder_sock, standby_sock = notify_socket(), notify_socket(abstract=True)
    script = 'env > "%s/env.$ZKHERD_NAME"; exec sleep 1000'
    holder = Zkherd(run_args(zk_server.hosts, "--lock", lock, "--", "sh", "-c", script % tmp_path), tmp_path / "h.log",
                    env={"NOTIFY_SOCKET": holder_sock.env, "ZKHERD_NAME": "holder"})
    ready = holder_sock.wait("READY", "1")
    assert ready["STATUS"].startswith("running pid ") and ready["STATUS"].endswith("(lock %s)" % lock)
    child_env = wait_env(tmp_path / "env.holder")
    assert "NOTIFY_SOCKET" not in child_env
    assert child_env["ZKHERD_NAME"] == "holder"  # the rest of the environment is passed on

    started = time.monotonic()
    standby = Zkherd(run_args(zk_server.hosts, "--lock", lock, "--", "sh", "-c", script % tmp_path), tmp_path / "s.log",
                     env={"NOTIFY_SOCKET": standby_sock.env, "ZKHERD_NAME": "standby"})
    ready = standby_sock.wait("READY", "1")
    assert time.monotonic() - started < 10  # readiness does not wait for the lock
    assert ready["STATUS"] == "waiting for lock %s" % lock
    assert not standby.has("started child")

    # the holder stops: STOPPING=1 from it; the standby takes over and says so
    holder.signal(signal.SIGTERM)
    holder.wait()
    assert any(m.get("STOPPING") == "1" and m.get("STATUS") == "stopping" for m in holder_sock.collect())
    standby_sock.wait("STATUS", "running pid *")
    assert "NOTIFY_SOCKET" not in wait_env(tmp_path / "env.standby")
    standby.stop()
    statuses = standby_sock.statuses()
    assert statuses[0] == "waiting for lock %s" % lock and statuses[1].startswith("running pid ")
    assert statuses[-1] == "stopping"
    assert sum(1 for m in standby_sock.messages if m.get("READY") == "1") == 1  # once


def test_ready_while_waiting_for_mirrored_znodes(zk_server, zk_base, tmp_path, notify_socket):
    """A service whose configuration znode does not exist yet is up (waiting), not starting forever."""
    sock = notify_socket()
    runner = Zkherd(run_args(zk_server.hosts, "--mirror", "%s=%s/conf" % (tmp_path / "app.conf", zk_base),
                             "--", "sleep", "1000"), tmp_path / "r.log", env={"NOTIFY_SOCKET": sock.env})
    ready = sock.wait("READY", "1")
    assert ready["STATUS"] == "waiting for mirrored znodes %s/conf" % zk_base
    runner.stop()


def test_without_notify_socket_nothing_breaks(zk_server, tmp_path):
    env = {"NOTIFY_SOCKET": ""}
    code = Zkherd(run_args(zk_server.hosts, "--", "sh", "-c", "exit 4"), tmp_path / "a.log", env=env)
    assert code.wait() == 4
    gone = Zkherd(run_args(zk_server.hosts, "--", "sh", "-c", "exit 5"), tmp_path / "b.log",
                  env={"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert gone.wait() == 5  # a socket nobody listens on is not an error
