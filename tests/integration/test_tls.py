"""The shared connection options over TLS: modules and the lookup against a secureClientPort."""

from __future__ import annotations

from tests.support.playbook import run_playbook
from tests.support.tls import make_tls_files


def test_modules_and_lookup_over_tls(make_zk_server, tmp_path):
    good = make_tls_files(tmp_path / "good")
    other = make_tls_files(tmp_path / "other")  # a CA that did not sign the server's certificate
    server = make_zk_server(keystore=good.keystore, truststore=good.cert, ssl_client_auth="need")
    tls = {"hosts": server.secure_hosts, "tls_ca": str(good.cert), "tls_cert": str(good.cert),
           "tls_key": str(good.key), "connect_timeout": 3}
    run = run_playbook([
        {"name": "write", "zkherd.ops.znode": {"path": "/tls/x", "value": "over tls"}},
        {"name": "read", "ansible.builtin.debug": {"msg": "{{ lookup('zkherd.ops.znode', '/tls/x') }}"}},
        {"name": "wrong ca", "zkherd.ops.znode_info": {"path": "/tls/x", "tls_ca": str(other.cert)},
         "ignore_errors": True},
        {"name": "no client cert", "zkherd.ops.znode_info": {"path": "/tls/x", "tls_cert": None, "tls_key": None},
         "ignore_errors": True},
    ], defaults=tls, play_vars={"zkherd_hosts": server.secure_hosts, "zkherd_tls_ca": str(good.cert),
                                "zkherd_tls_cert": str(good.cert), "zkherd_tls_key": str(good.key)})
    assert run["write"]["changed"], run.output
    assert run["read"]["msg"] == "over tls"
    for name in ("wrong ca", "no client cert"):
        assert run[name]["failed"] and run[name]["error_kind"] == "connect", name
        assert "cannot connect to ZooKeeper at %s" % server.secure_hosts in run[name]["msg"]
    assert "CERTIFICATE_VERIFY_FAILED" in run["wrong ca"]["msg"]  # the reason, not just a timeout
