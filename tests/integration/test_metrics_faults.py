"""Metrics, state files and `status --local` under hostile files, signals and faults (the review of
issue 16; docs/security.md "The metrics file and the state folder")."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

from kazoo.exceptions import NoNodeError
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_metrics import runner, wait_metric
from tests.support.runner import REPO, Zkherd
from tests.support.scrape import free_port, parse, value
from tests.support.zkutil import wait_for

sys.path.insert(0, os.path.join(REPO, "runner"))


def local_status(folder, as_json=False):
    args = [sys.executable, "-m", "zkherd", "status", "--local", "--state-dir", str(folder)]
    args += ["--json"] if as_json else []
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=30, check=False)


def test_final_metrics_file_says_the_lock_is_released_after_sigterm(zk_server, zk_base, tmp_path):
    """A clean exit (SIGTERM) gives up the lock: the last metrics file (written by close()) must not
    say lock_held 1 nor miss the release."""
    prom = tmp_path / "m.prom"
    r = Zkherd(["run", "--zk", zk_server.hosts, "--metrics-file", str(prom), "--state-dir", "",
                "--lock", zk_base + "/l", "--", "sleep", "1000"], tmp_path / "r.log")
    r.wait_log("state queued -> running")
    wait_for(lambda: prom.exists() and value(parse(prom.read_text()), "zkherd_lock_held") == 1, 20)
    r.signal(signal.SIGTERM)
    assert r.wait() == 143
    samples = parse(prom.read_text())
    assert value(samples, "zkherd_child_running") == 0
    assert value(samples, "zkherd_session_connected") == 0
    assert value(samples, "zkherd_lock_held") == 0, "the final metrics file says the lock is still held"
    assert value(samples, "zkherd_lock_releases_total") == 1


def test_a_fifo_at_the_metrics_file_path_does_not_hang_the_command(zk_server, zk, zk_base, tmp_path):
    """carry_over() open()s the earlier metrics file without O_NONBLOCK: a FIFO there (made by
    whoever can write the textfile folder) blocks the command before it starts."""
    prom = tmp_path / "cron.prom"
    os.mkfifo(prom)
    election = zk_base + "/cron"
    zk.create(election + "/member-", b"h0", ephemeral=True, sequence=True, makepath=True)
    try:
        result = subprocess.run([sys.executable, "-m", "zkherd", "cron", "--zk", zk_server.hosts, "--election",
                                 election, "--id", "h0", "--timeout", "10", "--name", "job", "--tick", "3600",
                                 "--metrics-file", str(prom), "--state-dir", "", "--", "true"],
                                cwd=REPO, capture_output=True, text=True, timeout=20, check=False,
                                env=dict(os.environ, ZKHERD_RUN_DIR=str(tmp_path)))
    except subprocess.TimeoutExpired:
        raise AssertionError("zkherd cron hung on a FIFO at --metrics-file") from None
    assert "Traceback" not in result.stderr, result.stderr


def test_carry_over_does_not_leak_a_foreign_file_into_the_log(tmp_path):
    """A symlink at the metrics path to a secret file (root reads it): the warning must not quote it."""
    from zkherd.telemetry.prom import Metrics

    secret = tmp_path / "shadow"
    secret.write_text("root:$6$SECRETHASH:19000:0:99999:7:::\n")
    prom = tmp_path / "m.prom"
    os.symlink(secret, prom)
    said = []
    Metrics().carry_over(str(prom), said.append)
    assert not any("SECRETHASH" in s for s in said), said


def test_carry_over_of_a_nan_counter_does_not_poison_it(tmp_path):
    from zkherd.telemetry.prom import Metrics

    prom = tmp_path / "m.prom"
    prom.write_text('# TYPE zkherd_cron_runs_total counter\nzkherd_cron_runs_total{outcome="ok"} NaN\n')
    m = Metrics()
    m.carry_over(str(prom), lambda *_: None)
    m.cron_runs.labels("ok").inc()
    got = m.cron_runs.labels("ok")._value.get()  # noqa: SLF001
    assert not math.isnan(got), "the ok counter is NaN forever"


def test_carry_over_does_not_import_foreign_label_values(tmp_path):
    """A hostile earlier file makes up outcome labels: they are carried over for ever (cardinality)."""
    from zkherd.telemetry.prom import Metrics

    prom = tmp_path / "m.prom"
    prom.write_text("# TYPE zkherd_cron_runs_total counter\n" + "".join(
        'zkherd_cron_runs_total{outcome="x%d"} 1.0\n' % i for i in range(2000)))
    m = Metrics()
    m.carry_over(str(prom), lambda *_: None)
    prom2 = tmp_path / "out.prom"
    m.write_file(str(prom2))
    outcomes = {s.labels["outcome"] for f in text_string_to_metric_families(prom2.read_text())
                if f.name == "zkherd_cron_runs" for s in f.samples}
    assert len(outcomes) < 50, "%d made-up outcomes carried over" % len(outcomes)


def test_metrics_file_chmod_does_not_follow_a_symlink_swapped_in(tmp_path):
    """write_file(): rename, then os.chmod(path) - which follows a symlink. Whoever can write the
    folder swaps a symlink in between: root chmods the target 0644 (e.g. /etc/shadow)."""
    from zkherd.telemetry.prom import Metrics

    victim = tmp_path / "victim"
    victim.write_text("secret")
    os.chmod(victim, 0o600)
    prom = str(tmp_path / "m.prom")
    stop = threading.Event()

    def attacker():
        link = str(tmp_path / "link")
        while not stop.is_set():
            try:
                os.symlink(str(victim), link)
                os.rename(link, prom)
            except OSError:
                pass
    t = threading.Thread(target=attacker, daemon=True)
    t.start()
    m = Metrics()
    deadline = time.monotonic() + 3  # many rounds of the race
    try:
        while time.monotonic() < deadline and stat.S_IMODE(os.stat(victim).st_mode) == 0o600:
            try:
                m.write_file(prom)
            except OSError:
                pass
    finally:
        stop.set()
        t.join()
    assert stat.S_IMODE(os.stat(victim).st_mode) == 0o600, "the symlink's target was chmodded 0644"


def test_metrics_file_tmp_is_not_opened_through_a_planted_symlink(tmp_path):
    """prometheus_client's write_to_textfile opens PATH.PID.TID with open(..., 'wb') (follows
    symlinks, truncates). A planted link with the right name makes root truncate and write its target."""
    from zkherd.telemetry.prom import Metrics

    victim = tmp_path / "victim"
    victim.write_text("precious")
    prom = str(tmp_path / "m.prom")
    os.symlink(str(victim), "%s.%d.%d" % (prom, os.getpid(), threading.current_thread().ident))
    try:
        Metrics().write_file(prom)
    except OSError:
        pass
    assert victim.read_text() == "precious", "the planted symlink's target was overwritten"


def test_many_idle_connections_to_the_metrics_port_are_bounded(zk_server, tmp_path):
    """--metrics-listen (all addresses by default) starts a thread per connection with no timeout:
    idle connections grow the runner's threads without bound."""
    port = free_port()
    r = runner(zk_server.hosts, port, tmp_path, "r", "--", "sleep", "1000")
    wait_metric(port, "zkherd_child_running", 1)
    pid = r.proc.pid if hasattr(r, "proc") else r.pid
    before = len(os.listdir("/proc/%d/task" % pid))
    socks = []
    try:
        for _i in range(300):
            socks.append(socket.create_connection(("127.0.0.1", port)))
        time.sleep(2)
        after = len(os.listdir("/proc/%d/task" % pid))
    finally:
        for s in socks:
            s.close()
        r.signal(signal.SIGTERM)
        r.wait()
    assert after - before < 100, "threads: %d before, %d with 300 idle connections" % (before, after)


def _write_state(folder, report):
    folder.mkdir(mode=0o755, exist_ok=True)
    os.chmod(folder, 0o755)
    path = folder / ("zkherd-%d.json" % report.get("pid", 1))
    path.write_text(report if isinstance(report, str) else json.dumps(report))
    os.chmod(path, 0o644)
    return path


def test_status_local_deep_json_is_no_traceback(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    os.chmod(folder, 0o755)
    p = folder / "zkherd-1.json"
    p.write_text("[" * 200000)
    os.chmod(p, 0o644)
    result = local_status(folder)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 66


def test_status_local_infinite_child_since_is_no_traceback(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    os.chmod(folder, 0o755)
    p = folder / ("zkherd-%d.json" % os.getpid())
    p.write_text('{"pid": %d, "updated": %f, "command": "run", "child": {"pid": 5, "since": -Infinity}}'
                 % (os.getpid(), time.time()))
    os.chmod(p, 0o644)
    result = local_status(folder)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 0


def test_status_local_huge_pid_is_no_traceback(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    os.chmod(folder, 0o755)
    p = folder / "zkherd-x.json"
    p.write_text('{"pid": %d, "updated": %f}' % (10 ** 40, time.time()))
    os.chmod(p, 0o644)
    result = local_status(folder)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "zkherd", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)


def test_drain_of_holder_and_of_waiter_is_told_by_the_metrics(zk_server, zk_base, tmp_path):
    hosts = zk_server.hosts + zk_base
    pa, pb = free_port(), free_port()
    a = runner(hosts, pa, tmp_path, "a", "--id", "a", "--lock", "/lock", "--", "sleep", "1000")
    wait_metric(pa, "zkherd_lock_held", 1)
    b = runner(hosts, pb, tmp_path, "b", "--id", "b", "--lock", "/lock", "--", "sleep", "1000")
    wait_metric(pb, "zkherd_lock_queued", 1)
    code = _cli("--zk", hosts, "drain", "/lock", "--id", "b", "--timeout", "10")
    assert code.returncode == 0, code.stderr
    got = wait_metric(pb, "zkherd_run_state", 1, state="drained")
    time.sleep(1)
    got = wait_metric(pb, "zkherd_run_state", 1, state="drained")
    assert (value(got, "zkherd_lock_queued"), value(got, "zkherd_lock_queue_place")) == (0, 0), \
        "a drained waiter still reported queued"
    code = _cli("--zk", hosts, "drain", "/lock", "--id", "a", "--timeout", "10")
    assert code.returncode == 0, code.stderr
    got = wait_metric(pa, "zkherd_run_state", 1, state="drained")
    time.sleep(1)
    from tests.support.scrape import scrape
    got = scrape(pa)
    assert value(got, "zkherd_lock_held") == 0, "a drained holder still reported holding"
    assert value(got, "zkherd_lock_releases_total") == 1
    assert _cli("--zk", hosts, "undrain", "/lock", "--id", "a").returncode == 0
    assert _cli("--zk", hosts, "undrain", "/lock", "--id", "b").returncode == 0
    got = wait_metric(pa, "zkherd_lock_acquisitions_total", 2)
    assert value(got, "zkherd_lock_releases_total") == 1
    for r in (a, b):
        r.signal(signal.SIGTERM)
        r.wait()


def test_a_deleted_lock_node_is_a_release_and_a_new_acquisition(zk_server, zk, zk_base, tmp_path):
    lock, port = zk_base + "/l", free_port()
    r = runner(zk_server.hosts, port, tmp_path, "r", "--lock", lock, "--", "sleep", "1000")
    wait_metric(port, "zkherd_lock_held", 1)
    wait_metric(port, "zkherd_lock_acquisitions_total", 1)
    for child in zk.get_children(lock):
        try:
            zk.delete(lock + "/" + child)
        except NoNodeError:
            pass  # the runner, finding its first node gone, already removed its others
    try:
        got = wait_metric(port, "zkherd_lock_acquisitions_total", 2)
    except AssertionError as exc:
        raise AssertionError("%s\nrunner log:\n%s" % (exc, r.log()[-3000:])) from None
    assert value(got, "zkherd_lock_releases_total") == 1 and value(got, "zkherd_lock_held") == 1
    r.signal(signal.SIGTERM)
    r.wait()


def test_state_file_folder_through_a_symlink_or_foreign_folder_is_refused(tmp_path):
    """StateFile writes into --state-dir without the checks cronlock makes (a symlink, not ours,
    writable by others): root writes and later unlinks names where the link leads."""
    from zkherd.telemetry.statefile import StateFile

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "statedir"
    os.symlink(elsewhere, link)

    class Log:
        said = []

        def warning(self, *a, **k):
            self.said.append((a, k))
    StateFile(str(link), Log()).write({"pid": os.getpid()})
    assert os.listdir(elsewhere) == [], "state file written through a symlinked --state-dir"


def test_run_does_not_carry_counters_over_from_an_old_file(zk_server, zk_base, tmp_path):
    """docs/operations.md: a *cron* run reads its counters back; setup() does it for every command."""
    prom = tmp_path / "m.prom"
    prom.write_text("# TYPE zkherd_lock_acquisitions_total counter\nzkherd_lock_acquisitions_total 41.0\n"
                    "# TYPE zkherd_fences_total counter\nzkherd_fences_total 7.0\n")
    r = Zkherd(["run", "--zk", zk_server.hosts, "--metrics-file", str(prom), "--state-dir", "",
                "--lock", zk_base + "/l", "--", "sleep", "1000"], tmp_path / "r.log")
    r.wait_log("state queued -> running")
    wait_for(lambda: value(parse(prom.read_text()), "zkherd_lock_held") == 1, 20)
    samples = parse(prom.read_text())
    r.signal(signal.SIGTERM)
    r.wait()
    assert value(samples, "zkherd_fences_total") == 0, "a fresh `zkherd run` reports 7 fences it never made"
    assert value(samples, "zkherd_lock_acquisitions_total") == 1


def test_metrics_listen_values(zk_server, tmp_path):
    """IPv6, odd and bad values: exit 64 or serving (its child started: past the option checks and
    the listen), never a traceback. All at once; each waited for until it exits or serves."""
    outcomes, procs = {}, {}
    for n, spec in enumerate(("[::1]:%d" % free_port(), "::1:%d" % free_port(), "\u00b2", "localhost:99999", ":0",
                              "a b:1", "nonexistent.invalid:%d" % free_port(), "1.2.3.4:%d" % free_port())):
        err = tmp_path / ("err%d" % n)
        with err.open("w") as sink:
            procs[spec] = (subprocess.Popen([sys.executable, "-m", "zkherd", "run", "--zk", zk_server.hosts,
                                             "--state-dir", "", "--metrics-listen", spec, "--", "sleep", "1000"],
                                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=sink, text=True), err)

    def settled():
        return all(p.poll() is not None or "started child" in err.read_text() for p, err in procs.values())

    wait_for(settled, 60, interval=0.1)
    for spec, (p, err) in procs.items():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(20)
            outcomes[spec] = ("serving", err.read_text().strip()[-300:])
        else:
            outcomes[spec] = (p.returncode, err.read_text().strip()[-300:])
    print(json.dumps(outcomes, indent=1))
    assert all("Traceback" not in e for _c, e in outcomes.values()), outcomes
    assert all(c in (64, "serving") for c, _e in outcomes.values()), outcomes
    assert outcomes["[::1]:%s" % list(outcomes)[0].rsplit(":", 1)[1]][0] == "serving", outcomes


def test_one_fence_of_a_stubborn_child_is_counted_once(zk_server, zk, zk_base, fault_proxy, tmp_path):
    """cycle.fenced() increments fences on every call: the fence thread's "stop", its "kill" (the
    child ignored SIGTERM) and the session's LOST each call it while the child still runs."""
    proxy, port, lock = fault_proxy(), free_port(), zk_base + "/l"
    stubborn = ["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"]
    r = runner(proxy.hosts, port, tmp_path, "r", "--session-timeout", "2", "--lock", lock, "--", *stubborn)
    wait_metric(port, "zkherd_lock_held", 1)
    proxy.blackhole()
    wait_metric(port, "zkherd_child_running", 0)
    wait_for(lambda: zk.get_children(lock) == [], 20)
    proxy.heal()
    found = wait_metric(port, "zkherd_child_starts_total", 1, reason="restart")
    r.signal(signal.SIGKILL)
    r.wait()
    assert value(found, "zkherd_fences_total") == 1, "one fence counted %r times" % value(found, "zkherd_fences_total")


def test_cron_runs_count_no_session_expirations_and_keep_gauges_sane(zk_server, zk, zk_base, tmp_path):
    from tests.integration.test_metrics_more import cron

    election, metrics = zk_base + "/cron", tmp_path / "cron.prom"
    zk.create(election + "/member-", b"h0", ephemeral=True, sequence=True, makepath=True)
    for _i in range(3):
        result = cron(zk_server.hosts, election, metrics, tmp_path)
        assert result.returncode == 0, result.stderr
    samples = parse(metrics.read_text())
    assert value(samples, "zkherd_session_expirations_total") == 0
    assert value(samples, "zkherd_session_connected") == 0
    assert value(samples, "zkherd_cron_runs_total", outcome="ok") == 1
    assert value(samples, "zkherd_cron_runs_total", outcome="skipped") == 2


def test_status_local_fifo_symlinks_and_control_characters(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    os.chmod(folder, 0o755)
    os.mkfifo(folder / "zkherd-2.json", 0o644)
    (tmp_path / "target.json").write_text(json.dumps({"pid": os.getpid(), "updated": time.time()}))
    os.symlink(tmp_path / "target.json", folder / "zkherd-3.json")
    os.symlink(tmp_path, folder / "sub")
    p = folder / ("zkherd-%d.json" % os.getpid())
    p.write_text(json.dumps({"pid": os.getpid(), "updated": time.time(), "command": "run\x1b[2J\x07",
                             "argv": {"lock\x1b]0;x\x07": "/l\r\n"}, "state": "\u202etxet", "drained": ["\x1b[31m"],
                             "session": {"state": "\x00"}, "lock": {"path": "\x1b", "held": True, "token": "\x9b"}}))
    os.chmod(p, 0o644)
    result = local_status(folder)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    assert not any(c in result.stdout for c in "\x1b\x07\x00\r\x9b\u202e"), repr(result.stdout)
    assert "zkherd-2.json" in result.stderr and "zkherd-3.json" in result.stderr, result.stderr
    assert "target.json" not in result.stdout


def test_the_metrics_port_is_free_again_after_the_runner_is_killed(zk_server, tmp_path):
    """No process the runner forks (launcher, guard, child) may keep its listening socket: a
    restarted runner would exit 64 "busy"."""
    port = free_port()
    r = runner(zk_server.hosts, port, tmp_path, "r", "--", "sleep", "1000")
    wait_metric(port, "zkherd_child_running", 1)
    r.signal(signal.SIGKILL)
    r.wait()

    def free():
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
        finally:
            s.close()
    wait_for(free, 15, message=lambda: "port %d still bound: %s" % (port, subprocess.run(
        ["ss", "-ltnp"], capture_output=True, text=True, check=False).stdout))


FLOOD = r"""
import sys, threading, urllib.request
url = "http://127.0.0.1:%s/metrics" % sys.argv[1]
def go():
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
        except Exception:
            pass
for _ in range(8):
    threading.Thread(target=go, daemon=True).start()
threading.Event().wait()
"""


def test_a_scrape_flood_does_not_delay_the_fence(zk_server, zk, zk_base, fault_proxy, tmp_path):
    """Scrapes run in the runner's process (GIL) on all addresses by default: a flood of them must
    not let the fenced holder overlap the next one."""
    from tests.support.runner import exclusive_child, overlaps, wait_starts

    work, lock, port = tmp_path / "w", zk_base + "/l", free_port()
    proxy = fault_proxy()
    a = runner(proxy.hosts, port, tmp_path, "a", "--session-timeout", "2", "--lock", lock, "--",
               *exclusive_child(work, name="a"))
    wait_starts(work, 1)
    floods = [subprocess.Popen([sys.executable, "-c", FLOOD, str(port)]) for _i in range(4)]
    try:
        time.sleep(2)
        b = runner(zk_server.hosts, free_port(), tmp_path, "b", "--lock", lock, "--", *exclusive_child(work, name="b"))
        b.wait_log("queued for lock")
        proxy.blackhole()
        wait_starts(work, 2, timeout=30)
        time.sleep(1)
    finally:
        for f in floods:
            f.kill()
            f.wait()
    for r in (a, b):
        r.signal(signal.SIGKILL)
        r.wait()
    assert overlaps(work) == [], overlaps(work)
    assert "Traceback" not in a.log()
