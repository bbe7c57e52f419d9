"""`zkherd status PATH... [--json]` against a real ZooKeeper, on nodes made by real `zkherd run`,
`elect`, `cron` and `farm join` processes: a lock (holder, waiters in order), a rolling lock with a
paused rollout, a pool with cron ticks, a farm, registrations; exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.runner import REPO, Zkherd
from tests.support.zkutil import wait_for

SERVE = "trap 'exit 0' TERM; while :; do sleep 0.05; done"


def status(hosts, *args):
    result = subprocess.run([sys.executable, "-m", "zkherd", "status", "--zk", hosts, *args], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def status_json(hosts, *paths):
    result = status(hosts, "--json", *paths)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def runner(hosts, ident, tmp_path, *extra):
    return Zkherd(["run", "--zk", hosts, "--session-timeout", "4", "--stop-timeout", "2", "--id", ident, *extra,
                   "--", "sh", "-c", SERVE], tmp_path / ("%s.log" % ident))


def test_lock_holder_and_waiters_in_queue_order(zk_server, zk_base, tmp_path):
    lock = zk_base + "/lock"
    runners = []
    for ident in ("first", "second", "third"):
        runners.append(runner(zk_server.hosts, ident, tmp_path, "--lock", lock))
        runners[-1].wait_log("queued for lock")
    runners[0].wait_log("started child")
    try:
        [found] = status_json(zk_server.hosts, lock)
        assert found["kind"] == "lock" and found["slots"] == 1
        [holder] = found["holders"]
        assert (holder["id"], holder["pid"]) == ("first", runners[0].pid)
        assert holder["host"] == os.uname().nodename and holder["fencing_token"] > 0
        assert [w["id"] for w in found["waiting"]] == ["second", "third"]
        assert [w["pid"] for w in found["waiting"]] == [runners[1].pid, runners[2].pid]
        text = status(zk_server.hosts, lock).stdout
        assert "holder   first host=" in text and "waiting  1. second" in text and "waiting  2. third" in text

        runners[0].stop()
        runners[1].wait_log("started child")
        [found] = status_json(zk_server.hosts, lock)
        assert [h["id"] for h in found["holders"]] == ["second"]
        assert found["holders"][0]["fencing_token"] > holder["fencing_token"]  # grows with every holder
        assert [w["id"] for w in found["waiting"]] == ["third"]
    finally:
        for proc in runners:
            proc.stop()


def test_paused_rollout(zk_server, zk, zk_base, tmp_path):
    znode, roll = zk_base + "/conf", zk_base + "/roll"
    zk.create(znode, b"good 1")
    runners = []
    for i in range(2):
        conf = tmp_path / ("conf%d" % i)
        runners.append(runner(zk_server.hosts, "h%d" % i, tmp_path, "--change-delay", "0.1", "--mirror",
                              "%s=%s" % (conf, znode), "--rolling-lock", roll, "--health", "grep -q good %s" % conf,
                              "--health-delay", "0.3", "--health-interval", "0.1", "--health-fall", "1"))
    try:
        for proc in runners:
            proc.wait_log("child is healthy")
        assert status(zk_server.hosts, roll).returncode == 66  # made by the first change only
        zk.set(znode, b"bad 2")
        wait_for(lambda: any(p.has("rollout paused") for p in runners), timeout=30)
        failing = next(p for p in runners if p.has("rollout paused"))
        wait_for(lambda: zk.exists(roll + "/failed"), timeout=15)
        [found] = status_json(zk_server.hosts, roll)
        assert found["kind"] == "rolling-lock"
        assert found["paused"] is True, found
        ident = "h%d" % runners.index(failing)
        assert found["paused_by"] == [ident]
        assert found["failed"]["id"] == ident and "not healthy" in found["failed"]["reason"]
        assert found["failed"]["version"] > 0 and found["failed"]["refused"] is None
        text = status(zk_server.hosts, roll).stdout
        assert "PAUSED   by %s" % ident in text and "failed   version" in text

        zk.set(znode, b"good 3")  # a newer version: the rollout goes on and ends
        for proc in runners:
            wait_for(lambda p=proc: p.log().count("rolling lock released") >= 1 and "good 3" in
                     (tmp_path / ("conf%d" % runners.index(p))).read_text(), timeout=30)
        wait_for(lambda: not status_json(zk_server.hosts, roll)[0]["holders"], timeout=15)
        [found] = status_json(zk_server.hosts, roll)
        assert found["paused"] is False and found["failed"] is not None  # the record stays, for the history
    finally:
        for proc in runners:
            proc.stop()


def test_pool_members_leader_and_cron_ticks(zk_server, zk_base, tmp_path):
    election = zk_base + "/pool"
    env = {"ZKHERD_RUN_DIR": str(tmp_path)}
    members = []
    for ident in ("alpha", "beta"):
        members.append(Zkherd(["elect", "--zk", zk_server.hosts, "--election", election, "--id", ident],
                              tmp_path / ("%s.log" % ident), env=env))
        members[-1].wait_log("joined the pool")
    members[0].wait_log("this member leads the pool")
    try:
        job = subprocess.run([sys.executable, "-m", "zkherd", "cron", "--zk", zk_server.hosts, "--election",
                              election, "--id", "alpha", "--timeout", "10", "--name", "backup", "--", "true"],
                             cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
                             env=dict(os.environ, **env))
        assert job.returncode == 0, job.stderr
        [found] = status_json(zk_server.hosts, election)
        assert found["kind"] == "pool" and found["leader"] == "alpha"
        assert [m["id"] for m in found["members"]] == ["alpha", "beta"]
        [tick] = found["cron"]["backup"]
        assert tick["id"] == "alpha" and tick["state"] == "started"
        text = status(zk_server.hosts, election).stdout
        assert "leader alpha" in text and "member beta" in text and "cron     backup tick" in text
    finally:
        for proc in members:
            proc.stop()


def test_farm_members_and_age(zk_server, zk, zk_base, tmp_path):
    farm = zk_base + "/farm"
    joined = []
    for name in ("10.0.0.1", "10.0.0.2"):
        conf = tmp_path / ("%s.json" % name)
        conf.write_text('{"weight": 1}')
        joined.append(Zkherd(["farm", "join", farm, str(conf), "--zk", zk_server.hosts, "--name", name,
                              "--poll", "0.1"], tmp_path / ("%s.log" % name)))
    try:
        for proc in joined:
            proc.wait_log("joined|created|member", timeout=20)
        wait_for(lambda: zk.exists(farm) and len(zk.get_children(farm)) == 2, timeout=20)
        [found] = status_json(zk_server.hosts, farm)
        assert found["kind"] == "farm"
        assert [m["name"] for m in found["members"]] == ["10.0.0.1", "10.0.0.2"]
        assert all(m["fields"] == ["weight"] and m["session"] for m in found["members"])
        assert "member   10.0.0.1 joined" in status(zk_server.hosts, farm).stdout
    finally:
        for proc in joined:
            proc.stop()


def test_registrations_and_exit_codes(zk_server, zk, zk_base, tmp_path):
    services = zk_base + "/services"
    zk.create(services)
    proc = Zkherd(["run", "--zk", zk_server.hosts, "--register", services + "/svc-", "--data", "host-a:80",
                   "--", "sh", "-c", SERVE], tmp_path / "r.log")
    try:
        proc.wait_log("started child")
        by_prefix, by_folder = status_json(zk_server.hosts, services + "/svc-", services)
        for found in (by_prefix, by_folder):
            assert found["kind"] == "registration"
            assert [r["data"] for r in found["registrations"]] == ["host-a:80"]
        missing = status(zk_server.hosts, zk_base + "/nothing")
        assert missing.returncode == 66 and "no such znode" in missing.stderr
        zk.create(zk_base + "/plain/child", b"x", makepath=True)
        assert status(zk_server.hosts, zk_base + "/plain").returncode == 65
        assert status(zk_server.hosts, "not/a/path").returncode == 64
        assert status("127.0.0.1:1", "--connect-timeout", "1", services).returncode == 69
    finally:
        proc.stop()
