"""Adversarial review of planned maintenance (issue 16): races between `zkherd drain` and a runner
that is about to queue, hostile nodes in the lock's line and in the answers folder, --slots N,
a drained runner across a session expiry. Real ZooKeeper, real runners."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.integration.test_drain import REPO, RUNNERS, line_ids, runner, zkherd
from tests.support.runner import exclusive_child, overlaps, starts, wait_starts
from tests.support.zkutil import wait_for


@pytest.fixture(autouse=True)
def stop_runners(zk_base):  # noqa: ARG001  # stopped before the base is deleted
    yield
    while RUNNERS:
        RUNNERS.pop().stop()


def test_hostile_holder_json_in_the_line_does_not_break_drain(zk_server, zk, zk_base, tmp_path):
    """A node in the lock's line whose JSON "id" is a list or an object (hand-made, or a hostile
    client): `zkherd drain` must still wait for the runner's answer, not exit 70 "a bug in zkherd"."""
    hosts, work, lock = zk_server.hosts + zk_base, tmp_path / "w", zk_base + "/lock"
    holder = runner(tmp_path, hosts, "a", "--lock", "/lock", "--", *exclusive_child(work, name="a"))
    wait_starts(work, 1)
    zk.create(lock + "/lock-", b'{"id": ["x"]}', sequence=True)  # persistent, another client's
    zk.create(lock + "/lock-", b'{"id": {"y": 1}}', sequence=True)
    code, out, err = zkherd("--zk", hosts, "drain", "/lock", "--id", "a", "--timeout", "10")
    assert code == 0, (code, out, err)
    holder.wait_log(r"-> drained")


def test_drain_never_reports_drained_while_the_runner_is_about_to_hold(
        zk_server, zk, zk_base, tmp_path, fault_proxy):
    """b holds; a (slow link: +0.3 s each way) is drained. The operator undrains a and drains it again
    while a has looked at its flag (none) and is on its way to queue: `zkherd drain` says "drained a
    (no node of it in the lock's line)" at once. The operator then stops b: a's queue request lands
    on an empty line, a takes the lock and starts its child although its flag is set and drain said
    it was drained."""
    proxy = fault_proxy()
    hosts, work = proxy.hosts + zk_base, tmp_path / "w"
    direct = zk_server.hosts + zk_base
    b = runner(tmp_path, direct, "b", "--lock", "/lock", "--", *exclusive_child(work, name="b"))
    wait_starts(work, 1)
    a = runner(tmp_path, hosts, "a", "--lock", "/lock", "--", *exclusive_child(work, name="a"))
    a.wait_log("queued for lock")
    assert zkherd("--zk", direct, "drain", "/lock", "--id", "a", "--timeout", "10")[0] == 0
    a.wait_log(r"-> drained")
    proxy.delay(0.3)
    time.sleep(0.5)
    assert zkherd("--zk", direct, "undrain", "/lock", "--id", "a")[0] == 0
    time.sleep(0.6)  # a's look at the flag has reached the server (no flag), its queue request has not
    code, out, err = zkherd("--zk", direct, "drain", "/lock", "--id", "a", "--timeout", "20")
    assert code == 0, err
    b.stop()  # maintenance of b: a was reported drained, so nobody should take over
    time.sleep(3)  # a takeover comes within milliseconds of b's nodes going
    assert [s for s in starts(work) if " a " in s] == [], (out, starts(work))


def test_drain_with_slots_hands_over_one_slot(zk_server, zk, zk_base, tmp_path):
    hosts, work, lock = zk_server.hosts + zk_base, tmp_path / "w", zk_base + "/lock"
    for name in ("a", "b"):
        runner(tmp_path, hosts, name, "--lock", "/lock", "--slots", "2", "--",
               *exclusive_child(work, slots=2, name=name))
    wait_starts(work, 2)
    c = runner(tmp_path, hosts, "c", "--lock", "/lock", "--slots", "2", "--",
               *exclusive_child(work, slots=2, name="c"))
    c.wait_log("queued for lock")
    code, out, err = zkherd("--zk", hosts, "drain", "/lock", "--id", "a", "--timeout", "10")
    assert code == 0, err
    wait_starts(work, 3)
    assert " c " in starts(work)[2]
    assert line_ids(zk, lock) == {"b", "c"}
    time.sleep(1)
    assert overlaps(work) == [] and len(starts(work)) == 3


def test_a_drained_runner_across_a_session_expiry(zk_server, zk, zk_base, tmp_path, fault_proxy):
    """Drained, its session expires (watches gone with it) and the operator undrains meanwhile:
    with the new session the runner must read the flag again and queue; drained again, it answers
    again and `zkherd drain` sees the answer."""
    proxy = fault_proxy()
    hosts, work, lock = proxy.hosts + zk_base, tmp_path / "w", zk_base + "/lock"
    direct = zk_server.hosts + zk_base
    # a shorter session than runner()'s 10 s: the expiry below is the fault, not its length
    a = runner(tmp_path, hosts, "a", "--session-timeout", "4", "--lock", "/lock", "--",
               *exclusive_child(work, name="a"))
    wait_starts(work, 1)
    assert zkherd("--zk", direct, "drain", "/lock", "--id", "a", "--timeout", "10")[0] == 0
    a.wait_log(r"-> drained")
    answers = zk_base + "/zkherd/drained/%2Flock"
    wait_for(lambda: zk.exists(answers + "/a") is not None, timeout=10)
    proxy.blackhole()
    wait_for(lambda: zk.exists(answers + "/a") is None, timeout=25)  # the session expired on the server
    assert zkherd("--zk", direct, "undrain", "/lock", "--id", "a")[0] == 0
    proxy.reset_all()
    proxy.heal()
    a.wait_log("session expired|a new session", timeout=30)
    wait_starts(work, 2, timeout=30)
    assert line_ids(zk, lock) == {"a"}
    # drained again while the flag's watch is the new session's
    code, out, err = zkherd("--zk", direct, "drain", "/lock", "--id", "a", "--timeout", "10")
    assert code == 0, err
    wait_for(lambda: zk.exists(answers + "/a") is not None, timeout=10)
    assert line_ids(zk, lock) == set() and overlaps(work) == []


def test_a_planted_answer_node_makes_drain_say_drained_while_the_holder_runs(
        zk_server, zk, zk_base, tmp_path, fault_proxy):
    """An answer node under /zkherd/drained made by another client (persistent, not the runner's
    ephemeral): `zkherd drain` takes it as the runner's word while the holder, cut off from
    ZooKeeper, still holds the lock and runs its child."""
    proxy = fault_proxy()
    hosts, work = proxy.hosts + zk_base, tmp_path / "w"
    direct = zk_server.hosts + zk_base
    a = runner(tmp_path, hosts, "a", "--lock", "/lock", "--", *exclusive_child(work, name="a"))
    wait_starts(work, 1)
    proxy.blackhole()  # a does not see the flag for now
    assert zkherd("--zk", direct, "drain", "/lock", "--id", "a", "--no-wait")[0] == 0
    zk.create(zk_base + "/zkherd/drained/%2Flock/a", json.dumps({"id": "a"}).encode(), makepath=True)
    code, out, err = zkherd("--zk", direct, "drain", "/lock", "--id", "a", "--timeout", "2")
    running = a.child_pid is not None and a.proc.poll() is None and "a" in line_ids(zk, zk_base + "/lock")
    proxy.heal()
    assert not (code == 0 and running), "drain said %r while a still held the lock" % out


def test_drain_of_a_paused_rolling_lock_holder_does_not_block_the_farm_rollout(zk_server, zk, zk_base, tmp_path):
    """h0 holds /lock and is paused on a failed version (it keeps /roll). The operator drains h0 for
    maintenance: its child stops and /lock goes to nobody. A newer, good version is pushed to the farm
    meanwhile: h1 (not drained) has to be able to roll it out; a drained h0 must not sit on /roll
    (phase "applying" for a child it will not start) for the whole maintenance."""
    from tests.integration.test_status import status_json

    znode, conf0, conf1 = zk_base + "/conf", tmp_path / "conf0", tmp_path / "conf1"
    zk.create(znode, b"good 1")
    common = ("--change-delay", "0.1", "--rolling-lock", "/roll", "--health-delay", "0.3",
              "--health-interval", "0.1", "--health-fall", "1")
    h0 = runner(tmp_path, zk_server.hosts + zk_base, "h0", "--lock", "/lock", "--mirror", "%s=/conf" % conf0,
                "--health", "grep -q good %s" % conf0, *common, "--", "sh", "-c", "while :; do sleep 0.1; done")
    h0.wait_log("child is healthy")
    h1 = runner(tmp_path, zk_server.hosts + zk_base, "h1", "--lock", "/lock1", "--mirror", "%s=/conf" % conf1,
                "--health", "grep -q good %s" % conf1, *common, "--", "sh", "-c", "while :; do sleep 0.1; done")
    h1.wait_log("child is healthy")
    zk.set(znode, b"bad 2")
    wait_for(lambda: h0.has("rollout paused") or h1.has("rollout paused"), timeout=30)
    paused = h0 if h0.has("rollout paused") else h1
    other = h1 if paused is h0 else h0
    lock = "/lock" if paused is h0 else "/lock1"
    code, out, err = zkherd("--zk", zk_server.hosts + zk_base, "drain", lock, "--id", "h0" if paused is h0 else "h1",
                            "--timeout", "15")
    assert code == 0, err
    paused.wait_log(r"-> drained")
    zk.set(znode, b"good 3")
    other_conf = conf1 if other is h1 else conf0

    def roll_holders():
        return [h["id"] for h in status_json(zk_server.hosts + zk_base, "/roll")[0].get("holders", [])]

    try:  # the other host applies good 3 (holds /roll for a moment), then nobody holds it
        wait_for(lambda: other_conf.read_bytes() == b"good 3" and roll_holders() == [], timeout=15, interval=0.3)
    except AssertionError:
        pass  # the assertion below says what is wrong
    holders = roll_holders()
    assert holders == [] and other_conf.read_bytes() == b"good 3", (
        "the drained, paused runner still holds /roll (%s); the other host has %r" % (holders, other_conf.read_bytes()))


def test_status_text_does_not_pass_control_characters_of_a_forged_flag_name(zk_server, zk, zk_base):
    """A flag named %1B%5B2J...%0A... (anyone who may write /zkherd/drain): `zkherd status PATH` must
    not write its escape sequences and newlines to the operator's terminal (forged lines)."""
    hosts = zk_server.hosts + zk_base
    zk.create(zk_base + "/lock", b"")
    zk.create(zk_base + "/zkherd/drain/%2Flock/%1B%5B2Jevil%0A  drained  forged", b"\xff\xfe", makepath=True)
    code, out, err = zkherd("--zk", hosts, "status", "/lock")
    assert code == 0, err
    assert "\x1b" not in out and "  drained  forged" not in out.splitlines(), out


def test_undrain_of_a_flag_with_a_child_node_is_no_bug(zk_server, zk, zk_base):
    """A hand-made child under a flag node: `zkherd undrain` says what is wrong (documented code),
    not "unexpected error (a bug in zkherd): NotEmptyError" with exit 70."""
    hosts = zk_server.hosts + zk_base
    zk.create(zk_base + "/zkherd/drain/%2Flock/a/child", b"", makepath=True)
    code, out, err = zkherd("--zk", hosts, "undrain", "/lock", "--id", "a")
    assert code != 70 and "a bug in zkherd" not in err, (code, err)
    assert code == 65 and "child nodes" in err, (code, err)  # refused, documented; the flag stays
    assert zk.exists(zk_base + "/zkherd/drain/%2Flock/a") is not None


def test_an_unwritable_answer_folder_does_not_kill_a_registration_drain(zk_server, zk, zk_base, tmp_path):
    """The answers' folder of a path made read-only (an ACL by the operator, or anyone who may create
    under /zkherd first): draining a registration must leave the child running (the issue: "the
    child keeps running"); the runner must not exit 77 and take its child with it."""
    from kazoo.security import make_acl

    hosts, services = zk_server.hosts + zk_base, zk_base + "/svc"
    zk.create(services)
    zk.ensure_path(zk_base + "/zkherd/drained")
    zk.create(zk_base + "/zkherd/drained/%2Fsvc%2Fnode-", b"", acl=[make_acl("world", "anyone", read=True)])
    service = runner(tmp_path, hosts, "r", "--register", "/svc/node-", "--data", "host-r:80", "--",
                     "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done")
    service.wait_log("registered")
    service.wait_log("started child")  # "registered" can come first under load
    child = service.child_pid
    code, out, err = zkherd("--zk", hosts, "drain", "/svc/node-", "--id", "r", "--timeout", "2")
    time.sleep(1)
    assert service.proc.poll() is None and os.path.exists("/proc/%d" % child), (
        "runner exited %s; drain: %s %s %s" % (service.proc.poll(), code, out, err))
    assert code == 75 and "no answer" in err, (code, out, err)
    service.wait_log("cannot write our drain answer", timeout=10)
    wait_for(lambda: not zk.get_children(services), timeout=10)  # out of discovery all the same


def test_a_planted_answer_with_a_child_does_not_block_undrain(zk_server, zk, zk_base, tmp_path):
    """A persistent node with a child at the runner's answer path (hand-made, or hostile): the runner
    answers NodeExists and takes the node for its own; at undrain it deletes it (NotEmpty) - it must
    still queue again."""
    hosts, work, lock = zk_server.hosts + zk_base, tmp_path / "w", zk_base + "/lock"
    zk.create(zk_base + "/zkherd/drained/%2Flock/a/x", b"", makepath=True)
    a = runner(tmp_path, hosts, "a", "--lock", "/lock", "--", *exclusive_child(work, name="a"))
    wait_starts(work, 1)
    zkherd("--zk", hosts, "drain", "/lock", "--id", "a", "--timeout", "2")
    a.wait_log(r"-> drained")
    assert a.has("not ours is at our answer")
    assert zkherd("--zk", hosts, "undrain", "/lock", "--id", "a")[0] == 0
    wait_starts(work, 2, timeout=10)
    assert line_ids(zk, lock) == {"a"}
    assert zk.exists(zk_base + "/zkherd/drained/%2Flock/a/x") is not None  # someone else's: left alone


def test_flag_set_during_a_short_partition_is_seen_after_the_reconnect(zk_server, zk, zk_base, tmp_path,
                                                                       fault_proxy):
    """The holder is cut off for 1 s (same session afterwards) while the flag is made: the watch kazoo
    sends again on the reconnect must bring the drain; the standby takes over, no overlap."""
    proxy = fault_proxy()
    hosts, work = proxy.hosts + zk_base, tmp_path / "w"
    direct = zk_server.hosts + zk_base
    a = runner(tmp_path, hosts, "a", "--lock", "/lock", "--", *exclusive_child(work, name="a"))
    wait_starts(work, 1)
    b = runner(tmp_path, direct, "b", "--lock", "/lock", "--", *exclusive_child(work, name="b"))
    b.wait_log("queued for lock")
    proxy.blackhole()
    assert zkherd("--zk", direct, "drain", "/lock", "--id", "a", "--no-wait")[0] == 0
    time.sleep(1.0)
    proxy.heal()
    code, out, err = zkherd("--zk", direct, "drain", "/lock", "--id", "a", "--timeout", "10")
    assert code == 0, err
    wait_starts(work, 2)
    assert " b " in starts(work)[1] and overlaps(work) == []
    assert not a.has("session expired")


def test_drain_handover_with_a_slow_daemonized_child_never_overlaps(zk_server, zk, zk_base, tmp_path):
    """The holder's child ignores TERM in a setsid grandchild (only containment ends it): drain hands
    over only once the whole tree is gone."""
    hosts, work = zk_server.hosts + zk_base, tmp_path / "w"
    runner(tmp_path, hosts, "a", "--lock", "/lock", "--stop-timeout", "1", "--",
           *exclusive_child(work, name="a", daemon=True))
    wait_starts(work, 1)
    b = runner(tmp_path, hosts, "b", "--lock", "/lock", "--", *exclusive_child(work, name="b"))
    b.wait_log("queued for lock")
    code, out, err = zkherd("--zk", hosts, "drain", "/lock", "--id", "a", "--timeout", "10")
    assert code == 0, err
    wait_starts(work, 2)
    time.sleep(0.5)
    assert overlaps(work) == [] and " b " in starts(work)[1]


def test_lost_reply_on_the_runners_answer(zk_server, zk, zk_base, tmp_path, fault_proxy):
    """The runner's answer create is committed but its reply lost: it must count the node as its own
    (same session) and `zkherd drain` must see it; undrain must remove it."""
    proxy = fault_proxy()
    hosts, work = proxy.hosts + zk_base, tmp_path / "w"
    direct = zk_server.hosts + zk_base
    a = runner(tmp_path, hosts, "a", "--register", "/svc/n-", "--data", "x", "--",
               *exclusive_child(work, name="a"))
    a.wait_log("registered")
    proxy.lose_reply("create", nth=1)
    code, out, err = zkherd("--zk", direct, "drain", "/svc/n-", "--id", "a", "--timeout", "10")
    assert code == 0 and "answered" in out, (code, out, err)
    assert proxy.fired >= 1
    assert not a.has("another runner answers")
    assert zkherd("--zk", direct, "undrain", "/svc/n-", "--id", "a")[0] == 0
    wait_for(lambda: zk.exists(zk_base + "/zkherd/drained/%2Fsvc%2Fn-/a") is None, timeout=10)
    assert len(starts(work)) == 1 and a.proc.poll() is None


def test_a_host_drained_while_waiting_for_the_rolling_lock_does_not_take_it_later(
        zk_server, zk, zk_base, tmp_path):
    """A farm-wide rollout is under way: h0 applies (holds /roll), h1 waits for /roll. The operator
    drains h1 (maintenance). Once h0 is done, h1 must not take /roll and sit on it (phase applying
    for a child that will not start) until undrained: the next push must reach h0."""
    from tests.integration.test_status import status_json

    znode = zk_base + "/conf"
    zk.create(znode, b"good 1")
    confs, hosts_ = {}, {}
    for name in ("h0", "h1"):
        confs[name] = tmp_path / ("conf-" + name)
        hosts_[name] = runner(tmp_path, zk_server.hosts + zk_base, name, "--lock", "/lock-" + name, "--mirror",
                              "%s=/conf" % confs[name], "--health", "grep -q good %s" % confs[name],
                              "--change-delay", "0.1", "--rolling-lock", "/roll", "--health-delay", "3",
                              "--health-interval", "0.1", "--", "sh", "-c", "while :; do sleep 0.1; done")
    for one in hosts_.values():
        one.wait_log("child is healthy", timeout=20)
    zk.set(znode, b"good 2")
    wait_for(lambda: any(one.has("rolling lock acquired") for one in hosts_.values()), timeout=15)
    first = next(name for name, one in hosts_.items() if one.has("rolling lock acquired"))
    second = "h1" if first == "h0" else "h0"
    assert hosts_[second].has("waiting for the rolling lock") or hosts_[second].wait_log(
        "waiting for the rolling lock", timeout=5) is not False
    code, out, err = zkherd("--zk", zk_server.hosts + zk_base, "drain", "/lock-" + second, "--id", second,
                            "--timeout", "10")
    assert code == 0, err
    hosts_[first].wait_log("rolling lock released", timeout=20)
    hosts_[second].wait_log("leaving the rolling lock|rolling lock acquired", timeout=10)
    time.sleep(0.5)  # a rolling lock taken after the release would show by now
    holders = [h["id"] for h in status_json(zk_server.hosts + zk_base, "/roll")[0].get("holders", [])]
    zk.set(znode, b"good 3")
    try:
        wait_for(lambda: confs[first].read_bytes() == b"good 3", timeout=15)
    except AssertionError:
        pass  # the assertion below says what is wrong
    assert holders == [] and confs[first].read_bytes() == b"good 3", (
        "drained %s holds /roll: %s; %s has %r" % (second, holders, first, confs[first].read_bytes()))


def test_undrained_meanwhile_ends_the_wait(zk_server, zk, zk_base, tmp_path):
    """Someone undrains while `drain` waits for an answer that will not come: `drain` says so and
    exits 75 at once, not after --timeout."""
    import subprocess
    import sys

    hosts = zk_server.hosts + zk_base
    zk.create(zk_base + "/svc")
    waiting = subprocess.Popen([sys.executable, "-m", "zkherd", "--zk", hosts, "drain", "/svc/n-", "--id", "ghost",
                                "--timeout", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=REPO)
    wait_for(lambda: zk.exists(zk_base + "/zkherd/drain/%2Fsvc%2Fn-/ghost") is not None, timeout=15)
    started = time.monotonic()
    assert zkherd("--zk", hosts, "undrain", "/svc/n-", "--id", "ghost")[0] == 0
    out, err = waiting.communicate(timeout=20)
    assert waiting.returncode == 75 and "undrained meanwhile" in err, (waiting.returncode, out, err)
    assert time.monotonic() - started < 10


def test_an_unknown_id_on_an_empty_lock_waits_until_the_timeout(zk_server, zk, zk_base):
    """docs/operations.md: on an empty line nothing but the runner's answer counts (75)."""
    hosts = zk_server.hosts + zk_base
    zk.create(zk_base + "/lock")
    code, out, err = zkherd("--zk", hosts, "drain", "/lock", "--id", "nobody", "--timeout", "1")
    assert code == 75 and "no answer" in err, (code, out, err)


def test_drain_echoes_a_hostile_id_without_control_characters(zk_server, zk, zk_base):
    hosts = zk_server.hosts + zk_base
    code, out, err = zkherd("--zk", hosts, "drain", "/lock", "--id", "a\x1b[2J\nforged", "--no-wait")
    assert code == 0 and "\x1b" not in out and out.count("\n") == 1, (code, out)
    code, out, err = zkherd("--zk", hosts, "undrain", "/lock", "--id", "a\x1b[2J\nforged")
    assert code == 0 and "\x1b" not in out and out.count("\n") == 1, (code, out)


def test_holder_id_treats_lock_node_data_as_untrusted():
    from zkherd.common.drainflags import holder_id

    assert holder_id(b'{"id": "a", "host": "h"}') == "a"
    assert holder_id(b'{"id": ["x"]}') is None and holder_id(b'{"id": {"y": 1}}') is None
    assert holder_id(b"old-style-id") == "old-style-id" and holder_id(b"[1]") == "[1]"
