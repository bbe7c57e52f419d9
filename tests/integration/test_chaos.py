"""The short chaos run of `make test`: everything zkherd does, together, against a 3-server
ensemble while faults happen (partitions, SIGKILLs, ZooKeeper servers crashing, good and bad
config pushes, farm edits), with every invariant checked all along (tests/chaos, and
docs/reliability.md for the long run, `make chaos`). A failure prints the report, whose
`reproduce:` line runs the same fault schedule again."""

from __future__ import annotations

import sys

import pytest

from tests.chaos import cluster, harness, report, schedule

SEED = 12
DURATION = 45.0


@pytest.mark.slow
def test_short_chaos_run(tmp_path):
    # A generous export slack: CI machines are slow, and other tests ran before. Two daemon and two
    # lockroll services (three in the long run): a holder and a standby that must not overlap it,
    # one daemon per way of containment, two fewer runners on a busy machine.
    options = harness.Options(seed=SEED, duration=DURATION, work=tmp_path / "chaos", slack=8.0, daemons=2,
                              lockrolls=2)
    result = harness.run(options, out=sys.stderr)
    text = report.text(result)
    print(text)
    assert result["violations"] == [], text
    applied = result["faults"]["applied"]
    assert all(applied.get(kind) for kind in ("partition", "kill", "zk", "push", "edit")), text
    assert sum(applied.values()) >= 40, text
    assert result["checks_total"] > 1000, text


def test_the_seed_fixes_the_fault_schedule():
    services, members = harness.Chaos.service_names(), harness.Chaos.member_names()
    timeouts = harness.Options(seed=7, duration=600).timeouts()

    def plan(seed):
        return [f.as_dict() for f in schedule.make_plan(seed, 600, services, members, timeouts)]

    first = schedule.make_plan(7, 600, services, members, timeouts)
    assert [f.as_dict() for f in first] == plan(7)
    assert [f.as_dict() for f in first] != plan(8)
    zk = [f for f in first if f.kind == "zk"]
    assert zk[0].target == "leader"
    for earlier, later in zip(zk, zk[1:]):  # one ZooKeeper server down at a time
        assert later.at >= earlier.at + earlier.params["down_for"] + schedule.ZK_RECOVERY
    # partitions last 0.2-0.8 or 1.2-4 of the target's own session timeout (10 s for the daemons)
    for fault in (f for f in first if f.kind == "partition"):
        timeout = timeouts[fault.target] if fault.target in timeouts else timeouts[fault.target.split(":")[0] + "-0"]
        assert 0.2 * timeout <= fault.params["for"] <= 4 * timeout
    assert any(f.params["for"] > 12 for f in first if f.kind == "partition" and f.target.startswith("daemon"))
    assert {f.target for f in first if f.kind == "unlock"} == {"mutex", "pair", "daemon", "lockroll"}
    short = schedule.counts(schedule.make_plan(SEED, DURATION, services, members, timeouts))
    assert set(short) == set(schedule.INTERVALS)


def test_mirrored_versions_are_whole_or_nothing():
    data = cluster.config_content(12, True)
    assert cluster.parse_config(data) == (12, True)
    assert cluster.parse_config(cluster.config_content(3, False)) == (3, False)
    assert cluster.parse_config(data[:-1]) is None and cluster.parse_config(data[:4096]) is None
    assert cluster.parse_config(data.replace(b"kind=good", b"kind=bad")) is None
