"""Creates and deletes whose reply is lost (issue 13, item 2). The fault proxy forwards the
request, the server applies it, and the connection is cut before the reply: the runner only sees
a lost connection, reconnects with the same session and tries again. A retry must find what the
first try made - the lock's lock-/run- pair, the rolling lock's pair, the registration node, the
election member - and never leave a node of its own live session behind (a phantom that nobody
deletes: it holds a slot of the lock, or leads the pool, until the session ends)."""

from __future__ import annotations

import os
import re
import signal

import pytest

from tests.support.runner import Zkherd, exclusive_child, overlaps, starts, wait_starts
from tests.support.zkutil import wait_for

SERVE = "trap 'exit 0' TERM; while :; do sleep 0.05; done"


def session_of(runner):
    """The session id of a runner, from its log (it keeps it: the proxy lets it reconnect at once)."""
    return int(runner.wait_log(r"connected to ZooKeeper .*session=0x([0-9a-f]+)"), 16)


def owned_by(zk, folder, session):
    """The children of *folder* whose ephemeral owner is *session*."""
    found = []
    for name in zk.get_children(folder):
        stat = zk.exists(folder + "/" + name)
        if stat is not None and stat.ephemeralOwner == session:
            found.append(name)
    return sorted(found)


def lines(names):
    """{'lock-': n, 'run-': n} of a lock's children."""
    return {prefix: sum(1 for n in names if n.startswith(prefix)) for prefix in ("lock-", "run-")}


@pytest.mark.parametrize("slots", [1, 2])
def test_a_lost_reply_to_the_lock_transaction_leaves_no_phantom(
        zk_server, zk, zk_base, fault_proxy, tmp_path, slots):
    """`run --lock` (and `--slots 2`): the reply to the transaction that queues the runner is
    lost. It holds the lock (one of the slots) with the pair it made, has no second pair, and
    exactly N run; when it stops, the one waiting takes over. Before: the retry queued a second
    pair behind the first, which nobody deleted - with one slot the runner waited behind itself
    for good, with two one slot was gone."""
    proxy, lock, work = fault_proxy(), zk_base + "/lock", tmp_path / "w"

    def runner(name, hosts):
        return Zkherd(["run", "--zk", hosts, "--session-timeout", "6", "--stop-timeout", "2", "--lock", lock,
                       "--slots", str(slots), "--", *exclusive_child(work, slots=slots, name=name)],
                      tmp_path / ("%s.log" % name))

    proxy.lose_reply("multi", nth=1)
    first = runner("first", proxy.hosts)
    assert proxy.wait_fired(1, timeout=20)
    wait_starts(work, 1, timeout=20)
    others = [runner("other%d" % i, zk_server.hosts) for i in range(slots)]
    wait_starts(work, slots, timeout=20)  # N holders: first, and slots-1 others
    for one in others:
        one.wait_log("queued for lock")
    session = session_of(first)
    assert lines(owned_by(zk, lock, session)) == {"lock-": 1, "run-": 1}, zk.get_children(lock)
    assert lines(zk.get_children(lock)) == {"lock-": slots + 1, "run-": slots + 1}
    waiting = [one for one in others if not one.has("started child")]
    assert len(waiting) == 1, [one.log()[-2000:] for one in others]
    assert [line.split()[1] for line in starts(work)][0] == "first"

    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    wait_starts(work, slots + 1, timeout=20)  # the one waiting took over
    waiting[0].wait_log("started child")
    for one in others:
        one.stop()
    assert overlaps(work) == []
    assert zk.get_children(lock) == []
    for one in (first, *others):
        assert "Traceback" not in one.log(), one.log()[-3000:]


def test_a_late_answer_to_the_lock_transaction_leaves_no_phantom(zk_server, zk, zk_base, fault_proxy, tmp_path):
    """The other ambiguous outcome: the transaction is held on the way (a partition) until the
    runner's request timed out, then delivered and applied. The retry, on the same connection,
    finds the pair; the runner holds the lock with it. Before: a second pair queued behind the
    first and the runner waited behind itself for good."""
    proxy, lock, work = fault_proxy(), zk_base + "/lock", tmp_path / "w"
    proxy.before_request("multi", nth=1, then="blackhole")
    first = Zkherd(["run", "-v", "--zk", proxy.hosts, "--session-timeout", "6", "--stop-timeout", "2", "--lock", lock,
                    "--", *exclusive_child(work, name="first")], tmp_path / "first.log")
    assert proxy.wait_fired(1, timeout=20)
    first.wait_log("ZooKeeper request did not complete", timeout=20)  # it timed out, the session lives on
    proxy.heal()
    wait_starts(work, 1, timeout=20)
    one_pair_then_a_clean_handover(zk, zk_server.hosts, lock, first, work, tmp_path)
    assert zk.get_children(lock) == []


def one_pair_then_a_clean_handover(zk, hosts, lock, first, work, tmp_path):
    """*first* holds the lock with exactly one pair of its own, and hands it over to another runner
    on TERM without an overlap."""
    assert lines(owned_by(zk, lock, session_of(first))) == {"lock-": 1, "run-": 1}, zk.get_children(lock)
    assert lines(zk.get_children(lock)) == {"lock-": 1, "run-": 1}
    other = Zkherd(["run", "--zk", hosts, "--session-timeout", "6", "--lock", lock, "--",
                    *exclusive_child(work, name="other")], tmp_path / "other.log")
    other.wait_log("queued for lock")
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    wait_starts(work, 2, timeout=20)
    other.stop()
    assert overlaps(work) == []
    assert "Traceback" not in first.log()


@pytest.mark.parametrize("lost", ["acquire", "release"])
def test_a_lost_reply_to_the_rolling_lock_transaction_leaves_nothing(
        zk_server, zk, zk_base, fault_proxy, tmp_path, lost):
    """`run --mirror --rolling-lock`: the reply to the transaction that queues for the rolling
    lock (or to the one that releases it) is lost. The new files are applied, the rolling lock is
    released, and nothing is left in it. Before (acquire): the runner waited behind its own first
    pair for good, and the new version was never applied."""
    proxy = fault_proxy()
    znode, conf, roll = zk_base + "/conf", tmp_path / "conf", zk_base + "/roll"
    zk.create(znode, b"v1")
    runner = Zkherd(["run", "--zk", proxy.hosts, "--session-timeout", "6", "--change-delay", "0.1",
                     "--mirror", "%s=%s" % (conf, znode), "--rolling-lock", roll, "--", "sh", "-c", SERVE],
                    tmp_path / "r.log")
    runner.wait_log("started child")
    proxy.lose_reply("multi", nth=1 if lost == "acquire" else 2)  # one mirrored znode: no other transaction
    zk.set(znode, b"v2")
    assert proxy.wait_fired(1, timeout=20)
    wait_for(lambda: conf.read_bytes() == b"v2", timeout=30, message=lambda: runner.log()[-3000:])
    runner.wait_log("started child", count=2, timeout=20)
    wait_for(lambda: zk.exists(roll) and zk.get_children(roll) == [], timeout=20,
             message=lambda: "an empty rolling lock, have %s" % zk.get_children(roll))
    assert runner.proc.poll() is None and "Traceback" not in runner.log(), runner.log()[-3000:]
    runner.stop()


def test_a_lost_reply_to_the_registration_create_leaves_no_duplicate(zk_server, zk, zk_base, fault_proxy, tmp_path):
    """`run --register`: the reply to the create of the registration node is lost. The runner
    finds the node it made (its session's, with its data) and the child runs registered once.
    Before: a second node was made, and discovery saw the service twice until the session ended."""
    proxy, services, got = fault_proxy(), zk_base + "/services", tmp_path / "registered"
    zk.create(services)
    proxy.lose_reply("create", nth=1)
    runner = Zkherd(["run", "--zk", proxy.hosts, "--session-timeout", "6", "--register", services + "/svc-",
                     "--data", "host-a:80", "--", "sh", "-c", 'echo "$ZKHERD_REGISTERED_PATH" >> %s; %s'
                     % (got, SERVE)], tmp_path / "r.log")
    assert proxy.wait_fired(1, timeout=20)
    runner.wait_log("started child", timeout=20)
    wait_for(lambda: got.exists() and got.read_text().strip())
    registered = zk.get_children(services)
    assert len(registered) == 1, registered
    assert re.fullmatch(r"svc-\d{10}", registered[0])  # the user's name format, kept
    assert got.read_text().split() == [services + "/" + registered[0]]
    assert zk.get(services + "/" + registered[0])[0] == b"host-a:80"
    runner.stop()
    assert zk.get_children(services) == []
    assert "Traceback" not in runner.log()


@pytest.mark.parametrize("lost", ["delete", "multi"])
def test_a_lost_reply_on_release_leaves_nothing(zk_server, zk, zk_base, fault_proxy, tmp_path, lost):
    """`run --lock --register`: the holder's lock- node is deleted by hand, so it stops its child
    and removes its registration (delete) and what is left of its lock nodes (multi); the reply to
    one of them is lost. It queues again, starts its child again, registered once, with exactly
    one pair in the lock; nothing of the first round is left. Before (delete): the runner kept the
    name of the deleted registration and the second child ran unregistered."""
    proxy, lock, services, got = fault_proxy(), zk_base + "/lock", zk_base + "/services", tmp_path / "registered"
    runner = Zkherd(["run", "--zk", proxy.hosts, "--session-timeout", "6", "--stop-timeout", "2", "--lock", lock,
                     "--register", services + "/svc-", "--data", "host-a:80", "--",
                     "sh", "-c", 'echo "$ZKHERD_REGISTERED_PATH" >> %s; %s' % (got, SERVE)], tmp_path / "r.log")
    runner.wait_log("started child")
    wait_for(lambda: got.exists() and got.read_text().strip())  # the child runs (and said where it is registered)
    session = session_of(runner)
    first_place = runner.wait_log(r"lock acquired lock=\S+ node=(\S+)")
    proxy.lose_reply(lost, nth=1)
    zk.delete(first_place)
    assert proxy.wait_fired(1, timeout=20)
    runner.wait_log("started child", count=2, timeout=30)
    wait_for(lambda: got.exists() and len(got.read_text().split()) == 2)
    registered = zk.get_children(services)
    assert [services + "/" + n for n in registered] == got.read_text().split()[1:], (registered, got.read_text())
    assert owned_by(zk, services, session) == registered
    nodes = zk.get_children(lock)
    assert lines(nodes) == {"lock-": 1, "run-": 1} and owned_by(zk, lock, session) == sorted(nodes), nodes
    runner.stop()
    assert zk.get_children(services) == [] and zk.get_children(lock) == []
    assert "Traceback" not in runner.log()


def test_a_lost_reply_to_the_member_create_leaves_no_phantom(zk_server, zk, zk_base, fault_proxy, tmp_path):
    """`zkherd elect`: the reply to the create of the member node is lost. The member finds the
    node it made and leads with it; a second member follows, and leads once the first leaves.
    Before: a second node was made behind the first; the first led the pool in the member's name
    while the member itself said it did not lead, until its session ended."""
    proxy, election = fault_proxy(), zk_base + "/pool"
    zk.create(election)
    proxy.lose_reply("create", nth=1)
    first = Zkherd(["elect", "--zk", proxy.hosts, "--session-timeout", "6", "--election", election, "--id", "hostA"],
                   tmp_path / "a.log")
    assert proxy.wait_fired(1, timeout=20)
    first.wait_log("this member leads the pool", timeout=20)
    second = Zkherd(["elect", "--zk", zk_server.hosts, "--session-timeout", "6", "--election", election,
                     "--id", "hostB"], tmp_path / "b.log")
    second.wait_log("this member does not lead the pool")
    members = zk.get_children(election)
    assert sorted(zk.get(election + "/" + n)[0] for n in members) == [b"hostA", b"hostB"], members
    assert len(owned_by(zk, election, session_of(first))) == 1
    assert not first.has("this member does not lead")
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    second.wait_log("this member leads the pool", timeout=10)
    second.stop()
    assert zk.get_children(election) == []
    for one in (first, second):
        assert "Traceback" not in one.log(), one.log()[-3000:]


@pytest.mark.slow
def test_a_lost_reply_in_an_ensemble_is_found_from_another_server(zk_ensemble, make_zk, fault_proxy, tmp_path):
    """3 servers, one proxy in front of each: the reply to the lock transaction is lost and the
    server that applied it takes no new connection, so the runner goes on through another one. The
    sync before the look makes the pair visible there: one pair, the runner holds the lock."""
    proxies = [fault_proxy(server.hosts) for server in zk_ensemble.servers]
    for proxy in proxies:
        proxy.lose_reply("multi", nth=1, then="drop_new")
    lock, work = "/lost-reply-ensemble-%d" % os.getpid(), tmp_path / "w"
    zk = make_zk(zk_ensemble.hosts)
    try:
        first = Zkherd(["run", "--zk", ",".join(p.hosts for p in proxies), "--session-timeout", "6",
                        "--stop-timeout", "2", "--lock", lock, "--", *exclusive_child(work, name="first")],
                       tmp_path / "first.log")
        wait_for(lambda: any(p.fired for p in proxies), timeout=20)
        for proxy in proxies:
            if not proxy.fired:
                proxy.lose_reply(0x7FFF)  # disarmed: a type no client sends
        first.wait_log("contact with ZooKeeper is back .*same_session=True", timeout=20)
        wait_starts(work, 1, timeout=20)
        zk.sync(lock)
        one_pair_then_a_clean_handover(zk, zk_ensemble.hosts, lock, first, work, tmp_path)
    finally:
        zk.delete(lock, recursive=True)
