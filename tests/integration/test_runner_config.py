"""Mirrored configuration, check command, health checks, alerts and rolling restarts of
`zkherd run` against a real ZooKeeper - the zkexec README replayed, and what zkexec got wrong."""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from tests.support import procs
from tests.support.runner import REPO, Zkherd
from tests.support.zkutil import wait_for

SERVE = "trap 'exit 0' TERM; while :; do sleep 0.05; done"


def run(hosts, *extra):
    return ["run", "--zk", hosts, "--session-timeout", "4", "--stop-timeout", "2", "--change-delay", "0.1", *extra]


def test_zkexec_prefixed_cat_tutorial(zk_server, zk, zk_base, tmp_path):
    """A prefix read from a znode; change it and the output changes; stdin stays the command's."""
    prefix, znode = tmp_path / "prefix", zk_base + "/prefix"
    zk.create(znode, b"hello")
    script = 'while read line; do echo "$(cat %s) $line"; done' % prefix
    args = run(zk_server.hosts, "--mirror", "%s=%s" % (prefix, znode), "--", "sh", "-c", script)
    proc = subprocess.Popen([sys.executable, "-m", "zkherd", *args],
                            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        proc.stdin.write(b"world\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"hello world\n"
        zk.set(znode, b"goodbye")
        wait_for(lambda: prefix.read_bytes() == b"goodbye")
        time.sleep(0.3)
        proc.stdin.write(b"world\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"goodbye world\n"
        proc.stdin.close()  # end of input: the command ends, and so does the runner, with its code
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_files_written_before_start_and_missing_znode_waits(zk_server, zk, zk_base, tmp_path):
    conf = tmp_path / "etc" / "app.conf"
    runner = Zkherd(run(zk_server.hosts, "--mirror", "%s=%s/app" % (conf, zk_base), "--",
                        "sh", "-c", "cat %s > %s/seen; %s" % (conf, tmp_path, SERVE)), tmp_path / "r.log")
    runner.wait_log("waiting for mirrored znodes that do not exist yet")
    time.sleep(0.3)
    assert not runner.has("started child") and not conf.exists()
    zk.create(zk_base + "/app", b"v=1\n")
    wait_for(lambda: (tmp_path / "seen").exists() and (tmp_path / "seen").read_bytes() == b"v=1\n")
    zk.delete(zk_base + "/app")  # later a missing znode keeps the last file
    runner.wait_log("mirrored znode is missing, keeping the last file")
    assert conf.read_bytes() == b"v=1\n"
    runner.stop()


def test_several_files_change_together_once(zk_server, zk, zk_base, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    zk.create(zk_base + "/a", b"1")
    zk.create(zk_base + "/b", b"1")
    starts = tmp_path / "starts"
    runner = Zkherd(run(zk_server.hosts, "--mirror", "%s=%s/a" % (a, zk_base), "--mirror", "%s=%s/b" % (b, zk_base),
                        "--", "sh", "-c", 'echo "$(cat %s)$(cat %s)" >> %s; %s' % (a, b, starts, SERVE)),
                    tmp_path / "r.log")
    wait_for(lambda: starts.exists() and starts.read_text() == "11\n")
    txn = zk.transaction()
    txn.set_data(zk_base + "/a", b"2")
    txn.set_data(zk_base + "/b", b"2")
    txn.commit()
    wait_for(lambda: starts.read_text().splitlines()[-1] == "22")
    assert starts.read_text().splitlines() == ["11", "22"]  # never a mixed "21" or "12"
    runner.stop()


def test_atomic_writes_under_200_rapid_changes(zk_server, zk, zk_base, tmp_path):
    """A reader polling the file never sees a partial or empty file; the last value wins; a burst
    gives few restarts, not one per change."""
    conf, znode = tmp_path / "conf", zk_base + "/conf"

    def value(i):
        return (("%05d" % i) * 4000).encode()  # 20 kB, one token repeated: any mix is visible

    zk.create(znode, value(0))
    runner = Zkherd(run(zk_server.hosts, "--mirror", "%s=%s" % (conf, znode), "--", "sh", "-c", SERVE),
                    tmp_path / "r.log")
    runner.wait_log("started child")
    bad, reads, stop = [], [0], threading.Event()

    def reader():
        while not stop.is_set():
            data = conf.read_bytes()
            reads[0] += 1
            if len(data) != 20000 or data != data[:5] * 4000:
                bad.append(data[:40])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(1, 201):
            zk.set(znode, value(i))
        wait_for(lambda: conf.read_bytes() == value(200), timeout=15)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert bad == [] and reads[0] > 100
    restarts = len(re.findall("reason=\"the configuration changed\"", runner.log()))
    assert 1 <= restarts <= 20, restarts
    assert [p for p in os.listdir(tmp_path) if p.endswith(".zkherd")] == []  # no temp file left
    runner.stop()


def test_check_cmd_rejects_keeps_file_and_child_and_alerts(zk_server, zk, zk_base, tmp_path):
    conf, znode, alerts = tmp_path / "conf", zk_base + "/conf", tmp_path / "alerts"
    zk.create(znode, b"good 1")
    alert = 'echo "$ZKHERD_ALERT|$ZKHERD_CONFIG_VERSION|$ZKHERD_ALERT_MESSAGE" >> %s' % alerts
    runner = Zkherd(run(zk_server.hosts, "--mirror", "%s=%s" % (conf, znode),
                        "--check-cmd", 'grep -q good "$ZKHERD_STAGED_FILE"', "--alert", alert,
                        "--", "sh", "-c", SERVE), tmp_path / "r.log")
    runner.wait_log("started child")
    child = runner.child_pid
    zk.set(znode, b"bad")
    runner.wait_log("check command rejected the new configuration")
    wait_for(lambda: alerts.exists() and alerts.read_text())
    kind, version, message = alerts.read_text().splitlines()[0].split("|")
    assert kind == "rejected" and int(version) > 0 and "rejected configuration version" in message
    assert conf.read_bytes() == b"good 1" and runner.child_pid == child and procs.pid_alive(child)
    zk.set(znode, b"good 2")
    wait_for(lambda: conf.read_bytes() == b"good 2")
    runner.stop()


def test_health_checks_and_a_hung_check(zk_server, tmp_path):
    port = zk_server.hosts.rsplit(":", 1)[1]
    healthy = Zkherd(run(zk_server.hosts, "--health", "bash -c 'exec 3<>/dev/tcp/127.0.0.1/%s'" % port,
                         "--health-delay", "0.2", "--health-interval", "0.3", "--", "sh", "-c", SERVE),
                     tmp_path / "ok.log")
    healthy.wait_log("child is healthy")
    alerts = tmp_path / "alerts"
    hung = Zkherd(run(zk_server.hosts, "--health", "sleep 100", "--health-timeout", "0.3", "--health-delay", "0.2",
                      "--health-interval", "0.2", "--health-fall", "2", "--alert", "echo $ZKHERD_ALERT >> %s" % alerts,
                      "--", "sh", "-c", SERVE), tmp_path / "hung.log")
    hung.wait_log("health check timed out, killing it", count=2)
    hung.wait_log("child is unhealthy")
    wait_for(lambda: alerts.exists() and "health" in alerts.read_text())
    assert procs.pid_alive(hung.child_pid)  # an unhealthy child is reported, not killed
    healthy.stop()
    hung.stop()


def test_register_when_healthy(zk_server, zk, zk_base, tmp_path):
    flag = tmp_path / "ok"
    runner = Zkherd(run(zk_server.hosts, "--register", zk_base + "/svc/web", "--register-when", "healthy",
                        "--health", "test -e %s" % flag, "--health-delay", "0.1", "--health-interval", "0.2",
                        "--health-fall", "1", "--", "sh", "-c", SERVE), tmp_path / "r.log")
    runner.wait_log("started child")
    time.sleep(0.5)
    assert zk.get_children(zk_base + "/svc") == [] if zk.exists(zk_base + "/svc") else True
    flag.touch()
    wait_for(lambda: zk.exists(zk_base + "/svc") and len(zk.get_children(zk_base + "/svc")) == 1)
    flag.unlink()
    wait_for(lambda: zk.get_children(zk_base + "/svc") == [])
    runner.stop()


def stamp_seconds(stamp):
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def stamps(log_text, pattern):
    return [line.split()[0] for line in log_text.splitlines() if re.search(pattern, line)]


def test_rolling_restart_one_at_a_time_pause_on_failure_resume_on_good_push(zk_server, zk, zk_base, tmp_path):
    znode, roll = zk_base + "/conf", zk_base + "/roll"
    zk.create(znode, b"good 1")
    alerts = tmp_path / "alerts"
    runners = []
    for i in range(3):
        conf = tmp_path / ("conf%d" % i)
        args = run(zk_server.hosts, "--mirror", "%s=%s" % (conf, znode), "--rolling-lock", roll,
                   "--health", "grep -q good %s" % conf, "--health-delay", "0.3", "--health-interval", "0.1",
                   "--health-fall", "1", "--alert", "echo $ZKHERD_ALERT >> %s" % alerts, "--", "sh", "-c", SERVE)
        runners.append(Zkherd(args, tmp_path / ("r%d.log" % i)))
    for runner in runners:
        runner.wait_log("child is healthy")

    zk.set(znode, b"good 2")
    for runner in runners:
        runner.wait_log("rolling lock released", timeout=20)
    windows = sorted((stamps(r.log(), "rolling lock acquired")[0], stamps(r.log(), "rolling lock released")[0])
                     for r in runners)
    for earlier, later in zip(windows, windows[1:]):
        # one host at a time: released before the next acquires. A host logs "released" once the
        # server answered the delete, which the next host may already have seen: allow that latency.
        assert stamp_seconds(earlier[1]) - 0.05 <= stamp_seconds(later[0]), windows

    zk.set(znode, b"bad 3")
    failing = None
    wait_for(lambda: any(r.has("configuration version failed") for r in runners), timeout=20)
    failing = next(r for r in runners if r.has("configuration version failed"))
    time.sleep(1.5)
    others = [r for r in runners if r is not failing]
    assert all(r.has("waiting for the rolling lock") or not r.has("bad 3") for r in others)
    assert all(len(re.findall("configuration installed", r.log())) == 2 for r in others)  # bad 3 not installed
    wait_for(lambda: alerts.exists() and "failed-version" in alerts.read_text())
    record = json.loads(zk.get(roll + "/failed")[0])
    assert record["version"] > 0 and "not healthy" in record["reason"]

    zk.set(znode, b"good 4")
    for runner in runners:
        wait_for(lambda r=runner: r.has("child is healthy") and len(re.findall("rolling lock released", r.log())) >= 2,
                 timeout=30)
    for i in range(3):
        assert (tmp_path / ("conf%d" % i)).read_bytes() == b"good 4"
    for runner in runners:
        runner.stop()


def test_false_exits_with_1(zk_server, zk, zk_base, tmp_path):
    zk.create(zk_base + "/c", b"x")
    runner = Zkherd(run(zk_server.hosts, "--mirror", "%s=%s/c" % (tmp_path / "c", zk_base), "--", "false"),
                    tmp_path / "r.log")
    assert runner.wait() == 1


def test_rollback_on_failure_and_others_skip_the_failed_version(zk_server, zk, zk_base, tmp_path):
    znode, roll = zk_base + "/conf", zk_base + "/roll"
    zk.create(znode, b"good 1")
    runners = [Zkherd(run(zk_server.hosts, "--mirror", "%s=%s" % (tmp_path / ("c%d" % i), znode), "--rolling-lock",
                          roll, "--on-failure", "rollback", "--health", "grep -q good %s" % (tmp_path / ("c%d" % i)),
                          "--health-delay", "0.2", "--health-interval", "0.1", "--health-fall", "1",
                          "--", "sh", "-c", SERVE), tmp_path / ("r%d.log" % i)) for i in range(2)]
    for runner in runners:
        runner.wait_log("child is healthy")
    zk.set(znode, b"bad 2")
    wait_for(lambda: any(r.has("rolled back to the last good configuration") for r in runners), timeout=20)
    wait_for(lambda: all(r.has("the version that failed|rolled back") for r in runners), timeout=20)
    time.sleep(0.5)
    assert [(tmp_path / ("c%d" % i)).read_bytes() for i in range(2)] == [b"good 1", b"good 1"]
    assert sum(r.has("rolled back") for r in runners) == 1  # the other one skipped the failed version
    zk.set(znode, b"good 3")
    wait_for(lambda: all((tmp_path / ("c%d" % i)).read_bytes() == b"good 3" for i in range(2)), timeout=20)
    for runner in runners:
        runner.stop()


def test_session_expiry_in_the_middle_of_a_rollout(zk_server, zk, zk_base, fault_proxy, tmp_path):
    """The host applying a version is cut off until its session (and rolling lock) expires: the
    rollout goes on, nothing is released twice, no host restarts twice for one version."""
    znode, roll = zk_base + "/conf", zk_base + "/roll"
    zk.create(znode, b"v1")
    proxy = fault_proxy()

    def runner(name, hosts):
        conf = tmp_path / name
        return Zkherd(["run", "--zk", hosts, "--session-timeout", "1", "--stop-timeout", "0.3", "--change-delay", "0",
                       "--mirror", "%s=%s" % (conf, znode), "--rolling-lock", roll, "--health", "test -s %s" % conf,
                       "--health-delay", "1.5", "--health-interval", "0.1", "--", "sh", "-c", SERVE],
                      tmp_path / (name + ".log"))

    cut, other = runner("cut", proxy.hosts), runner("other", zk_server.hosts)
    cut.wait_log("child is healthy")
    other.wait_log("child is healthy")
    other.signal(signal.SIGSTOP)  # let the cut-off host take the rolling lock first
    zk.set(znode, b"v2")
    cut.wait_log("rolling lock acquired")
    proxy.blackhole()
    other.signal(signal.SIGCONT)
    other.wait_log("rolling lock released", timeout=20)  # the rollout went on without the cut-off host
    proxy.reset_all()
    proxy.heal()
    cut.wait_log("the ZooKeeper session expired")
    cut.wait_log("child is healthy", count=2, timeout=20)
    time.sleep(1.0)
    for r in (cut, other):
        assert len(re.findall('reason="the configuration changed"', r.log())) == 1, r.log()
        assert len(re.findall("rolling lock released", r.log())) <= 1
    assert (tmp_path / "cut").read_bytes() == (tmp_path / "other").read_bytes() == b"v2"
    cut.stop()
    other.stop()


def test_mirror_dir(zk_server, zk, zk_base, tmp_path):
    """A subtree becomes a directory: leaves are files, new and deleted znodes show up, and one
    change of several znodes in a transaction gives one restart."""
    root, local = zk_base + "/site", tmp_path / "site"
    zk.create(root + "/nginx.conf", b"events {}\n", makepath=True)
    zk.create(root + "/conf.d/a.conf", b"a1", makepath=True)
    starts = tmp_path / "starts"
    runner = Zkherd(run(zk_server.hosts, "--mirror-dir", "%s=%s" % (local, root), "--",
                        "sh", "-c", "echo start >> %s; %s" % (starts, SERVE)), tmp_path / "r.log")
    wait_for(starts.exists)
    assert (local / "nginx.conf").read_bytes() == b"events {}\n" and (local / "conf.d" / "a.conf").read_bytes() == b"a1"
    txn = zk.transaction()
    txn.create(root + "/conf.d/b.conf", b"b1")
    txn.delete(root + "/conf.d/a.conf")
    txn.set_data(root + "/nginx.conf", b"events { worker_connections 10; }\n")
    txn.commit()
    wait_for(lambda: (local / "conf.d" / "b.conf").exists() and not (local / "conf.d" / "a.conf").exists())
    assert (local / "nginx.conf").read_bytes() == b"events { worker_connections 10; }\n"
    time.sleep(0.3)
    assert starts.read_text().count("start") == 2  # one restart for the whole transaction
    runner.stop()


def test_mode_is_kept_and_unchanged_files_are_not_touched(zk_server, zk, zk_base, tmp_path):
    conf, other = tmp_path / "conf", tmp_path / "other"
    zk.create(zk_base + "/conf", b"1")
    zk.create(zk_base + "/other", b"same")
    runner = Zkherd(run(zk_server.hosts, "--on-change", "none", "--mirror", "%s=%s/conf" % (conf, zk_base),
                        "--mirror", "%s=%s/other" % (other, zk_base), "--", "sh", "-c", SERVE), tmp_path / "r.log")
    runner.wait_log("started child")
    os.chmod(conf, 0o600)
    inode = other.stat().st_ino
    zk.set(zk_base + "/conf", b"2")
    wait_for(lambda: conf.read_bytes() == b"2")
    assert conf.stat().st_mode & 0o777 == 0o600
    assert other.stat().st_ino == inode  # its content did not change: not rewritten
    runner.stop()
