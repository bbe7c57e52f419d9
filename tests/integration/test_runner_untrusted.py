"""What steers the runner comes from ZooKeeper, which a client without the deployment's
credentials can write under an open ACL: the runner treats it as untrusted (docs/security.md,
"What the runner refuses"). A persistent node in a lock's lines is foreign - no runner holds it -
and is never waited on; a failed-version record must name a version that exists."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading

import pytest

from tests.support.runner import REPO, Zkherd, exclusive_child, overlaps, starts, wait_starts
from tests.support.zkutil import wait_for

SERVE = "trap 'exit 0' TERM; while :; do sleep 0.05; done"
FOREIGN = "WARNING foreign nodes in the lock, ignored"


def lock_runner(hosts, lock, work, name, tmp_path, alerts):
    return Zkherd(["run", "--zk", hosts, "--session-timeout", "4", "--stop-timeout", "1", "--lock", lock,
                   "--alert", "echo \"$ZKHERD_ALERT $ZKHERD_ALERT_MESSAGE\" >> %s" % alerts,
                   "--", *exclusive_child(work, name=name)], tmp_path / ("%s.log" % name))


def squat(zk, lock):
    """The attack of issue 12: one transaction deletes every node in the lock and puts persistent
    nodes ahead of everyone in both lines."""
    txn = zk.transaction()
    for name in zk.get_children(lock):
        txn.delete(lock + "/" + name)
    txn.create(lock + "/lock-0000000000", b"squatter")
    txn.create(lock + "/run-0000000000", b"squatter")
    results = txn.commit()
    assert not any(isinstance(r, Exception) for r in results), results


def test_persistent_nodes_squatting_a_lock_are_skipped_logged_and_alerted(zk_server, zk, zk_base, tmp_path):
    """Holder and standby under one lock; the squat stops the holder (its nodes are gone). The
    runners take the lock again past the foreign nodes - one at a time - each says once per node
    what it ignored and what to do, and runs its alert command."""
    work, lock, alerts = tmp_path / "w", zk_base + "/lock", tmp_path / "alerts"
    holder = lock_runner(zk_server.hosts, lock, work, "holder", tmp_path, alerts)
    wait_starts(work, 1)
    standby = lock_runner(zk_server.hosts, lock, work, "standby", tmp_path, alerts)
    standby.wait_log("queued for lock")

    squat(zk, lock)
    holder.wait_log("lock lost")
    wait_starts(work, 2, timeout=20)  # before the fix: nobody ever starts again
    assert overlaps(work) == []
    # exactly one of them runs, the other waits behind it (not behind the squatter)
    running = [r for r in (holder, standby) if len(re.findall("started child", r.log())) > (r is holder)]
    assert len(running) == 1, [r.log() for r in (holder, standby)]
    started = running[0]
    lines = [line for line in started.log().splitlines() if FOREIGN in line]
    nodes = [node for line in lines for node in re.search(r"nodes=(\S+)", line).group(1).split(",")]
    assert set(nodes) <= {lock + "/lock-0000000000", lock + "/run-0000000000"}
    assert len(nodes) == len(set(nodes)) >= 1  # once per node
    assert "delete them" in lines[0] and "ACL" in lines[0]
    wait_for(lambda: alerts.exists() and "foreign-lock-node" in alerts.read_text(), timeout=15)

    # the other one takes over past the squatter when the holder stops: still one at a time
    started.stop()
    wait_starts(work, 3, timeout=20)
    assert overlaps(work) == [] and len(starts(work)) == 3
    for runner in (holder, standby):
        runner.stop()
    # the runner leaves foreign nodes to the operator, also the one that took the holder's own name
    assert zk.exists(lock + "/lock-0000000000") and zk.exists(lock + "/run-0000000000")


def test_persistent_node_ahead_of_a_fresh_runner(zk_server, zk, zk_base, tmp_path):
    """Squatted before anyone came: the first runner starts at once, past the foreign nodes."""
    work, lock, alerts = tmp_path / "w", zk_base + "/lock", tmp_path / "alerts"
    zk.create(lock + "/lock-0000000000", makepath=True)
    zk.create(lock + "/run-0000000000")
    runner = lock_runner(zk_server.hosts, lock, work, "first", tmp_path, alerts)
    wait_starts(work, 1, timeout=20)
    assert runner.has(FOREIGN)
    runner.stop()


def test_a_holder_whose_nodes_are_replaced_by_nodes_of_the_same_name_stops(zk_server, zk, zk_base, tmp_path):
    """The squatter deletes the holder's nodes and makes persistent ones of the same names: by name
    the holder still holds, but the nodes are no longer its own - it must stop its child (the
    others skip foreign nodes and take the lock), not run on beside the next holder."""
    lock, alerts = zk_base + "/lock", tmp_path / "alerts"

    def runner(name):
        return Zkherd(["run", "--zk", zk_server.hosts, "--session-timeout", "4", "--stop-timeout", "1", "--lock", lock,
                       "--alert", "echo $ZKHERD_ALERT >> %s" % alerts, "--", "sh", "-c", SERVE],
                      tmp_path / ("%s.log" % name))

    holder = runner("holder")
    holder.wait_log("started child")
    standby = runner("standby")
    standby.wait_log("queued for lock")
    mine = [n for n in zk.get_children(lock) if zk.exists(lock + "/" + n).ephemeralOwner
            != zk.exists(standby_node(standby)).ephemeralOwner]
    txn = zk.transaction()
    for name in mine:
        txn.delete(lock + "/" + name)
    for name in mine:
        txn.create(lock + "/" + name, b"squatter")
    assert not any(isinstance(r, Exception) for r in txn.commit())
    holder.wait_log("stopping child .*lock lost", timeout=15)
    standby.wait_log("started child", timeout=15)
    assert standby.has(FOREIGN)
    for name in mine:  # never deleted by the holder: they are not its nodes
        assert zk.exists(lock + "/" + name).ephemeralOwner == 0
    holder.stop()
    standby.stop()


def standby_node(runner):
    return runner.wait_log(r"queued for lock lock=\S+ node=(\S+)")


# A new version must be healthy within --health-delay + max(delay, rise x interval) (2 s here), or it counts
# as failed: room for a busy CI machine (0.4 s was missed once under full load).
def rolling_runner(hosts, znode, roll, conf, tmp_path, name):
    return Zkherd(["run", "--zk", hosts, "--session-timeout", "4", "--stop-timeout", "2", "--change-delay", "0.1",
                   "--mirror", "%s=%s" % (conf, znode), "--rolling-lock", roll, "--health", "test -s %s" % conf,
                   "--health-delay", "1.0", "--health-interval", "0.2", "--", "sh", "-c", SERVE],
                  tmp_path / ("%s.log" % name))


def test_forged_failed_version_records_do_not_freeze_the_rollout(zk_server, zk, zk_base, tmp_path):
    """ROLLING_LOCK/failed naming a version that cannot exist (far in the future, not a number,
    negative) is refused with a WARNING; the pushed configuration rolls out."""
    znode, roll = zk_base + "/conf", zk_base + "/roll"
    zk.create(znode, b"v1")
    confs = [tmp_path / ("conf%d" % i) for i in range(2)]
    runners = [rolling_runner(zk_server.hosts, znode, roll, conf, tmp_path, "r%d" % i) for i, conf in enumerate(confs)]
    for runner in runners:
        runner.wait_log("child is healthy")
    forged = [2 ** 62, "999999999999", -5, True]
    zk.create(roll + "/failed", json.dumps({"version": forged[0], "reason": "forged"}).encode(), makepath=True)
    for step, version in enumerate(forged, start=2):
        zk.set(roll + "/failed", json.dumps({"version": version, "reason": "forged"}).encode())
        zk.set(znode, b"v%d" % step)  # before the fix: "waiting for a configuration newer than failed version"
        wait_for(lambda step=step: all(c.read_bytes() == b"v%d" % step for c in confs), timeout=30,
                 message=lambda: "\n".join(r.log()[-2000:] for r in runners))
    for runner in runners:
        assert runner.has("WARNING refusing the failed-version record")
        assert not runner.has("waiting for a configuration newer than failed version")
        runner.stop()


def test_a_genuine_failed_version_record_is_still_honoured(zk_server, zk, zk_base, tmp_path):
    """A record written after the version it names (as a failing host writes it) still makes the
    others skip that version."""
    znode, roll = zk_base + "/conf", zk_base + "/roll"
    zk.create(znode, b"v1")
    conf = tmp_path / "conf"
    runner = rolling_runner(zk_server.hosts, znode, roll, conf, tmp_path, "r")
    runner.wait_log("child is healthy")
    # another host holds the rolling lock while it applies v2 and fails: our runner waits in line
    held = [zk.create(roll + "/" + prefix, ephemeral=True, sequence=True, makepath=True)
            for prefix in ("lock-", "run-")]
    stat = zk.set(znode, b"v2 failed elsewhere")
    runner.wait_log("waiting for the rolling lock")
    zk.create(roll + "/failed", json.dumps({"version": stat.mzxid, "reason": "failed on another host"}).encode())
    for node in held:
        zk.delete(node)
    runner.wait_log("the newest configuration is the version that failed", timeout=20)
    assert conf.read_bytes() == b"v1" and not runner.has("refusing the failed-version record")
    zk.set(znode, b"v3")
    wait_for(lambda: conf.read_bytes() == b"v3", timeout=20)
    runner.stop()


def test_a_deeply_nested_failed_version_record_is_refused(zk_server, zk, zk_base, tmp_path):
    """A record of 200,000 nested lists (anyone who may write the rolling lock can write it): the
    runner refuses it with a WARNING and applies the push. Before: RecursionError, exit 1."""
    znode, roll = zk_base + "/conf", zk_base + "/roll"
    zk.create(znode, b"v1")
    conf = tmp_path / "conf"
    runner = rolling_runner(zk_server.hosts, znode, roll, conf, tmp_path, "r")
    runner.wait_log("child is healthy")
    zk.create(roll + "/failed", b"[" * 200000 + b"]" * 200000, makepath=True)
    zk.set(znode, b"v2")
    wait_for(lambda: conf.read_bytes() == b"v2" or runner.proc.poll() is not None, timeout=30)
    assert runner.proc.poll() is None and not runner.has("Traceback"), runner.log()[-3000:]
    assert conf.read_bytes() == b"v2"
    line = runner.wait_log("WARNING refusing the failed-version record.*")
    assert "nested too deeply" in line and "delete the node" in line, line
    runner.stop()


def test_a_writer_loop_on_the_failed_version_record_does_not_freeze_pushes(zk_server, zk, zk_base, tmp_path):
    """The review's writer: every 50 ms it names, in ROLLING_LOCK/failed, the zxid of its own last
    write - a zxid below the record's own, but no configuration version this host ever read. Each
    push goes through, and the runner says at WARNING what it refused. Before: pushes v2, v3, v4
    froze ("the newest configuration is the version that failed"), with no warning at all."""
    znode, roll = zk_base + "/conf", zk_base + "/roll"
    zk.create(znode, b"v1")
    conf = tmp_path / "conf"
    runner = rolling_runner(zk_server.hosts, znode, roll, conf, tmp_path, "r")
    runner.wait_log("child is healthy")
    stop, written = threading.Event(), []

    def forger():
        last = zk.create(roll + "/failed", b"{}", makepath=True) and zk.exists(roll + "/failed").mzxid
        while not stop.is_set():
            stat = zk.set(roll + "/failed", json.dumps({"version": last, "reason": "forged"}).encode())
            written.append(last)
            last = stat.mzxid
            stop.wait(0.05)

    thread = threading.Thread(target=forger, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(written) >= 3, timeout=10)
        for step in range(2, 5):  # each push: the rolling lock taken, the record read, the push applied
            zk.set(znode, b"v%d" % step)
            wait_for(lambda step=step: conf.read_bytes() == b"v%d" % step, timeout=30,
                     message=lambda step=step: "push v%d; log:\n%s" % (step, runner.log()[-3000:]))
            runner.wait_log("rolling lock released", count=step - 1)
    finally:
        stop.set()
        thread.join(10)
    line = runner.wait_log("WARNING refusing the failed-version record.*")
    assert "newer than any configuration this host read" in line and "delete the node" in line, line
    assert not runner.has("the newest configuration is the version that failed")
    runner.stop()


SUPERSCRIPT_TWOS = "\u00b2" * 10  # str.isdigit() says yes, int() says no


def test_sequence_names_with_digits_that_are_not_ascii_are_ignored(zk_server, zk, zk_base, tmp_path):
    """A child named lock-²²²²²²²²²² (or member-..., or a cron tick named so) is no sequence node:
    the runners, `elect`, `is-leader` and `cron` leave it out. Before: ValueError, exit 1."""
    lock = zk_base + "/lock"
    holder = Zkherd(["run", "--zk", zk_server.hosts, "--lock", lock, "--", "sh", "-c", SERVE], tmp_path / "h.log")
    holder.wait_log("started child")
    zk.create(lock + "/lock-" + SUPERSCRIPT_TWOS, b"x")
    zk.create(lock + "/run-" + SUPERSCRIPT_TWOS, b"x")
    standby = Zkherd(["run", "--zk", zk_server.hosts, "--lock", lock, "--", "sh", "-c", SERVE], tmp_path / "s.log")
    standby.wait_log("queued for lock")
    holder.stop()
    standby.wait_log("started child", timeout=20)
    assert not holder.has("Traceback") and not standby.has("Traceback"), standby.log()[-3000:]
    standby.stop()

    election = zk_base + "/pool"
    zk.create(election + "/member-" + SUPERSCRIPT_TWOS, b"squatter", makepath=True)
    member = Zkherd(["elect", "--zk", zk_server.hosts, "--election", election, "--id", "h0"], tmp_path / "e.log")
    member.wait_log("this member leads the pool|Traceback")
    assert not member.has("Traceback"), member.log()[-3000:]
    leader = subprocess.run([sys.executable, "-m", "zkherd", "is-leader", "--zk", zk_server.hosts, "--election",
                             election, "--id", "h0"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert leader.returncode == 0, leader.stderr
    ticks = election + "/ticks/tick-job"
    zk.create(ticks + "/" + SUPERSCRIPT_TWOS, b"x", makepath=True)
    env = dict(os.environ, ZKHERD_RUN_DIR=str(run_dir(tmp_path)))
    job = subprocess.run([sys.executable, "-m", "zkherd", "cron", "--zk", zk_server.hosts, "--election", election,
                          "--id", "h0", "--name", "tick-job", "--", "true"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert job.returncode == 0 and "Traceback" not in job.stderr, job.stderr
    assert "running the job" in job.stderr
    member.stop()


def run_dir(tmp_path):
    path = tmp_path / "run"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def received(server, session):
    """How many requests the server received from *session* (0x...), from its `cons` listing."""
    for line in server.four_letter("cons").splitlines():
        if "sid=%s," % session in line:
            return int(re.search(r"recved=(\d+)", line).group(1))
    raise AssertionError("no connection of session %s in cons" % session)


def test_many_foreign_nodes_give_one_alert_and_no_walk_per_look(zk_server, zk, zk_base, tmp_path):
    """200 persistent node pairs ahead in a lock (the review's alert storm), and 200 more between
    the holder and a waiter: each runner runs its alert command once, logs a line, and a look at
    the line after the first costs a few requests, not one per foreign node. Before: 400 alert
    commands at once per runner, 400 WARNING lines, and each look walked the line one round trip
    per node."""
    lock, alerts = zk_base + "/lock", tmp_path / "alerts"
    zk.ensure_path(lock)

    def squat(first):
        txn = zk.transaction()
        for i in range(first, first + 200):
            txn.create("%s/lock-%010d" % (lock, i), b"x")
            txn.create("%s/run-%010d" % (lock, i), b"x")
        assert not any(isinstance(r, Exception) for r in txn.commit())

    def runner(name):
        return Zkherd(["run", "-v", "--zk", zk_server.hosts, "--lock", lock, "--alert",
                       "echo \"%s $ZKHERD_ALERT $ZKHERD_ALERT_MESSAGE\" >> %s" % (name, alerts), "--",
                       "sh", "-c", SERVE], tmp_path / ("%s.log" % name))

    squat(0)
    holder = runner("holder")
    holder.wait_log("started child", timeout=60)
    ahead = standby_node(holder)  # lock-0000000400: the server's sequence counter went past the squat
    squat(500)
    standby = runner("standby")
    standby.wait_log("lock: looked at the line .*waiting_for=%s" % ahead.rsplit("/", 1)[1])
    # every foreign node was seen before the child started (holder) or the wait began (standby)
    for one in (holder, standby):
        assert one.log().count("running the alert command") == 1, one.log()[-3000:]
        assert len(re.findall("WARNING foreign nodes", one.log())) == 1, one.log()[-3000:]
    wait_for(lambda: alerts.exists() and len(alerts.read_text().splitlines()) == 2, timeout=15)
    assert "holder foreign-lock-node 400 foreign nodes" in alerts.read_text(), alerts.read_text()
    assert "standby foreign-lock-node 800 foreign nodes" in alerts.read_text(), alerts.read_text()

    # five more looks by the standby (its watch is on the holder's lock- node): a few requests each
    session = standby.wait_log(r"connected to ZooKeeper .*session=(0x[0-9a-f]+)")
    before, looks = received(zk_server, session), standby.log().count("lock: looked at the line")
    for i in range(5):
        zk.set(ahead, b"touched %d" % i)
        standby.wait_log("lock: looked at the line", count=looks + i + 1)
    assert received(zk_server, session) - before < 100, "a look costs a request per foreign node"
    # a new foreign node: logged, but no second alert within the rate limit
    zk.create("%s/lock-%010d" % (lock, 700), b"x")
    zk.set(ahead, b"touched again")
    standby.wait_log("WARNING foreign nodes .*lock-0000000700")
    assert standby.log().count("running the alert command") == 1
    holder.stop()
    standby.wait_log("started child", timeout=20)
    standby.stop()


@pytest.mark.parametrize("which", ["lock", "rolling-lock"])
def test_a_lost_reply_while_leaving_a_lost_place_is_retried(zk_server, zk, zk_base, fault_proxy, tmp_path, which):
    """A waiter whose lock- node is deleted by hand leaves the line (deletes what is left of its
    nodes) and queues again; the reply to that delete is lost. The runner tries again once
    connected and gets the lock later. Before: ConnectionLoss escaped the handler, exit 1."""
    proxy = fault_proxy()
    lock = zk_base + "/lock"
    if which == "lock":
        holder = Zkherd(["run", "--zk", zk_server.hosts, "--lock", lock, "--", "sh", "-c", SERVE], tmp_path / "h.log")
        holder.wait_log("started child")
        waiter = Zkherd(["run", "--zk", proxy.hosts, "--session-timeout", "6", "--lock", lock, "--",
                         "sh", "-c", SERVE], tmp_path / "w.log")
        node = standby_node(waiter)
    else:
        znode, conf = zk_base + "/conf", tmp_path / "conf"
        zk.create(znode, b"v1")
        waiter = Zkherd(["run", "--zk", proxy.hosts, "--session-timeout", "6", "--change-delay", "0.1",
                         "--mirror", "%s=%s" % (conf, znode), "--rolling-lock", lock, "--", "sh", "-c", SERVE],
                        tmp_path / "w.log")
        waiter.wait_log("started child")
        held = [zk.create(lock + "/" + prefix, ephemeral=True, sequence=True, makepath=True)
                for prefix in ("lock-", "run-")]
        zk.set(znode, b"v2")
        waiter.wait_log("waiting for the rolling lock")
        node = next(lock + "/" + n for n in sorted(zk.get_children(lock))
                    if n.startswith("lock-") and lock + "/" + n not in held)
    proxy.lose_reply("multi", nth=1)
    zk.delete(node)
    proxy.wait_fired(1, timeout=20)
    if which == "lock":
        waiter.wait_log("queued for lock", count=2, timeout=20)
        holder.stop()
    else:
        for one in held:
            zk.delete(one)
        wait_for(lambda: conf.read_bytes() == b"v2" or waiter.proc.poll() is not None, timeout=30)
    waiter.wait_log("started child", count=2 if which == "rolling-lock" else 1, timeout=30)
    assert waiter.proc.poll() is None and not waiter.has("Traceback"), waiter.log()[-3000:]
    waiter.stop()
