from __future__ import annotations

import pytest

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
