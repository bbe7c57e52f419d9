from __future__ import annotations

import pytest

from ansible_collections.zkherd.ops.plugins.module_utils.common import connection
from ansible_collections.zkherd.ops.plugins.module_utils.common.connection import (
    USAGE,
    Settings,
    ZkError,
    validate_hosts,
)


def test_defaults():
    s = Settings.from_options({})
    assert (s.hosts, s.session_timeout, s.auth, s.tls) == ("127.0.0.1:2181", 10.0, None, False)


@pytest.mark.parametrize("hosts", ["zk1:2181", "zk1:2181,zk2:2182/app/prod", "zk1", "[::1]:2181"])
def test_good_hosts(hosts):
    assert validate_hosts(hosts) == hosts


def test_hosts_list():
    assert validate_hosts(["a:1", "b:2"]) == "a:1,b:2"


@pytest.mark.parametrize("hosts, message", [("zk1:2181/a//b", "chroot"), ("zk1:99999", "bad port"),
                                            ("zk1:2181,,zk2:2181", "expected host:port"),
                                            ("/chroot", "expected host:port")])
def test_bad_hosts(hosts, message):
    with pytest.raises(ZkError, match=message) as info:
        validate_hosts(hosts)
    assert info.value.kind == USAGE


def test_auth_must_be_user_password_and_is_never_shown():
    with pytest.raises(ZkError, match="user:password"):
        Settings.from_options({"auth": "nocolon"})
    s = Settings.from_options({"auth": "bob:secret"})
    assert "secret" not in repr(s)


def test_tls(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ZkError, match=r"cannot use the TLS files \(tls_ca .*ca.pem\): NO_CERTIFICATE"):
        Settings.from_options({"tls_ca": str(ca)})
    settings = Settings.from_options({"tls_system_ca": True})
    assert settings.tls and settings.tls_system_ca and settings.tls_ca is None
    for options in ({"tls": True}, {"tls": True, "tls_system_ca": False}):
        with pytest.raises(ZkError, match="give tls_ca .* or tls_system_ca") as refused:
            Settings.from_options(options)
        assert refused.value.kind == USAGE
    with pytest.raises(ZkError, match="no such file"):
        Settings.from_options({"tls_ca": str(tmp_path / "missing.pem")})
    with pytest.raises(ZkError, match="go together"):
        Settings.from_options({"tls_cert": str(ca)})


def test_timeouts():
    with pytest.raises(ZkError, match="must be positive"):
        Settings.from_options({"session_timeout": 0})
    with pytest.raises(ZkError, match="number of seconds"):
        Settings.from_options({"connect_timeout": "soon"})


class _Handler:
    """kazoo's handler as _HandshakeWait sees it: create_connection times out, is refused, or connects."""

    class timeout_exception(Exception):  # noqa: N801 - kazoo's attribute name (KazooTimeoutError)
        pass

    def __init__(self):
        import socket

        self.outcome, self.socket = "connect", socket

    def create_connection(self, address, timeout=None, **_options):
        self.timeout = timeout
        if self.outcome == "timeout":
            raise self.socket.timeout("timed out")
        if self.outcome == "refused":
            raise ConnectionRefusedError(111, "refused")
        return object()


class _Connection:
    def __init__(self, handler):
        self.handler, self.outcome, self.needs = handler, "answer", 0.0  # needs: seconds it takes to answer

    def _invoke(self, timeout, request, xid=None):
        self.timeout = timeout
        if self.outcome == "hang" or timeout < self.needs:
            raise self.handler.timeout_exception("socket time-out during read")
        return "answered"


def _bounded_client():
    """A client of fakes with _HandshakeWait in place: (client, its create_connection, its _invoke)."""

    class Client:
        pass

    client = Client()
    client.handler = _Handler()
    client._connection = _Connection(client.handler)
    connection._HandshakeWait(client, 1.0)
    return client, client.handler.create_connection, client._connection._invoke


def test_handshake_waits_grow_only_while_the_same_wait_runs_out():
    """A partition (TCP connects time out) must not leave a long wait for the Connect reply of a server
    that restarts and hangs (review: one shared bound stayed at 10 s after a partition)."""
    client, create, invoke = _bounded_client()
    client.handler.outcome = "timeout"
    for _attempt in range(4):
        with pytest.raises(OSError):
            create(("zk", 2181), timeout=10.0)
    assert client.handler.timeout == 8.0  # 1, 2, 4, 8: a slow network still gets through, up to 10
    client.handler.outcome, client._connection.outcome = "connect", "hang"
    create(("zk", 2181), timeout=10.0)
    with pytest.raises(Exception, match="time-out"):
        invoke(10.0, "Connect")
    assert client._connection.timeout == 1.0  # the reply's own wait, not the partition's
    client.handler.outcome = "refused"
    with pytest.raises(ConnectionRefusedError):
        create(("zk", 2181), timeout=10.0)
    client._connection.outcome, client.handler.outcome = "answer", "connect"
    create(("zk", 2181), timeout=10.0)
    assert invoke(10.0, "Connect") == "answered" and client._connection.timeout == 1.0  # reset by the refusal
    invoke(10.0, "auth", xid=-4)
    assert client._connection.timeout == 10.0  # replies with an xid (auth) keep kazoo's wait


def test_a_refusing_host_does_not_keep_a_slow_one_out_of_reach():
    """Hosts a (working, but 3 s to answer a Connect) and b (down: refused), tried in turn as kazoo does:
    with one pair of waits for all hosts, b's refusals put a's back at 1 s every round and a was never
    reached (review). Per address, a's wait grows to 4 s while b refuses."""
    client, create, invoke = _bounded_client()
    client._connection.needs, reached = 3.0, []
    for _round in range(4):
        if reached:
            break
        client.handler.outcome = "refused"
        with pytest.raises(ConnectionRefusedError):
            create(address=("b", 2181), timeout=5.0)
        client.handler.outcome = "connect"
        create(address=("a", 2181), timeout=5.0)
        try:
            reached.append(invoke(5.0, "Connect"))
        except client.handler.timeout_exception:
            pass
    assert reached and client._connection.timeout == 4.0, "a was never reached"  # waits 1, 2, then 4
