"""What steers the runner comes from ZooKeeper, which a client without the deployment's
credentials can write under an open ACL: the runner treats it as untrusted (docs/security.md,
"What the runner refuses"). A persistent node in a lock's lines is foreign - no runner holds it -
and is never waited on; a failed-version record must name a version that exists."""

from __future__ import annotations

import json
import re

from tests.support.runner import Zkherd, exclusive_child, overlaps, starts, wait_starts
from tests.support.zkutil import wait_for

SERVE = "trap 'exit 0' TERM; while :; do sleep 0.05; done"
FOREIGN = "WARNING foreign node in the lock, ignored"


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
    nodes = [re.search(r"node=(\S+)", line).group(1) for line in lines]
    assert set(nodes) <= {lock + "/lock-0000000000", lock + "/run-0000000000"}
    assert len(nodes) == len(set(nodes)) >= 1  # once per node
    assert "delete it" in lines[0] and "ACL" in lines[0]
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


def rolling_runner(hosts, znode, roll, conf, tmp_path, name):
    return Zkherd(["run", "--zk", hosts, "--session-timeout", "4", "--stop-timeout", "2", "--change-delay", "0.1",
                   "--mirror", "%s=%s" % (conf, znode), "--rolling-lock", roll, "--health", "test -s %s" % conf,
                   "--health-delay", "0.2", "--health-interval", "0.1", "--", "sh", "-c", SERVE],
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
