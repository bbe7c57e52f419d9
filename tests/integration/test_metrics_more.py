"""Issue 16 metrics, continued: a fence after the connection is cut (tests/support/faultproxy.py),
cron runs counted across runs through the metrics file, farm export writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from tests.integration.test_metrics import runner, wait_metric
from tests.support.runner import REPO, Zkherd
from tests.support.scrape import free_port, parse, value
from tests.support.zkutil import wait_for


def test_a_fence_and_an_expiry_are_counted_when_the_connection_is_cut(zk_server, zk, zk_base, fault_proxy, tmp_path):
    proxy, port, lock = fault_proxy(), free_port(), zk_base + "/l"
    r = runner(proxy.hosts, port, tmp_path, "r", "--session-timeout", "2", "--lock", lock, "--", "sleep", "1000")
    wait_metric(port, "zkherd_lock_held", 1)
    proxy.blackhole()
    wait_metric(port, "zkherd_fences_total", 1)
    wait_metric(port, "zkherd_session_connected", 0)
    wait_for(lambda: zk.get_children(lock) == [], 20)  # the server expired the session: its nodes are gone
    proxy.heal()
    found = wait_metric(port, "zkherd_child_starts_total", 1, reason="restart")
    assert value(found, "zkherd_session_expirations_total") == 1
    assert value(found, "zkherd_lock_acquisitions_total") == 2 and value(found, "zkherd_lock_releases_total") == 1
    r.signal(signal.SIGTERM)
    r.wait()


def cron(hosts, election, metrics, tmp_path):
    return subprocess.run([sys.executable, "-m", "zkherd", "cron", "--zk", hosts, "--election", election, "--id", "h0",
                           "--timeout", "10", "--name", "job", "--tick", "3600", "--metrics-file", str(metrics),
                           "--state-dir", "", "--", "true"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
                          env=dict(os.environ, ZKHERD_RUN_DIR=str(tmp_path)))


def test_cron_runs_are_counted_across_runs_in_the_metrics_file(zk_server, zk, zk_base, tmp_path):
    election, metrics = zk_base + "/cron", tmp_path / "cron.prom"
    zk.create(election + "/member-", b"h0", ephemeral=True, sequence=True, makepath=True)
    first = cron(zk_server.hosts, election, metrics, tmp_path)
    assert first.returncode == 0, first.stderr
    assert value(parse(metrics.read_text()), "zkherd_cron_runs_total", outcome="ok") == 1
    second = cron(zk_server.hosts, election, metrics, tmp_path)  # the same tick: it already ran
    assert second.returncode == 0, second.stderr
    samples = parse(metrics.read_text())
    assert value(samples, "zkherd_cron_runs_total", outcome="ok") == 1
    assert value(samples, "zkherd_cron_runs_total", outcome="skipped") == 1
    assert oct(metrics.stat().st_mode & 0o777) == "0o644"
    metrics.write_text("this is { not metrics\n")  # a bad file is ignored with a warning, never a crash
    third = cron(zk_server.hosts, election, metrics, tmp_path)
    assert third.returncode == 0 and "ignoring the earlier metrics file" in third.stderr, third.stderr
    assert "Traceback" not in third.stderr
    assert value(parse(metrics.read_text()), "zkherd_cron_runs_total", outcome="skipped") == 1


def test_farm_export_writes_are_counted(zk_server, zk, zk_base, tmp_path):
    farm, dest, metrics = zk_base + "/web", tmp_path / "web.json", tmp_path / "export.prom"
    zk.create(farm + "/10.0.0.1", json.dumps({"enabled": "1"}).encode(), makepath=True)
    export = Zkherd(["farm", "export", farm, str(dest), "--zk", zk_server.hosts, "--metrics-file", str(metrics),
                     "--state-dir", ""], tmp_path / "e.log")
    export.wait_log("export written")

    def writes():
        return value(parse(metrics.read_text()), "zkherd_farm_export_writes_total", result="written") \
            if metrics.exists() else None
    wait_for(lambda: writes() == 1, 10, message=lambda: "writes: %r" % writes())
    zk.create(farm + "/10.0.0.2", json.dumps({"enabled": "1"}).encode())
    wait_for(lambda: writes() == 2, 10, message=lambda: "writes: %r" % writes())
    export.signal(signal.SIGTERM)
    export.wait()
    assert any(k[0] == "zkherd_build_info" and ("command", "farm export") in k[1] for k in parse(metrics.read_text()))
