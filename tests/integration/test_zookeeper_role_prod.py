"""The zookeeper role's production settings on real local ZooKeeper servers started from the files
the role's templates write (zoo.cfg, log4j.properties, jaas.conf): audit log, quorum TLS, quorum
SASL (and a server with a wrong password refused); the heap sized from the host; the transaction
log's device check; the metrics provider's jar check. The whole role on systemd boxes: molecule."""

from __future__ import annotations

import os
import time

import pytest
import yaml
from kazoo.client import KazooClient

from tests.integration.test_zookeeper_role_tls import ROLE, role_zoo_cfg
from tests.support.playbook import run_playbook
from tests.support.tls import make_tls_files
from tests.support.zkserver import ZooKeeperEnsemble, ZooKeeperServer, free_port

# Each member's own keys: the harness sets them (ports, data folder); the rest is the role's.
PER_SERVER = ("dataDir", "clientPort", "clientPortAddress", "tickTime")


def role_vars(tmp_path, **settings):
    play_vars = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    play_vars.update(yaml.safe_load((ROLE / "vars" / "main.yml").read_text()))
    play_vars.update(zookeeper_address="127.0.0.1", zookeeper_conf_dir=str(tmp_path / "conf"),
                     zookeeper_data_dir=str(tmp_path / "data"), **settings)
    return play_vars


def render(tmp_path, template, **settings):
    """One of the role's templates, rendered with its defaults and vars and SETTINGS."""
    dest = tmp_path / ("%s-%s" % (template[:-3], free_port()))
    run = run_playbook([{"name": "Render", "ansible.builtin.template": {
        "src": str(ROLE / "templates" / template), "dest": str(dest), "mode": "0600"}}],
        play_vars=role_vars(tmp_path, **settings))
    assert run.rc == 0, run.output
    return dest


def role_ensemble(tmp_path, size=3, jvm_props=None, **settings):
    cfg = {key: value for key, value in role_zoo_cfg(tmp_path, **settings).items() if key not in PER_SERVER}
    return ZooKeeperEnsemble(size, tmp_path / "ensemble", extra_cfg=cfg, jvm_props=jvm_props)


def quorum_tls_files(tmp_path):
    files = make_tls_files(tmp_path / "conf" / "tls")
    (tmp_path / "conf" / "tls" / "truststore.pem").write_bytes(files.cert.read_bytes())
    return files


def wait_for(condition, timeout=60.0, what=""):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_the_audit_log_records_a_create(tmp_path):
    audit = tmp_path / "audit" / "zookeeper_audit.log"
    audit.parent.mkdir()
    cfg = role_zoo_cfg(tmp_path, zookeeper_audit=True)
    assert cfg["audit.enable"] == "true"
    log4j = render(tmp_path, "log4j.properties.j2", zookeeper_audit=True, zookeeper_audit_log=str(audit))
    server = ZooKeeperServer(tmp_path / "server", jvm_props={"log4j.configuration": "file:%s" % log4j})
    server.cfg.update({key: value for key, value in cfg.items() if key not in PER_SERVER})
    server.start()
    zk = KazooClient(server.hosts)
    try:
        zk.start(30)
        zk.create("/audited-node", b"x")
        wait_for(lambda: audit.exists() and "/audited-node" in audit.read_text(), 30, server.log_tail())
    finally:
        zk.stop()
        zk.close()
        server.stop()
    line = next(line for line in audit.read_text().splitlines() if "/audited-node" in line)
    assert "operation=create" in line and "result=success" in line, line
    assert "/audited-node" not in server.log_path.read_text()  # its own file, not the server's log


def test_three_servers_form_a_quorum_over_tls(tmp_path):
    quorum_tls_files(tmp_path)
    ensemble = role_ensemble(tmp_path, zookeeper_quorum_tls=True, zookeeper_tls_cert="x", zookeeper_tls_key="x",
                             zookeeper_tls_ca="x")
    cfg = ensemble.servers[0].cfg
    assert cfg["sslQuorum"] == "true" and cfg["ssl.quorum.keyStore.location"].endswith("/tls/keystore.pem")
    assert "portUnification" not in cfg and "secureClientPort" not in cfg  # quorum TLS only
    try:
        ensemble.start(60)
        assert "Creating TLS-only quorum server socket" in ensemble.leader().log_path.read_text()
    finally:
        ensemble.close()


def test_port_unification_lets_tls_and_plain_servers_form_one_quorum(tmp_path):
    """The admin guide's rolling switch-over, its middle step: with portUnification on, a server
    already on sslQuorum and two still without it form one quorum."""
    quorum_tls_files(tmp_path)
    tls = dict(zookeeper_tls_cert="x", zookeeper_tls_key="x", zookeeper_tls_ca="x",
               zookeeper_quorum_tls_port_unification=True)
    unified = role_zoo_cfg(tmp_path, **tls)
    assert unified["portUnification"] == "true" and "sslQuorum" not in unified
    switched = role_zoo_cfg(tmp_path, zookeeper_quorum_tls=True, **tls)
    ensemble = role_ensemble(tmp_path, **tls)
    ensemble.servers[2].cfg.update({key: value for key, value in switched.items() if key not in PER_SERVER})
    try:
        ensemble.start(60)
    finally:
        ensemble.close()


def test_quorum_sasl_forms_a_quorum_and_refuses_a_wrong_password(tmp_path):
    cfg = role_zoo_cfg(tmp_path, zookeeper_quorum_sasl=True, zookeeper_quorum_sasl_password="s3cr\"et")
    assert cfg["quorum.auth.enableSasl"] == "true" and cfg["quorum.auth.learnerRequireSasl"] == "true"
    jaas = render(tmp_path, "jaas.conf.j2", zookeeper_quorum_sasl=True, zookeeper_quorum_sasl_password="s3cr\"et")
    wrong = render(tmp_path, "jaas.conf.j2", zookeeper_quorum_sasl=True, zookeeper_quorum_sasl_password="wrong")
    assert 'password="s3cr\\"et";' in jaas.read_text()
    ensemble = role_ensemble(tmp_path, jvm_props={"java.security.auth.login.config": jaas},
                             zookeeper_quorum_sasl=True, zookeeper_quorum_sasl_password="s3cr\"et")
    intruder = ensemble.servers[2]
    intruder.jvm_props["java.security.auth.login.config"] = wrong
    try:
        for server in ensemble.servers:
            server.launch()
        ensemble.wait_healthy(60, members=[0, 1])
        leader = ensemble.leader()
        wait_for(lambda: "authentication failed" in leader.log_path.read_text().lower(), 60,
                 leader.log_tail() + intruder.log_tail())
        assert intruder.mode() not in ("leader", "follower")
        intruder.stop()
        intruder.jvm_props["java.security.auth.login.config"] = jaas
        intruder.launch()
        ensemble.wait_healthy(60)
    finally:
        ensemble.close()


@pytest.mark.parametrize(("memtotal_mb", "heap"), [(None, "512m"), (512, "256m"), (16384, "4096m"),
                                                    (131072, "8192m")])
def test_the_heap_is_sized_from_the_host(tmp_path, memtotal_mb, heap):
    facts = {} if memtotal_mb is None else {"ansible_memtotal_mb": memtotal_mb}
    unit = render(tmp_path, "zookeeper.service.j2", **facts)
    assert " -Xmx%s " % heap in unit.read_text()
    explicit = render(tmp_path, "zookeeper.service.j2", zookeeper_heap_size="3g", **facts)
    assert " -Xmx3g " in explicit.read_text()


def run_tasks(tmp_path, tasks_file, **settings):
    return run_playbook([{"name": "Role tasks", "ansible.builtin.include_tasks": str(ROLE / "tasks" / tasks_file)}],
                        play_vars=role_vars(tmp_path, **settings))


def test_the_transaction_log_on_the_data_device_warns_or_fails(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "txlog").mkdir()
    same = run_tasks(tmp_path, "storage_check.yml", zookeeper_data_log_dir=str(tmp_path / "txlog"))
    assert same.rc == 0 and "WARNING zookeeper: the transaction log" in same.output, same.output
    required = run_tasks(tmp_path, "storage_check.yml", zookeeper_data_log_dir=str(tmp_path / "txlog"),
                         zookeeper_data_log_dir_require_own_device=True)
    assert required.rc != 0 and "same device as dataDir" in required.output, required.output
    unset = run_tasks(tmp_path, "storage_check.yml", zookeeper_data_log_dir_require_own_device=True)
    assert unset.rc != 0 and "dataLogDir unset" in unset.output
    other = "/dev/shm" if os.stat("/dev/shm").st_dev != os.stat(tmp_path).st_dev else None
    if other:
        own = run_tasks(tmp_path, "storage_check.yml", zookeeper_data_log_dir=other,
                        zookeeper_data_log_dir_require_own_device=True)
        assert own.rc == 0 and "WARNING" not in own.output, own.output


def test_the_metrics_provider_needs_its_jars(tmp_path):
    cfg = role_zoo_cfg(tmp_path, zookeeper_metrics_provider_port=7000)
    assert cfg["metricsProvider.className"] == "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
    assert cfg["metricsProvider.httpPort"] == "7000" and cfg["metricsProvider.httpHost"] == "127.0.0.1"
    assert "metricsProvider.className" not in role_zoo_cfg(tmp_path)
    missing = run_tasks(tmp_path, "production_checks.yml", zookeeper_metrics_provider_port=7000)
    assert missing.rc != 0 and "PrometheusMetricsProvider" in missing.output and "zookeeper_classpath" in missing.output
    jar = tmp_path / "zookeeper-prometheus-metrics.jar"
    import zipfile
    with zipfile.ZipFile(jar, "w") as out:
        out.writestr("org/apache/zookeeper/metrics/prometheus/PrometheusMetricsProvider.class", b"")
    found = run_tasks(tmp_path, "production_checks.yml", zookeeper_metrics_provider_port=7000,
                      zookeeper_classpath=["/usr/share/java/zookeeper.jar", str(jar)])
    assert found.rc == 0, found.output
