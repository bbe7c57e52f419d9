"""`zkherd cron` and `zkherd barrier` through lost replies and lost connections (fault proxy):
every ZooKeeper error becomes a retry or a clear message with its exit code, never a traceback,
and a create that a lost reply makes ambiguous never leaves a second node of ours (issue 13)."""

from __future__ import annotations

import signal
import time

import pytest

from tests.integration.test_election import barrier, cron, datetime_of, member, zkherd
from tests.support.procs import pid_alive
from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for


@pytest.fixture
def leader(zk_server, zk, zk_base, tmp_path):
    """h0 leads the pool zk_base/cron; the job's tick folder exists, so that claiming a tick is one
    create (no parents made first) and "the nth create" is the claim."""
    election = zk_base + "/cron"
    elect = member(zk_server.hosts, election, "h0", tmp_path)
    elect.wait_log("this member leads the pool")
    zk.ensure_path(election + "/ticks/j")
    yield election
    elect.stop()


@pytest.mark.parametrize("opcode, nth", [("get_children", 1), ("get_data", 1), ("create", 1), ("get_children", 2),
                                         ("exists", 1)])
def test_cron_runs_its_tick_through_a_lost_reply(leader, fault_proxy, tmp_path, opcode, nth):
    """Each request of a cron run in turn loses its reply (the server did it, the connection drops,
    kazoo reconnects with the same session): the run asks again and runs the job, once. Before: a
    lost reply to reading the pool or to the claim was exit 69 - after the claim, nobody ran the
    tick - and one to the look at old ticks or the leader's watch was a traceback (ConnectionLoss)."""
    proxy = fault_proxy()
    proxy.lose_reply(opcode, nth)
    runs = tmp_path / "runs"
    job = ("sh", "-c", "echo ran >> %s" % runs)
    result = zkherd(*cron(proxy.hosts, leader, "h0", *job, tick="60", extra=("--name", "j", "--timeout", "10")))
    assert proxy.fired == 1
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    assert runs.read_text().splitlines() == ["ran"]


def test_cron_waits_out_an_outage_shorter_than_its_timeout(leader, fault_proxy, tmp_path):
    """ZooKeeper stops answering for a second while the run reads the pool: it asks again within
    --timeout instead of giving up (before: exit 69 after one request's timeout, a third of the
    session timeout, and the tick was skipped)."""
    proxy = fault_proxy()
    proxy.before_request("get_children", 1, then="blackhole")
    runs = tmp_path / "runs"
    job = Zkherd(cron(proxy.hosts, leader, "h0", "sh", "-c", "echo ran >> %s" % runs,
                      extra=("--name", "j", "--timeout", "15")), tmp_path / "job.log")
    assert proxy.wait_fired()
    time.sleep(1.0)  # the outage
    proxy.heal()
    assert job.wait(20) == 0, job.log()
    assert runs.read_text().splitlines() == ["ran"]
    assert not job.has("Traceback")


def test_cron_gives_up_with_69_when_zookeeper_stops_answering(leader, fault_proxy, tmp_path):
    proxy = fault_proxy()
    proxy.before_request("get_children", 1, then="blackhole")
    start = time.monotonic()
    result = zkherd(*cron(proxy.hosts, leader, "h0", "touch", str(tmp_path / "ran"), extra=("--timeout", "2")))
    assert result.returncode == 69, result.stderr
    assert "did not answer" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - start < 10
    assert not (tmp_path / "ran").exists()


def test_cron_job_stopped_on_lost_leadership_takes_its_daemon_with_it(leader, zk, zk_server, tmp_path):
    """The job is the contained child of `zkherd run`: stopping it stops what it started with
    setsid too, and the run ends only once all of it is gone."""
    pidfile = tmp_path / "daemon.pid"
    script = "setsid sleep 300 & echo $! > %s; trap 'exit 0' TERM; while :; do sleep 0.05; done" % pidfile
    job = Zkherd(cron(zk_server.hosts, leader, "h0", "sh", "-c", script, extra=("--stop-timeout", "0.5")),
                 tmp_path / "job.log")
    job.wait_log("started child")
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10)
    daemon = int(pidfile.read_text())
    assert pid_alive(daemon)
    leader_node = min(n for n in zk.get_children(leader) if n.startswith("member-"))
    zk.delete(leader + "/" + leader_node)  # the leader's member node goes: leadership is lost
    assert job.wait(15) == 76, job.log()
    assert not pid_alive(daemon)


def test_a_fenced_job_that_ignores_term_is_killed_even_if_contact_comes_back(
        zk_server, zk_base, fault_proxy, tmp_path):
    """The fence sends the stop signal when ZooKeeper has not heard from us for too long; if
    contact comes back before its SIGKILL, the fence moves on (the session is safe again), but
    leadership was given up: the job still gets SIGKILL after --stop-timeout and the run is 76."""
    election = zk_base + "/cron"
    elect = member(zk_server.hosts, election, "h0", tmp_path)
    elect.wait_log("this member leads the pool")
    proxy = fault_proxy()
    stubborn = "trap '' TERM; while :; do sleep 0.05; done"
    job = Zkherd(["cron", "--zk", proxy.hosts, "--session-timeout", "6", "--election", election, "--id", "h0",
                  "--stop-timeout", "2", "--", "sh", "-c", stubborn], tmp_path / "job.log")
    job.wait_log("started child")
    proxy.blackhole()
    job.wait_log("no contact with ZooKeeper for too long", timeout=20)
    proxy.heal()
    assert job.wait(15) == 76, job.log()
    assert job.has("job stopped: leadership was lost")
    # SIGKILL, from the runner after --stop-timeout or from the fence before the session can expire
    # (whichever comes first: the fence's stop time is capped at 0.4 T - margin, 1.75 s here)
    assert job.has(r"child exited pid=\d+ code=137"), job.log()
    late = datetime_of(job.log(), "child exited") - datetime_of(job.log(), "stopping child")
    assert late.total_seconds() < 2 + 3, job.log()  # --stop-timeout, and slack for a loaded machine
    elect.stop()


# -- barrier ------------------------------------------------------------------------------------


def participants(zk, path):
    return [c for c in zk.get_children(path) if c.startswith("p-")]


def test_barrier_lost_reply_on_entering_leaves_no_second_node(zk, zk_base, zk_server, fault_proxy, tmp_path):
    """The reply to the participant's create is lost: it finds its own node (by its session) and
    keeps it. A second node of its own would let it pass a barrier of 2 alone; before, it gave up
    with exit 69 at the first lost reply."""
    path = zk_base + "/bar"
    zk.ensure_path(path)
    proxy = fault_proxy()
    proxy.lose_reply("create", 1)
    first = Zkherd(barrier(proxy.hosts, path, 2, "--timeout", "30"), tmp_path / "first.log")
    assert proxy.wait_fired()
    wait_for(lambda: first.has("waiting for the others") or first.proc.poll() is not None, 15)
    assert first.proc.poll() is None, first.log()
    assert len(participants(zk, path)) == 1
    second = zkherd(*barrier(zk_server.hosts, path, 2, "--timeout", "30"))
    assert second.returncode == 0, second.stderr
    assert first.wait() == 0, first.log()
    assert not first.has("Traceback")
    assert zk.get_children(path) == []


def test_barrier_survives_a_lost_connection(zk, zk_base, zk_server, fault_proxy, tmp_path):
    """ZooKeeper is cut off long enough for kazoo to drop the connection, then comes back: the
    participant goes on waiting (before: exit 69, ConnectionLoss out of a blocking request)."""
    path = zk_base + "/bar"
    proxy = fault_proxy()
    first = Zkherd(barrier(proxy.hosts, path, 2, "--timeout", "40", "--session-timeout", "3"), tmp_path / "first.log")
    wait_for(lambda: zk.exists(path) and len(participants(zk, path)) == 1, 15)
    proxy.blackhole()
    wait_for(lambda: first.has("lost contact with ZooKeeper") or first.proc.poll() is not None, 15)
    proxy.heal()
    assert first.proc.poll() is None, first.log()
    second = zkherd(*barrier(zk_server.hosts, path, 2, "--timeout", "30"))
    assert second.returncode == 0, second.stderr
    assert first.wait() == 0, first.log()


def test_barrier_stopped_by_term_leaves_at_once(zk, zk_base, zk_server, tmp_path):
    """SIGTERM while waiting: its node is removed and it exits 143 (before: killed by the signal,
    its node left until the session expired, counted by the others)."""
    path = zk_base + "/bar"
    first = Zkherd(barrier(zk_server.hosts, path, 3, "--timeout", "40", "--session-timeout", "30"),
                   tmp_path / "first.log")
    wait_for(lambda: zk.exists(path) and len(participants(zk, path)) == 1, 15)
    first.signal(signal.SIGTERM)
    assert first.wait() == 128 + signal.SIGTERM
    assert participants(zk, path) == []
