"""Issue 16 metrics: real runners against the real ZooKeeper, their --metrics-listen scraped over
HTTP and checked against what happened (docs/operations.md "Metrics")."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.support.runner import REPO, Zkherd
from tests.support.scrape import free_port, scrape, value
from tests.support.zkutil import wait_for


def runner(hosts, port, tmp_path, name, *args):
    return Zkherd(["run", "--zk", hosts, "--metrics-listen", "127.0.0.1:%d" % port, "--state-dir", "",
                   *args], tmp_path / ("%s.log" % name))


def wait_metric(port, name, wanted, **labels):
    """Wait until the metric has the value *wanted* (a value, or a test on it); returns the scrape."""
    test = wanted if callable(wanted) else (lambda v: v == wanted)
    found = {}

    def check():
        found.update(scrape(port))
        return value(found, name, **labels) is not None and test(value(found, name, **labels))
    wait_for(check, 20, message=lambda: "%s%s = %r" % (name, labels, value(found, name, **labels)))
    return found


def test_lock_holder_waiter_and_a_handover(zk_server, zk_base, tmp_path):
    lock = zk_base + "/l"
    p1, p2 = free_port(), free_port()
    # a short session: the handover after the SIGKILL below waits for its expiry on the server
    holder = runner(zk_server.hosts, p1, tmp_path, "holder", "--session-timeout", "3", "--lock", lock, "--",
                    "sleep", "1000")
    holder.wait_log("state queued -> running")
    waiter = runner(zk_server.hosts, p2, tmp_path, "waiter", "--lock", lock, "--", "sleep", "1000")
    waiter.wait_log("queued for lock")
    held = wait_metric(p1, "zkherd_lock_held", 1)
    assert value(held, "zkherd_run_state", state="running") == 1
    assert value(held, "zkherd_run_state", state="queued") == 0
    assert value(held, "zkherd_child_running") == 1
    assert value(held, "zkherd_child_starts_total", reason="start") == 1
    assert value(held, "zkherd_lock_acquisitions_total") == 1
    assert value(held, "zkherd_session_connected") == 1
    assert 0 <= value(held, "zkherd_session_last_heard_age_seconds") < 10
    assert any(k[0] == "zkherd_build_info" and ("command", "run") in k[1] for k in held)
    waiting = wait_metric(p2, "zkherd_lock_queue_place", 1)
    assert (value(waiting, "zkherd_lock_held"), value(waiting, "zkherd_lock_queued")) == (0, 1)
    assert value(waiting, "zkherd_lock_acquisitions_total") == 0
    holder.kill()  # SIGKILL: the session goes, the lock comes to the waiter
    after = wait_metric(p2, "zkherd_lock_acquisitions_total", 1)
    assert value(after, "zkherd_lock_held") == 1 and value(after, "zkherd_lock_queue_place") == 0
    waiter.signal(signal.SIGTERM)
    assert waiter.wait() == 143


def test_config_installs_and_rejections(zk_server, zk, zk_base, tmp_path):
    node = zk_base + "/conf"
    zk.create(node, b"one", makepath=True)
    port = free_port()
    r = runner(zk_server.hosts, port, tmp_path, "r", "--mirror", "%s=%s" % (tmp_path / "app.conf", node),
               "--check-cmd", '! grep -q bad "$ZKHERD_STAGED_FILE"', "--on-change", "none", "--", "sleep", "1000")
    first = wait_metric(port, "zkherd_config_installs_total", 1)
    assert value(first, "zkherd_config_version") == zk.exists(node).mzxid
    zk.set(node, b"two")
    second = wait_metric(port, "zkherd_config_installs_total", 2)
    assert value(second, "zkherd_config_version") == zk.exists(node).mzxid
    zk.set(node, b"bad")
    rejected = wait_metric(port, "zkherd_config_rejections_total", 1, reason="rejected")
    assert value(rejected, "zkherd_config_installs_total") == 2
    r.signal(signal.SIGTERM)
    r.wait()


def test_render_counts_its_installs_and_rejections(zk_server, zk, zk_base, tmp_path):
    """`zkherd render` installs through the same file set as `run`: counted in the same place."""
    node = zk_base + "/motd"
    zk.create(node, b"one", makepath=True)
    (tmp_path / "motd.j2").write_text('{{ znode("%s") }}\n' % node)
    port = free_port()
    template = "%s=%s" % (tmp_path / "motd.j2", tmp_path / "motd")
    r = Zkherd(["render", "--zk", zk_server.hosts, "--metrics-listen", "127.0.0.1:%d" % port, "--state-dir", "",
                "--check-cmd", '! grep -q bad "$ZKHERD_STAGED_FILE"', template], tmp_path / "render.log")
    first = wait_metric(port, "zkherd_config_installs_total", 1)
    assert value(first, "zkherd_config_version") == zk.exists(node).mzxid
    zk.set(node, b"bad")
    rejected = wait_metric(port, "zkherd_config_rejections_total", 1, reason="rejected")
    assert value(rejected, "zkherd_config_installs_total") == 1 and (tmp_path / "motd").read_text() == "one\n"
    r.signal(signal.SIGTERM)
    r.wait()


def test_health_check_failures(zk_server, tmp_path):
    port = free_port()
    r = runner(zk_server.hosts, port, tmp_path, "r", "--health", "exit 1", "--health-delay", "0",
               "--health-interval", "0.2", "--health-fall", "2", "--", "sleep", "1000")
    found = wait_metric(port, "zkherd_health_checks_total", lambda v: v >= 2, result="fail")
    assert value(found, "zkherd_health_healthy") == 0
    assert value(found, "zkherd_health_check_duration_seconds_count") >= 2
    assert value(found, "zkherd_run_state", state="starting") == 1
    r.signal(signal.SIGTERM)
    r.wait()


def test_a_busy_listen_address_is_a_usage_error(zk_server, tmp_path):
    port = free_port()
    first = runner(zk_server.hosts, port, tmp_path, "first", "--", "sleep", "1000")
    wait_metric(port, "zkherd_child_running", 1)
    second = subprocess.run([sys.executable, "-m", "zkherd", "run", "--zk", zk_server.hosts, "--metrics-listen",
                             "127.0.0.1:%d" % port, "--", "true"], cwd=REPO, capture_output=True, text=True,
                            timeout=60, check=False)
    assert second.returncode == 64 and "--metrics-listen" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    first.signal(signal.SIGTERM)
    first.wait()
