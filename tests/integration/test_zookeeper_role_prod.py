"""The zookeeper role's production settings on real local ZooKeeper servers started from the files
the role's templates write (zoo.cfg, log4j.properties, jaas.conf): audit log, quorum TLS, quorum
SASL (and a server with a wrong password refused); the heap sized from the host; the transaction
log's device check; the metrics provider's jar check. The whole role on systemd boxes: molecule."""

from __future__ import annotations

import os
import time
import zipfile

import pytest
import yaml
from kazoo.client import KazooClient

from tests.integration.test_zookeeper_role_tls import ROLE
from tests.support.playbook import run_cases, run_playbook
from tests.support.tls import make_tls_files
from tests.support.zkserver import ZooKeeperEnsemble, ZooKeeperServer

# Each member's own keys: the harness sets them (ports, data folder); the rest is the role's.
PER_SERVER = ("dataDir", "clientPort", "clientPortAddress", "tickTime")


def role_vars(tmp_path, **settings):
    play_vars = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    play_vars.update(yaml.safe_load((ROLE / "vars" / "main.yml").read_text()))
    play_vars.update(zookeeper_address="127.0.0.1", zookeeper_conf_dir=str(tmp_path / "conf"),
                     zookeeper_data_dir=str(tmp_path / "data"), **settings)
    return play_vars


def render(tmp_path, *jobs):
    """The role's templates, rendered with its defaults and vars in one playbook run (each a
    second or more): JOBS are (template, {setting: value}); returns the files' paths."""
    dests = [tmp_path / ("%s-%d" % (template[:-3], i)) for i, (template, _settings) in enumerate(jobs)]
    tasks = [{"name": "Render %d" % i, "vars": settings, "ansible.builtin.template": {
        "src": str(ROLE / "templates" / template), "dest": str(dest), "mode": "0600"}}
        for i, ((template, settings), dest) in enumerate(zip(jobs, dests))]
    run = run_playbook(tasks, play_vars=role_vars(tmp_path))
    assert run.rc == 0, run.output
    return dests


def zoo_cfg(path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")


def role_ensemble(tmp_path, cfg, size=3, jvm_props=None):
    cfg = {key: value for key, value in cfg.items() if key not in PER_SERVER}
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


def test_the_audit_log_records_a_create(tmp_path, role_files):
    audit = role_files["base"] / "audit" / "zookeeper_audit.log"
    cfg_file, log4j = role_files["files"]["audit-zoo.cfg"], role_files["files"]["audit-log4j"]
    cfg = zoo_cfg(cfg_file)
    assert cfg["audit.enable"] == "true"
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


def test_three_servers_form_a_quorum_over_tls(tmp_path, role_files):
    quorum_tls_files(role_files["base"] / "tls")  # where that zoo.cfg's zookeeper_conf_dir is
    ensemble = role_ensemble(tmp_path, zoo_cfg(role_files["files"]["tls-zoo.cfg"]))
    cfg = ensemble.servers[0].cfg
    assert cfg["sslQuorum"] == "true" and cfg["ssl.quorum.keyStore.location"].endswith("/tls/keystore.pem")
    assert "portUnification" not in cfg and "secureClientPort" not in cfg  # quorum TLS only
    try:
        ensemble.start(60)
        assert "Creating TLS-only quorum server socket" in ensemble.leader().log_path.read_text()
    finally:
        ensemble.close()


def test_port_unification_lets_tls_and_plain_servers_form_one_quorum(tmp_path, role_files):
    """The admin guide's rolling switch-over, its middle step: with portUnification on, a server
    already on sslQuorum and two still without it form one quorum."""
    quorum_tls_files(role_files["base"] / "unification")  # where those zoo.cfg's zookeeper_conf_dir is
    unified, switched = (zoo_cfg(role_files["files"][name]) for name in ("unified-zoo.cfg", "switched-zoo.cfg"))
    assert unified["portUnification"] == "true" and "sslQuorum" not in unified
    ensemble = role_ensemble(tmp_path, unified)
    ensemble.servers[2].cfg.update({key: value for key, value in switched.items() if key not in PER_SERVER})
    try:
        ensemble.start(60)
    finally:
        ensemble.close()


def test_quorum_sasl_forms_a_quorum_and_refuses_a_wrong_password(tmp_path, role_files):
    cfg_file, jaas, wrong = (role_files["files"][name] for name in ("sasl-zoo.cfg", "sasl-jaas", "sasl-wrong-jaas"))
    cfg = zoo_cfg(cfg_file)
    assert cfg["quorum.auth.enableSasl"] == "true" and cfg["quorum.auth.learnerRequireSasl"] == "true"
    assert 'password="s3cr\\"et";' in jaas.read_text()
    ensemble = role_ensemble(tmp_path, cfg, jvm_props={"java.security.auth.login.config": jaas})
    intruder = ensemble.servers[2]
    intruder.jvm_props["java.security.auth.login.config"] = wrong
    try:
        for server in ensemble.servers:
            server.launch()
        ensemble.wait_healthy(60, members=[0, 1])
        # SaslQuorumAuthServer on a member the intruder reached (its election or quorum port).
        members = ensemble.servers[:2]
        wait_for(lambda: any("Failed to authenticate using SASL" in m.log_path.read_text() for m in members), 60,
                 members[0].log_tail() + members[1].log_tail() + intruder.log_tail())
        assert intruder.mode() not in ("leader", "follower")
        intruder.stop()
        intruder.jvm_props["java.security.auth.login.config"] = jaas
        intruder.launch()
        ensemble.wait_healthy(60)
    finally:
        ensemble.close()


def test_the_heap_is_sized_from_the_host(role_files):
    cases = HEAP_CASES
    units = [role_files["files"]["heap-%d" % i] for i in range(len(cases))]
    assert [" -Xmx%s " % heap in unit.read_text() for unit, (_facts, heap) in zip(units, cases)] == [True] * len(cases)


def case_tasks(tasks_file, *cases):
    """One of the role's task files, once per case ({setting: value}): a block each, whose rescue
    notes the case's failure message."""
    tasks = []
    for i, settings in enumerate(cases):
        include = {"name": "Tasks %d" % i, "ansible.builtin.include_tasks": str(ROLE / "tasks" / tasks_file),
                   "vars": settings}
        passed = {"name": "Passed %d" % i, "ansible.builtin.debug": {"msg": "CASE %d: passed" % i}}
        failed = {"name": "Failed %d" % i,
                  "ansible.builtin.debug": {"msg": "CASE %d: failed: {{ ansible_failed_result.msg }}" % i}}
        tasks.append({"name": "Case %d" % i, "block": [include, passed], "rescue": [failed]})
    return tasks


def run_tasks_case(tmp_path, tasks_file, *cases):
    """case_tasks as one case of tests.support.playbook.run_cases (read back by case_failures)."""
    return {"vars": role_vars(tmp_path), "tasks": case_tasks(tasks_file, *cases)}


def case_failures(ran, count):
    """Each case's failure message ('' when it passed), from one host's records of run_cases."""
    out = []
    for i in range(count):
        done = [r for r in ran.records if r["task"] in ("Passed %d" % i, "Failed %d" % i)]
        assert len(done) == 1, (i, ran.records)
        assert done[0]["status"] == "ok", done[0]  # the rescue's own debug task ran
        out.append(done[0]["result"]["msg"].partition("failed: ")[2])
    return out


SASL = dict(zookeeper_quorum_sasl=True, zookeeper_quorum_sasl_password="s3cr\"et")
HEAP_CASES = [({}, "512m"), ({"ansible_memtotal_mb": 512}, "256m"), ({"ansible_memtotal_mb": 16384}, "4096m"),
              ({"ansible_memtotal_mb": 131072}, "8192m"),
              ({"ansible_memtotal_mb": 4096, "zookeeper_heap_size": "3g"}, "3g")]  # explicit: as set
METRICS = {"zookeeper_metrics_provider_port": 7000}
TLS_SETTINGS = dict(zookeeper_tls_cert="x", zookeeper_tls_key="x", zookeeper_tls_ca="x")


def render_jobs(base):
    """{name: (template, settings)}: every file this module's tests need from the role's templates.
    The quorum TLS files' key stores are under their test's own zookeeper_conf_dir (base/NAME/conf)."""
    audit = dict(zookeeper_audit=True, zookeeper_audit_log=str(base / "audit" / "zookeeper_audit.log"))
    unified = dict(TLS_SETTINGS, zookeeper_quorum_tls_port_unification=True,
                   zookeeper_conf_dir=str(base / "unification" / "conf"))
    jobs = {"audit-zoo.cfg": ("zoo.cfg.j2", audit), "audit-log4j": ("log4j.properties.j2", audit),
            "tls-zoo.cfg": ("zoo.cfg.j2", dict(TLS_SETTINGS, zookeeper_quorum_tls=True,
                                               zookeeper_conf_dir=str(base / "tls" / "conf"))),
            "unified-zoo.cfg": ("zoo.cfg.j2", unified),
            "switched-zoo.cfg": ("zoo.cfg.j2", dict(unified, zookeeper_quorum_tls=True)),
            "sasl-zoo.cfg": ("zoo.cfg.j2", SASL), "sasl-jaas": ("jaas.conf.j2", SASL),
            "sasl-wrong-jaas": ("jaas.conf.j2", dict(SASL, zookeeper_quorum_sasl_password="wrong")),
            "metrics-zoo.cfg": ("zoo.cfg.j2", METRICS), "plain-zoo.cfg": ("zoo.cfg.j2", {})}
    for i, (facts, _heap) in enumerate(HEAP_CASES):
        jobs["heap-%d" % i] = ("zookeeper.service.j2", facts)
    return jobs


@pytest.fixture(scope="module")
def role_files(tmp_path_factory):
    """This module's renders and task-file cases in ONE ansible-playbook run (each start costs
    seconds of CPU; tests.support.playbook.run_cases): the templates, each with its settings as task
    vars, on one host; the storage check's and the production checks' cases each on a host of its
    own. Returns {name: path} of the files, and the two cases' failures and the run's output."""
    base = tmp_path_factory.mktemp("zkprod")
    (base / "audit").mkdir()
    (base / "data").mkdir()
    (base / "txlog").mkdir()
    jar = base / "zookeeper-prometheus-metrics.jar"
    with zipfile.ZipFile(jar, "w") as out:
        out.writestr("org/apache/zookeeper/metrics/prometheus/PrometheusMetricsProvider.class", b"")
    other = "/dev/shm" if os.stat("/dev/shm").st_dev != os.stat(base).st_dev else None
    txlog, require = str(base / "txlog"), {"zookeeper_data_log_dir_require_own_device": True}
    storage = ({"zookeeper_data_log_dir": txlog}, {"zookeeper_data_log_dir": txlog, **require}, require,
               {"zookeeper_data_log_dir": other or txlog, **require})
    metrics = (METRICS, dict(METRICS, zookeeper_classpath=["/usr/share/java/zookeeper.jar", str(jar)]))
    jobs = render_jobs(base)
    files = {name: base / "files" / name for name in jobs}
    (base / "files").mkdir()
    renders = [{"name": "Render " + name, "vars": settings, "ansible.builtin.template": {
        "src": str(ROLE / "templates" / template), "dest": str(files[name]), "mode": "0600"}}
        for name, (template, settings) in jobs.items()]
    run = run_cases({"renders": {"vars": role_vars(base), "tasks": renders},
                     "storage": run_tasks_case(base, "storage_check.yml", *storage),
                     "metrics": run_tasks_case(base, "production_checks.yml", *metrics)})
    rendered = run.host("renders")
    assert rendered.records and rendered.failure() is None, (rendered.failure(), run.output[-3000:])
    return {"files": files, "base": base, "txlog": txlog, "other": other, "output": run.output,
            "storage": case_failures(run.host("storage"), len(storage)),
            "metrics": case_failures(run.host("metrics"), len(metrics))}


def test_the_transaction_log_on_the_data_device_warns_or_fails(role_files):
    txlog, other, failures, output = (role_files[key] for key in ("txlog", "other", "storage", "output"))
    assert "WARNING zookeeper: the transaction log (%s) is on the same device" % txlog in output
    assert failures[0] == "" and "same device as dataDir" in failures[1] and "dataLogDir unset" in failures[2]
    assert other is None or failures[3] == "", output  # its own device: no complaint


def test_the_metrics_provider_needs_its_jars(role_files):
    failures, output = role_files["metrics"], role_files["output"]
    assert "PrometheusMetricsProvider" in failures[0] and "zookeeper_classpath" in failures[0], output
    assert failures[1] == "", output
    cfg, off = zoo_cfg(role_files["files"]["metrics-zoo.cfg"]), zoo_cfg(role_files["files"]["plain-zoo.cfg"])
    assert cfg["metricsProvider.className"] == "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
    assert cfg["metricsProvider.httpPort"] == "7000" and cfg["metricsProvider.httpHost"] == "127.0.0.1"
    assert "metricsProvider.className" not in off
