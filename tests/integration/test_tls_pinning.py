"""--tls-ca pins the CA (docs/security.md, "TLS: the CA you name is the only one trusted"): a server
certificate signed by another CA is refused even when that CA is in the system store; the system
store is trusted only when asked (--tls-system-ca, tls_system_ca, ZKHERD_TLS_SYSTEM_CA).

"The system store" is made real for the client process with SSL_CERT_FILE, which OpenSSL's default
verify paths (Python's load_default_certs) read - the same path a CA installed in
/etc/ssl/certs takes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.playbook import REPO, run_playbook
from tests.support.runner import Zkherd
from tests.support.tls import make_tls_files


@pytest.fixture
def tls_setup(make_zk_server, tmp_path):
    """A TLS server whose certificate is signed by CA B (in the client's system store); CA A is
    another CA, the one the client names."""
    ca_a = make_tls_files(tmp_path / "ca-a")
    ca_b = make_tls_files(tmp_path / "ca-b")
    server = make_zk_server(keystore=ca_b.keystore, truststore=ca_b.cert, ssl_client_auth="none")
    return server, ca_a, ca_b, {"SSL_CERT_FILE": str(ca_b.cert), "SSL_CERT_DIR": str(tmp_path / "no-such-dir")}


def zkherd_run(tmp_path, name, args, env):
    runner = Zkherd(["run", *args, "--connect-timeout", "5", "--", "true"], tmp_path / (name + ".log"), env=env)
    return runner.wait(60), runner


def test_runner_trusts_only_the_ca_it_is_given(tls_setup, tmp_path):
    server, ca_a, _ca_b, system_b = tls_setup
    zk = ["--zk", server.secure_hosts]
    code, pinned = zkherd_run(tmp_path, "pinned", [*zk, "--tls-ca", str(ca_a.cert)], system_b)
    assert code == 69, pinned.log()
    line = pinned.wait_log("ERROR cannot connect to ZooKeeper.*")
    assert "CERTIFICATE_VERIFY_FAILED" in line, line
    assert not pinned.has("started child")

    code, system = zkherd_run(tmp_path, "system", [*zk, "--tls-system-ca"], system_b)
    assert code == 0, system.log()
    code, from_env = zkherd_run(tmp_path, "env", zk, dict(system_b, ZKHERD_TLS_SYSTEM_CA="1"))
    assert code == 0, from_env.log()
    code, both = zkherd_run(tmp_path, "both", [*zk, "--tls-ca", str(ca_a.cert), "--tls-system-ca"], system_b)
    assert code == 0, both.log()  # asked for both: either may sign

    code, neither = zkherd_run(tmp_path, "neither", [*zk, "--tls-cert", str(ca_a.cert), "--tls-key",
                                                     str(ca_a.key)], system_b)
    assert code == 64, neither.log()  # TLS that trusts nothing is a usage error, not a silent fallback
    assert "--tls-ca" in neither.log() and "--tls-system-ca" in neither.log()

    from cryptography.hazmat.primitives import serialization

    encrypted = tmp_path / "encrypted-key.pem"
    encrypted.write_bytes(serialization.load_pem_private_key(ca_a.key.read_bytes(), None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")))
    code, locked = zkherd_run(tmp_path, "encrypted", [*zk, "--tls-ca", str(ca_a.cert), "--tls-cert", str(ca_a.cert),
                                                      "--tls-key", str(encrypted)], system_b)
    assert code == 64 and "is encrypted: give a key without a passphrase" in locked.log(), locked.log()
    code, junk = zkherd_run(tmp_path, "junk", [*zk, "--tls-ca", str(encrypted)], system_b)
    assert code == 64 and "cannot use the TLS files (tls_ca %s)" % encrypted in junk.log(), junk.log()


def test_modules_lookups_and_inventory_trust_only_the_ca_they_are_given(tls_setup, tmp_path):
    server, ca_a, ca_b, system_b = tls_setup
    info = {"path": "/", "hosts": server.secure_hosts, "connect_timeout": 5}
    run = run_playbook([
        {"name": "pinned", "zkherd.ops.znode_info": dict(info, tls_ca=str(ca_a.cert)), "ignore_errors": True},
        {"name": "system", "zkherd.ops.znode_info": dict(info, tls_system_ca=True)},
        {"name": "right ca", "zkherd.ops.znode_info": dict(info, tls_ca=str(ca_b.cert))},
        {"name": "tls only", "zkherd.ops.znode_info": dict(info, tls=True), "ignore_errors": True},
        {"name": "lookup pinned", "ansible.builtin.debug": {"msg": "{{ lookup('zkherd.ops.znode', '/') }}"},
         "ignore_errors": True},
        {"name": "lookup system", "ansible.builtin.debug": {"msg": "{{ lookup('zkherd.ops.znode', '/') }}"},
         "vars": {"zkherd_tls_ca": None, "zkherd_tls_system_ca": True}},
    ], env=system_b, play_vars={"zkherd_hosts": server.secure_hosts, "zkherd_tls_ca": str(ca_a.cert),
                                "zkherd_connect_timeout": 5})
    pinned = run["pinned"]
    assert pinned["failed"] and pinned["error_kind"] == "connect", run.output
    assert "CERTIFICATE_VERIFY_FAILED" in pinned["msg"], pinned["msg"]
    assert run["system"]["exists"] and run["right ca"]["exists"], run.output
    assert run["tls only"]["failed"] and run["tls only"]["error_kind"] == "usage", run["tls only"]
    assert "tls_ca" in run["tls only"]["msg"] and "tls_system_ca" in run["tls only"]["msg"]
    assert run["lookup pinned"]["failed"] and "CERTIFICATE_VERIFY_FAILED" in run["lookup pinned"]["msg"]
    assert not run["lookup system"].get("failed"), run["lookup system"]

    source = tmp_path / "tls.zkherd_farm.yml"
    listed = {}
    for name, options in (("pinned", {"tls_ca": str(ca_a.cert)}), ("system", {"tls_system_ca": True})):
        source.write_text(yaml.safe_dump(dict({"plugin": "zkherd.ops.farm", "hosts": server.secure_hosts,
                                               "farms": ["/zookeeper"], "connect_timeout": 5}, **options)))
        listed[name] = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(source), "--list"], cwd=REPO,
            env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), LANG="C.UTF-8",
                     ANSIBLE_INVENTORY_UNPARSED_FAILED="1", **system_b),
            capture_output=True, text=True, timeout=120, check=False)
    assert listed["pinned"].returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in listed["pinned"].stderr
    assert listed["system"].returncode == 0, listed["system"].stderr


def test_a_key_renewed_with_a_passphrase_is_tried_again_not_fatal(make_zk_server, fault_proxy, tmp_path):
    """The key file is renewed with an encrypted key while the runner is connected, then the
    connection drops: each reconnect fails on the key (the runner never asks for a passphrase)
    and is tried again; once a usable key is back, the runner is back in contact. Before: kazoo's
    connection thread died on the refusal ("Unhandled exception in connection loop") and the runner
    never reconnected."""
    from cryptography.hazmat.primitives import serialization

    ca = make_tls_files(tmp_path / "ca")
    server = make_zk_server(keystore=ca.keystore, truststore=ca.cert, ssl_client_auth="none")
    proxy = fault_proxy(server.secure_hosts)
    key = tmp_path / "client-key.pem"
    key.write_bytes(ca.key.read_bytes())
    runner = Zkherd(["run", "-v", "--zk", proxy.hosts, "--session-timeout", "30", "--tls-ca", str(ca.cert),
                     "--tls-cert", str(ca.cert), "--tls-key", str(key), "--", "sh", "-c",
                     "trap 'exit 0' TERM; while :; do sleep 0.05; done"], tmp_path / "run.log")
    runner.wait_log("started child", timeout=30)
    key.write_bytes(serialization.load_pem_private_key(ca.key.read_bytes(), None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")))
    proxy.reset_all()
    runner.wait_log("lost contact with ZooKeeper")
    runner.wait_log("(Unhandled exception in connection loop|TLS key .* is encrypted)", timeout=30)
    key.write_bytes(ca.key.read_bytes())
    runner.wait_log("contact with ZooKeeper is back", timeout=60)
    assert runner.proc.poll() is None
    runner.stop()
