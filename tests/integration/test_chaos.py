"""The short chaos run of `make test`: everything zkherd does, together, against a 3-server
ensemble while faults happen (partitions, SIGKILLs, ZooKeeper servers crashing and frozen, a
whole-ensemble outage, lost replies, good and bad config pushes, tree pushes that change shape,
hand-deleted pool members, registrations and tick markers, farm edits): the `quick` profile of
the wide fault model, with every invariant checked all along (tests/chaos, and
docs/reliability.md for the long run, `make chaos`). A failure prints the report, whose
`reproduce:` line runs the same fault schedule again."""

from __future__ import annotations

import sys

import pytest

from tests.chaos import cluster, harness, report, schedule

SEED = 12
DURATION = 60.0
PROFILE = "quick"


@pytest.mark.slow
def test_short_chaos_run(tmp_path):
    # A generous export slack: CI machines are slow, and other tests ran before. The quick profile:
    # fewer services per group than the long run, a 20-25 s outage of the whole ensemble.
    options = harness.Options(seed=SEED, duration=DURATION, work=tmp_path / "chaos", slack=8.0, profile=PROFILE)
    result = harness.run(options, out=sys.stderr)
    text = report.text(result)
    print(text)
    assert result["violations"] == [], text
    applied = result["faults"]["applied"]
    assert all(applied.get(kind) for kind in ("partition", "kill", "zk", "push", "edit", "tree", "outage")), text
    assert sum(applied.values()) >= 30, text
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
    unlocked = {f.target for f in first if f.kind == "unlock"}
    assert unlocked <= {"mutex", "pair", "daemon", "lockroll", "slow"} and len(unlocked) >= 4
    assert [f for f in first if f.kind == "outage"], "the wide profile has whole-ensemble outages"
    for outage in (f for f in first if f.kind == "outage"):  # nothing else during one and its recovery
        end = outage.at + outage.params["down_for"] + schedule.OUTAGE_RECOVERY
        assert not [f for f in first if f.kind != "outage" and outage.at - 1 <= f.at <= end]
        assert 60 <= outage.params["down_for"] <= 180
    layout = schedule.PROFILES[PROFILE]["layout"]
    quick = harness.Options(seed=SEED, duration=DURATION, profile=PROFILE)
    short = schedule.counts(schedule.make_plan(SEED, DURATION, harness.Chaos.service_names(layout),
                                               harness.Chaos.member_names(layout), quick.timeouts(), profile=PROFILE))
    assert short.get("outage") == 1 and {"partition", "kill", "zk", "tree", "push"} <= set(short)


def test_mirrored_versions_are_whole_or_nothing():
    data = cluster.config_content(12, True)
    assert cluster.parse_config(data) == (12, True)
    assert cluster.parse_config(cluster.config_content(3, False)) == (3, False)
    assert cluster.parse_config(data[:-1]) is None and cluster.parse_config(data[:4096]) is None
    assert cluster.parse_config(data.replace(b"kind=good", b"kind=bad")) is None


def test_tree_versions_are_whole_files_and_shapes():
    files = cluster.tree_files(5, False, schedule.SHAPES[3])
    assert sorted(files) == sorted(schedule.SHAPES[3])
    first = schedule.SHAPES[3][0]
    assert cluster.parse_tree_file(first, files[first]) == (5, "bad")
    assert cluster.parse_tree_file("b", files[first]) is None  # another place's file
    assert cluster.parse_tree_file(first, files[first][:-1]) is None


def test_up_throughout_reads_the_state_history():
    class Holder:
        lock = __import__("threading").RLock()

    service = cluster.Service.__new__(cluster.Service)
    service.cluster = Holder()
    service.history = [(0.0, "down"), (1.0, "up"), (5.0, "unknown"), (6.0, "up")]
    assert service.up_throughout(1.5, 4.9)
    assert not service.up_throughout(0.5, 2.0)  # down at the start
    assert not service.up_throughout(4.0, 5.5)  # slow links meanwhile
    assert service.up_throughout(6.0, 100.0)
