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
    # A generous export slack: CI machines are slow, and other tests ran before.
    options = harness.Options(seed=SEED, duration=DURATION, work=tmp_path / "chaos", slack=8.0)
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
    first = schedule.make_plan(7, 600, services, members, 3.0)
    assert [f.as_dict() for f in first] == [f.as_dict() for f in schedule.make_plan(7, 600, services, members, 3.0)]
    assert [f.as_dict() for f in first] != [f.as_dict() for f in schedule.make_plan(8, 600, services, members, 3.0)]
    zk = [f for f in first if f.kind == "zk"]
    assert zk[0].target == "leader"
    for earlier, later in zip(zk, zk[1:]):  # one ZooKeeper server down at a time
        assert later.at >= earlier.at + earlier.params["down_for"] + schedule.ZK_RECOVERY
    short = schedule.counts(schedule.make_plan(SEED, DURATION, services, members, 3.0))
    assert set(short) == set(schedule.INTERVALS)


def test_mirrored_versions_are_whole_or_nothing():
    data = cluster.config_content(12, True)
    assert cluster.parse_config(data) == (12, True)
    assert cluster.parse_config(cluster.config_content(3, False)) == (3, False)
    assert cluster.parse_config(data[:-1]) is None and cluster.parse_config(data[:4096]) is None
    assert cluster.parse_config(data.replace(b"kind=good", b"kind=bad")) is None
