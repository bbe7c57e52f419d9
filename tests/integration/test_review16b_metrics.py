"""Review 16b (metrics and state files): attacks on the fixes of the first metrics review."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from tests.integration.test_metrics import runner, wait_metric
from tests.support.runner import REPO
from tests.support.scrape import free_port, parse, scrape, value
from tests.support.zkutil import wait_for


def cron(hosts, election, metrics, tmp_path, *job, popen=False, extra=()):
    args = [sys.executable, "-m", "zkherd", "cron", "--zk", hosts, "--election", election, "--id", "h0",
            "--timeout", "10", "--name", "job", "--tick", "3600", "--metrics-file", str(metrics),
            "--state-dir", "", *extra, "--", *job]
    env = dict(os.environ, ZKHERD_RUN_DIR=str(tmp_path))
    if popen:
        return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60, check=False, env=env)


def test_a_busy_cron_run_is_not_lost_by_the_run_it_overlapped(zk_server, zk, zk_base, tmp_path):
    """Two cron runs of one job overlap (the second finds the local flock held: "busy"). Each read
    the metrics file at its start: the long one writes its own counters at its end and the busy
    count the short one wrote is gone - zkherd_cron_runs_total{outcome="busy"} goes 1 -> absent (a
    counter going backwards, seen by Prometheus as a reset)."""
    election, metrics = zk_base + "/cron", tmp_path / "cron.prom"
    zk.create(election + "/member-", b"h0", ephemeral=True, sequence=True, makepath=True)
    marker = tmp_path / "started"
    first = cron(zk_server.hosts, election, metrics, tmp_path, "sh", "-c", "touch %s; sleep 4" % marker, popen=True)
    wait_for(marker.exists, 20, message="the first run's job started")
    second = cron(zk_server.hosts, election, metrics, tmp_path, "true")
    assert second.returncode == 75, second.stderr
    assert value(parse(metrics.read_text()), "zkherd_cron_runs_total", outcome="busy") == 1
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    samples = parse(metrics.read_text())
    assert value(samples, "zkherd_cron_runs_total", outcome="ok") == 1
    assert value(samples, "zkherd_cron_runs_total", outcome="busy") == 1, "the busy run's count was lost"


def test_a_run_that_waited_for_the_local_lock_keeps_the_count_of_the_run_before(zk_server, zk, zk_base, tmp_path):
    """--if-running wait: the second run reads the metrics file at its start (before it waits on
    the flock), so what the first run wrote at its end is overwritten by the second's stale copy:
    cron_runs_total{outcome="ok"} 1 (first) -> absent; the second (same tick) adds skipped=1 to zero."""
    election, metrics = zk_base + "/cron", tmp_path / "cron.prom"
    zk.create(election + "/member-", b"h0", ephemeral=True, sequence=True, makepath=True)
    marker = tmp_path / "started"
    first = cron(zk_server.hosts, election, metrics, tmp_path, "sh", "-c", "touch %s; sleep 3" % marker, popen=True)
    wait_for(marker.exists, 20, message="the first run's job started")
    second = cron(zk_server.hosts, election, metrics, tmp_path, "true", popen=True, extra=("--if-running", "wait"))
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err  # it wrote ok=1 at its end (the second may already have overwritten it)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    samples = parse(metrics.read_text())
    assert value(samples, "zkherd_cron_runs_total", outcome="skipped") == 1
    assert value(samples, "zkherd_cron_runs_total", outcome="ok") == 1, "the first run's count was lost"


def test_eight_slow_clients_keep_the_metrics_listener_from_everyone_else(zk_server, zk_base, tmp_path):
    """The idle timeout is per recv(), not per request: a client that sends one byte of its request
    line every 2 s is never silent for 5 s and keeps its slot for as long as it likes (a request
    line may be 64 KiB). Eight of them hold all MAX_CLIENTS slots: every scrape is closed at once."""
    port = free_port()
    r = runner(zk_server.hosts, port, tmp_path, "slow", "--lock", zk_base + "/l", "--", "sleep", "1000")
    try:
        wait_metric(port, "zkherd_lock_held", 1)
        stop = threading.Event()
        socks = []
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"G")
            socks.append(sock)

        def trickle():
            while not stop.wait(2.0):
                for sock in socks:
                    try:
                        sock.sendall(b"E")
                    except OSError:
                        pass
        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        try:
            time.sleep(8.0)  # past the 5 s idle timeout
            got = [bool(scrape(port)) for _ in range(5)]
        finally:
            stop.set()
            thread.join()
            for sock in socks:
                sock.close()
        assert any(got), "8 slow clients (one byte every 2 s) shut every scrape out after the 5 s timeout"
    finally:
        r.signal(signal.SIGTERM)
        r.wait()
