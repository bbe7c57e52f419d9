"""The zookeeper role's client ports, on a real ZooKeeper started from the zoo.cfg the role writes:
with TLS on, the plain port is closed unless kept, the ports listen on zookeeper_address only,
and the role's health check (files/zk_mode.py) gets the server's mode over TLS with the server's
own key store. The whole role on systemd boxes: molecule (scripts/molecule.sh)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import yaml

from tests.support.playbook import REPO, run_playbook
from tests.support.tls import make_tls_files
from tests.support.zkserver import ZooKeeperServer, free_port

ROLE = REPO / "roles" / "zookeeper"
ZK_MODE = ROLE / "files" / "zk_mode.py"


def role_zoo_cfg(tmp_path, **settings):
    """zoo.cfg as the role's own template writes it, with the role's defaults and vars."""
    play_vars = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    play_vars.update(yaml.safe_load((ROLE / "vars" / "main.yml").read_text()))
    play_vars.update(zookeeper_address="127.0.0.1", zookeeper_conf_dir=str(tmp_path / "conf"),
                     zookeeper_data_dir=str(tmp_path / "data"), **settings)
    dest = tmp_path / "role-zoo.cfg"
    run = run_playbook([{"name": "Write zoo.cfg", "ansible.builtin.template": {
        "src": str(ROLE / "templates" / "zoo.cfg.j2"), "dest": str(dest), "mode": "0644"}}], play_vars=play_vars)
    assert run.rc == 0, run.output
    return dict(line.split("=", 1) for line in dest.read_text().splitlines() if "=" in line and line[0] != "#")


def zk_mode(*args):
    return subprocess.run([sys.executable, str(ZK_MODE), *map(str, args)], capture_output=True, text=True,
                          timeout=60, check=False)


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.fixture
def tls_server(tmp_path):
    """A real ZooKeeper running the role's zoo.cfg with TLS on (client certificates required)."""
    servers = []

    def start(**settings):
        files = make_tls_files(tmp_path / "conf" / "tls")
        (tmp_path / "conf" / "tls" / "truststore.pem").write_bytes(files.cert.read_bytes())
        plain, secure = free_port(), free_port()
        cfg = role_zoo_cfg(tmp_path, zookeeper_client_port=plain, zookeeper_secure_client_port=secure,
                           zookeeper_tls_cert="x", zookeeper_tls_key="x", zookeeper_tls_ca="x", **settings)
        server = ZooKeeperServer(tmp_path / "server")
        server.cfg = dict(cfg, dataDir=str(server.data_dir), tickTime=200)
        server.launch()
        servers.append(server)
        return server, cfg, plain, secure, files

    yield start
    for server in servers:
        server.stop()


def test_tls_closes_the_plain_port_and_the_health_check_uses_tls(tls_server):
    server, cfg, plain, secure, files = tls_server()
    assert "clientPort" not in cfg and "clientPortAddress" not in cfg  # before: clientPort=2181, every address
    assert cfg["secureClientPort"] == str(secure) and cfg["secureClientPortAddress"] == "127.0.0.1"
    health = zk_mode("127.0.0.1", secure, 60, "--tls", files.keystore)  # waits until it serves
    assert health.returncode == 0 and health.stdout.strip() == "standalone", health.stdout + server.log_tail()
    assert refused(plain)
    assert zk_mode("127.0.0.1", secure).stdout.strip() == "down"  # no TLS, no answer


def test_the_plain_port_can_be_kept_deliberately(tls_server):
    server, cfg, plain, secure, files = tls_server(zookeeper_plaintext_client_port="keep")
    assert cfg["clientPort"] == str(plain) and cfg["clientPortAddress"] == "127.0.0.1"
    assert zk_mode("127.0.0.1", plain, 60).stdout.strip() == "standalone"


def test_without_tls_the_client_port_listens_on_zookeeper_address_only(tmp_path):
    cfg = role_zoo_cfg(tmp_path)
    assert cfg["clientPort"] == "2181" and cfg["clientPortAddress"] == "127.0.0.1"  # before: no clientPortAddress
    assert "clientPortAddress" not in role_zoo_cfg(tmp_path, zookeeper_client_address="")  # every address: explicit
