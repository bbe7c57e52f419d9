"""Planned maintenance on a real ZooKeeper with real runners: `zkherd drain` / `undrain` of a lock's
holder and waiter, `run --standby-only`, drain of a registration, exit codes, a lost reply on the
flag write. Every runner uses a chroot under the test's base, so the flags (/zkherd/drain...) stay
in it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runner import REPO, Zkherd, exclusive_child, overlaps, starts, wait_starts
from tests.support.zkutil import wait_for

SERVE = "trap 'exit 0' TERM; while :; do sleep 0.05; done"
RUNNERS = []


@pytest.fixture(autouse=True)
def _stop_runners(zk_base):  # noqa: ARG001  # stopped before the base is deleted
    yield
    while RUNNERS:
        RUNNERS.pop().stop()


def runner(tmp_path, hosts, name, *args):
    one = Zkherd(["run", "--zk", hosts, "--session-timeout", "10", "--id", name, *args], tmp_path / (name + ".log"))
    RUNNERS.append(one)
    return one


def zkherd(*args, timeout=30):
    """A short zkherd command: (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "zkherd", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def uptime():
    return float(Path("/proc/uptime").read_text().split()[0])


def line_ids(zk, lock):
    """The ids of the runners in the lock's line."""
    ids = set()
    for name in zk.get_children(lock):
        if name.startswith("lock-"):
            ids.add(json.loads(zk.get(lock + "/" + name)[0])["id"])
    return ids


def test_drain_of_the_holder_hands_over_in_milliseconds_and_stays_out(zk_server, zk, zk_base, tmp_path):
    hosts, work, lock = zk_server.hosts + zk_base, tmp_path / "w", zk_base + "/lock"
    first = runner(tmp_path, hosts, "a", "--lock", "/lock", "--", *exclusive_child(work, name="a"))
    wait_starts(work, 1)
    second = runner(tmp_path, hosts, "b", "--lock", "/lock", "--", *exclusive_child(work, name="b"))
    second.wait_log("queued for lock")
    second.wait_log("launcher prespawned|queued for lock")
    before = uptime()
    code, out, err = zkherd("--zk", hosts, "drain", "/lock", "--id", "a")
    assert code == 0, err
    assert re.match(r"drained a at /lock in \d+\.\d{3} s", out), out
    took = float(wait_starts(work, 2)[1].split()[0]) - before
    assert took < 1.5, "handover took %.3f s (session timeout 10 s)" % took
    print("drain -> standby's child started: %.3f s; drain said: %s" % (took, out.strip()))
    assert " b " in starts(work)[1]
    first.wait_log(r"state stopping -> drained")
    assert first.has("drained by an operator")
    assert line_ids(zk, lock) == {"b"}
    code, out, err = zkherd("--zk", hosts, "drain", "/lock", "--id", "a")  # idempotent
    assert code == 0, err
    code, out, err = zkherd("--zk", hosts, "status", "/lock", "--json")
    assert json.loads(out)[0]["drained"] == [{"id": "a", "holds_nothing": True}], out
    second.stop()  # the lock is free: the drained runner still stays out
    wait_for(lambda: line_ids(zk, lock) == set(), timeout=10)
    assert len(starts(work)) == 2 and first.proc.poll() is None
    code, out, err = zkherd("--zk", hosts, "undrain", "/lock", "--id", "a")
    assert code == 0 and "undrained a" in out, err
    wait_starts(work, 3)
    assert " a " in starts(work)[2]
    assert first.has(r"state drained -> queued")
    assert overlaps(work) == []


def test_drain_of_a_waiter_leaves_the_line_and_undrain_queues_again(zk_server, zk, zk_base, tmp_path):
    hosts, work, lock = zk_server.hosts + zk_base, tmp_path / "w", zk_base + "/lock"
    runner(tmp_path, hosts, "a", "--lock", "/lock", "--", *exclusive_child(work, name="a"))
    wait_starts(work, 1)
    waiter = runner(tmp_path, hosts, "b", "--lock", "/lock", "--", *exclusive_child(work, name="b"))
    waiter.wait_log("queued for lock")
    code, out, err = zkherd("--zk", hosts, "drain", "/lock", "--id", "b", "--timeout", "10")
    assert code == 0, err
    waiter.wait_log(r"state queued -> drained")
    assert line_ids(zk, lock) == {"a"}
    assert zkherd("--zk", hosts, "undrain", "/lock", "--id", "b")[0] == 0
    waiter.wait_log("queued for lock", count=2)
    assert line_ids(zk, lock) == {"a", "b"} and len(starts(work)) == 1


def test_standby_only_mirrors_and_never_holds(zk_server, zk, zk_base, tmp_path):
    hosts, work, lock = zk_server.hosts + zk_base, tmp_path / "w", zk_base + "/lock"
    zk.create(zk_base + "/conf", b"v1")
    conf = tmp_path / "conf"
    standby = runner(tmp_path, hosts, "s", "--standby-only", "--lock", "/lock", "--mirror", "%s=/conf" % conf,
                     "--", *exclusive_child(work, name="s"))
    standby.wait_log(r'queued -> drained why="--standby-only')
    wait_for(lambda: conf.exists() and conf.read_bytes() == b"v1")
    assert not zk.exists(lock) or line_ids(zk, lock) == set()
    holder = runner(tmp_path, hosts, "a", "--lock", "/lock", "--", *exclusive_child(work, name="a"))
    wait_starts(work, 1)
    holder.stop()
    wait_for(lambda: line_ids(zk, lock) == set(), timeout=10)
    zk.set(zk_base + "/conf", b"v2")
    wait_for(lambda: conf.read_bytes() == b"v2")
    assert len(starts(work)) == 1 and not standby.has("started child")
    code, _out, err = zkherd("run", "--standby-only", "--lock", "/x", "--no-wait", "--", "true")
    assert code == 64 and "--standby-only" in err


def test_drain_of_a_registration_keeps_the_child(zk_server, zk, zk_base, tmp_path):
    hosts, services = zk_server.hosts + zk_base, zk_base + "/svc"
    zk.create(services)
    service = runner(tmp_path, hosts, "r", "--register", "/svc/node-", "--data", "host-r:80", "--",
                     "sh", "-c", SERVE)
    service.wait_log("registered")
    wait_for(lambda: len(zk.get_children(services)) == 1)
    wait_for(lambda: service.child_pid is not None)  # "registered" may come before "started child"
    child = service.child_pid
    code, out, err = zkherd("--zk", hosts, "drain", "/svc/node-", "--id", "r", "--timeout", "10")
    assert code == 0 and "the runner answered" in out, (out, err)
    assert zk.get_children(services) == []
    assert service.child_pid == child and os.path.exists("/proc/%d" % child)
    assert zkherd("--zk", hosts, "undrain", "/svc/node-", "--id", "r")[0] == 0
    wait_for(lambda: len(zk.get_children(services)) == 1)
    assert service.child_pid == child and service.proc.poll() is None


def test_exit_codes(zk_server, zk, zk_base, tmp_path):
    hosts, work = zk_server.hosts + zk_base, tmp_path / "w"
    runner(tmp_path, hosts, "a", "--lock", "/lock", "--", *exclusive_child(work, name="a"))
    wait_starts(work, 1)
    code, out, _err = zkherd("--zk", hosts, "drain", "/lock", "--id", "nobody")  # holds nothing there
    assert code == 0 and "no node of it" in out
    code, _out, err = zkherd("--zk", hosts, "drain", "/elsewhere", "--id", "nobody", "--timeout", "0.5")
    assert code == 75 and "the flag stays" in err
    assert zkherd("--zk", hosts, "undrain", "/elsewhere", "--id", "nobody")[0] == 0
    assert zkherd("--zk", hosts, "undrain", "/elsewhere", "--id", "nobody")[0] == 0  # idempotent
    assert zkherd("--zk", hosts, "drain", "lock", "--id", "a")[0] == 64
    assert zkherd("--zk", hosts, "drain", "/lock")[0] == 64
    assert zkherd("--zk", "127.0.0.1:1", "--connect-timeout", "1", "drain", "/lock", "--id", "a")[0] == 69
    assert len(starts(work)) == 1


def test_a_lost_reply_on_the_flag_write_keeps_drain_idempotent(zk_server, zk, zk_base, fault_proxy):
    proxy = fault_proxy()
    hosts = proxy.hosts + zk_base
    proxy.lose_reply("create", nth=1)
    code, out, err = zkherd("--zk", hosts, "drain", "/lock", "--id", "a", "--no-wait")
    assert code == 0, err
    assert proxy.wait_fired(1, timeout=10)
    flags = zk.get_children(zk_base + "/zkherd/drain/%2Flock")
    assert flags == ["a"]
    proxy.lose_reply("delete", nth=1)
    code, out, err = zkherd("--zk", hosts, "undrain", "/lock", "--id", "a")
    assert code == 0, err
    assert zk.get_children(zk_base + "/zkherd/drain/%2Flock") == []
