"""The zookeeper role's Prometheus exporter (files/zk_exporter.py) against a real ZooKeeper started
from the role's zoo.cfg: scraped over HTTP, its values are mntr's; over TLS when the plain port is
closed; zookeeper_up 0 when the server is down."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pytest
from kazoo.client import KazooClient

from tests.integration.test_zookeeper_role_tls import ROLE, role_zoo_cfg
from tests.support.tls import make_tls_files
from tests.support.zkserver import ZooKeeperServer, four_letter_word, free_port

EXPORTER = ROLE / "files" / "zk_exporter.py"


def sample_name(key):
    """The exporter's own naming (files/ is not a package: loaded from its path)."""
    sys.path.insert(0, str(EXPORTER.parent))
    try:
        import zk_exporter
    finally:
        sys.path.remove(str(EXPORTER.parent))
    return zk_exporter.sample_name(key)


def scrape(port, timeout=30.0):
    """{sample: value} of one scrape, once the exporter listens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as answer:
                assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                text = answer.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))


@pytest.fixture
def exporter():
    procs = []

    def start(*args):
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(EXPORTER), "127.0.0.1:%d" % port, *map(str, args)],
                                stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        return port

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)
        assert "Traceback" not in proc.stderr.read()


@pytest.fixture
def role_server(tmp_path):
    servers = []

    def start(**settings):
        cfg = role_zoo_cfg(tmp_path, **settings)
        server = ZooKeeperServer(tmp_path / "server")
        server.cfg = dict(cfg, dataDir=str(server.data_dir), tickTime=200)
        servers.append(server)
        return server, cfg

    yield start
    for server in servers:
        server.stop()


def test_the_exporter_serves_mntr_in_prometheus_format(role_server, exporter):
    port = free_port()
    server, cfg = role_server(zookeeper_client_port=port)
    server.port = port
    server.start()
    zk = KazooClient("127.0.0.1:%d" % port)
    zk.start(30)
    try:
        for i in range(7):
            zk.create("/exported-%d" % i)
        zk.create("/eph", ephemeral=True)
        # mntr first: keys only come (some with their first use), so all of these are in the scrape.
        mntr = dict(line.split("\t", 1) for line in four_letter_word("127.0.0.1", port, "mntr").splitlines())
        metrics = scrape(exporter("127.0.0.1", port))
    finally:
        zk.stop()
        zk.close()
    assert metrics["zookeeper_up"] == "1"
    assert metrics['zookeeper_server_state{state="standalone"}'] == "1"
    assert metrics['zookeeper_server_state{state="leader"}'] == "0"
    assert metrics['zookeeper_version_info{version="%s"}' % mntr["zk_version"].split(",")[0]] == "1"
    for key in ("zk_znode_count", "zk_ephemerals_count", "zk_max_file_descriptor_count", "zk_approximate_data_size"):
        assert metrics["zookeeper_" + key[3:]] == mntr[key], key
    assert int(metrics["zookeeper_znode_count"]) >= 5 + 8 and metrics["zookeeper_ephemerals_count"] == "1"
    numbers = [key for key, value in mntr.items() if value.replace(".", "").lstrip("-").isdigit()]
    assert len(numbers) > 100 and [key for key in numbers if sample_name(key)[1] not in metrics] == []
    # Per-namespace summaries are labelled, not one metric name per top-level znode.
    assert metrics['zookeeper_write_per_namespace_cnt{namespace="exported-6"}'] == "1"


def test_over_tls_when_the_plain_port_is_closed_and_down_when_the_server_is(tmp_path, role_server, exporter):
    files = make_tls_files(tmp_path / "conf" / "tls")
    (tmp_path / "conf" / "tls" / "truststore.pem").write_bytes(files.cert.read_bytes())
    secure = free_port()
    server, cfg = role_server(zookeeper_secure_client_port=secure, zookeeper_tls_cert="x",
                              zookeeper_tls_key="x", zookeeper_tls_ca="x")
    assert "clientPort" not in cfg
    server.launch()
    port = exporter("127.0.0.1", secure, "--tls", files.keystore)
    deadline = time.monotonic() + 60
    while (metrics := scrape(port))["zookeeper_up"] != "1":
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.2)
    assert metrics['zookeeper_server_state{state="standalone"}'] == "1"
    assert int(metrics["zookeeper_znode_count"]) >= 5
    server.stop()
    assert scrape(port) == {"zookeeper_up": "0"}


def test_bad_arguments_are_a_clear_error(tmp_path):
    run = subprocess.run([sys.executable, str(EXPORTER), "nowhere", "127.0.0.1", "2181"], capture_output=True,
                         text=True, timeout=30, check=False)
    assert run.returncode == 64 and "LISTEN is HOST:PORT" in run.stderr and "Traceback" not in run.stderr


def test_the_exporter_unit_is_hardened_and_asks_the_servers_port(tmp_path):
    from tests.integration.test_zookeeper_role_prod import render
    health = {"host": "10.0.0.1", "port": 2281, "tls": "--tls /etc/zookeeper/conf_zookeeper/tls/keystore.pem"}
    unit, = render(tmp_path, ("zookeeper-exporter.service.j2", {"zookeeper_exporter_listen": "0.0.0.0:9141",
                                                                "_zookeeper_health": health}))
    text = unit.read_text()
    assert ("ExecStart=/usr/bin/python3 /usr/local/lib/zkherd-zookeeper-exporter/zk_exporter.py 0.0.0.0:9141"
            " 10.0.0.1 2281 --tls /etc/zookeeper/conf_zookeeper/tls/keystore.pem") in text
    for line in ("User=zookeeper", "ProtectSystem=strict", "ProtectHome=yes", "MemoryDenyWriteExecute=yes",
                 "CapabilityBoundingSet=", "NoNewPrivileges=yes", "SystemCallFilter=@system-service"):
        assert "\n%s\n" % line in text, line
    assert "ReadWritePaths" not in text
