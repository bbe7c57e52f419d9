"""Leader election against a real ZooKeeper: `zkherd elect`, `is-leader`, `pool ls`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.support.runner import REPO, Zkherd
from tests.support.zkutil import wait_for


def zkherd(*args, timeout=20):
    return subprocess.run([sys.executable, "-m", "zkherd", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False)


def member(hosts, election, ident, tmp_path, session_timeout="1.5"):
    return Zkherd(["elect", "--zk", hosts, "--session-timeout", session_timeout, "--election", election,
                   "--id", ident], tmp_path / ("%s.log" % ident))


def leaders(hosts, election, ids):
    """{id: is-leader exit code} as each host would see it."""
    return {i: zkherd("is-leader", "--zk", hosts, "--election", election, "--id", i).returncode for i in ids}


def test_three_members_takeover_on_term_and_kill(zk_server, zk_base, tmp_path):
    election, ids = zk_base + "/pool", ["alpha", "beta", "gamma"]
    members = {}
    for ident in ids:
        members[ident] = member(zk_server.hosts, election, ident, tmp_path)
        members[ident].wait_log("joined the pool")
    members["alpha"].wait_log("this member leads the pool")
    assert leaders(zk_server.hosts, election, ids) == {"alpha": 0, "beta": 1, "gamma": 1}
    listing = zkherd("pool", "ls", "--zk", zk_server.hosts, "--election", election)
    assert listing.returncode == 0
    assert [line.split()[1] for line in listing.stdout.splitlines()] == ids
    assert "(leader)" in listing.stdout.splitlines()[0]

    members["alpha"].signal(signal.SIGTERM)  # a clean leave hands over at once
    assert members["alpha"].wait() == 0
    members["beta"].wait_log("this member leads the pool", timeout=5)
    assert leaders(zk_server.hosts, election, ids[1:]) == {"beta": 0, "gamma": 1}

    killed = time.monotonic()
    members["beta"].kill()  # a crash hands over once its session expires
    members["gamma"].wait_log("this member leads the pool", timeout=10)
    assert time.monotonic() - killed < 6
    assert leaders(zk_server.hosts, election, ["beta", "gamma"]) == {"beta": 1, "gamma": 0}
    members["gamma"].stop()


def test_rejoins_after_session_expiry(zk_server, zk, zk_base, fault_proxy, tmp_path):
    election = zk_base + "/pool"
    proxy = fault_proxy()
    cut = member(proxy.hosts, election, "cut", tmp_path, session_timeout="1")
    cut.wait_log("this member leads the pool")
    other = member(zk_server.hosts, election, "other", tmp_path, session_timeout="1")
    other.wait_log("joined the pool")
    proxy.blackhole()
    other.wait_log("this member leads the pool", timeout=10)
    proxy.reset_all()
    proxy.heal()
    cut.wait_log("joining the pool again", timeout=10)
    cut.wait_log("joined the pool", count=2, timeout=10)
    wait_for(lambda: len(zk.get_children(election)) == 2)
    assert leaders(zk_server.hosts, election, ["cut", "other"]) == {"cut": 1, "other": 0}
    cut.stop()
    other.stop()


def test_is_leader_answers_in_time_when_zookeeper_is_down(tmp_path):
    start = time.monotonic()
    result = zkherd("is-leader", "--zk", "127.0.0.1:1", "--election", "/pool", "--timeout", "1")
    assert result.returncode == 2
    assert time.monotonic() - start < 4
    assert "cannot connect to ZooKeeper" in result.stderr
    assert zkherd("pool", "ls", "--zk", "127.0.0.1:1", "--election", "/p", "--timeout", "1").returncode == 69
    assert zkherd("is-leader", "--zk", "127.0.0.1:1").returncode == 64  # no --election


def cron(hosts, election, ident, *command, tick="3", extra=()):
    return ["cron", "--zk", hosts, "--session-timeout", "1.5", "--election", election, "--id", ident,
            "--tick", tick, "--timeout", "3", *extra, "--", *command]


def wait_for_tick_start(tick):
    time.sleep(tick - time.time() % tick + 0.05)


def test_cron_runs_once_per_tick_on_the_leader_only(zk_server, zk_base, tmp_path):
    election, ids, runs = zk_base + "/cron", ["h0", "h1", "h2"], tmp_path / "runs"
    members = {}
    for ident in ids:  # joined in this order: h0 leads, then h1
        members[ident] = member(zk_server.hosts, election, ident, tmp_path)
        members[ident].wait_log("joined the pool")
    members["h0"].wait_log("this member leads the pool")
    job = ("sh", "-c", 'echo "$(date +%s) $ZKHERD_CRON_JOB" >> ' + str(runs))
    for tick in range(3):
        if tick or time.time() % 3 > 0.3:  # the first firing goes at once early in a tick
            wait_for_tick_start(3)
        codes = []
        for ident in ids:  # the hosts' cron starts, a fraction of a second apart
            codes.append(zkherd(*cron(zk_server.hosts, election, ident, *job, extra=("--name", "j"))).returncode)
            time.sleep(0.3)
        assert codes == [0, 0, 0]
    assert len(runs.read_text().splitlines()) == 3  # one run per tick, by the leader

    wait_for_tick_start(3)
    first = zkherd(*cron(zk_server.hosts, election, "h0", *job, extra=("--name", "j")))
    members["h0"].signal(signal.SIGTERM)  # leadership moves within the tick
    members["h1"].wait_log("this member leads the pool", timeout=5)
    again = zkherd(*cron(zk_server.hosts, election, "h1", *job, extra=("--name", "j", "-v")))
    assert first.returncode == 0 and again.returncode == 0
    assert "this tick already ran" in again.stderr
    assert len(runs.read_text().splitlines()) == 4
    for ident in ids[1:]:
        members[ident].stop()


def test_cron_job_is_stopped_when_leadership_is_lost(zk_server, zk, zk_base, fault_proxy, tmp_path):
    election = zk_base + "/cron"
    proxy = fault_proxy()
    leader = member(proxy.hosts, election, "h0", tmp_path, session_timeout="1.5")
    leader.wait_log("this member leads the pool")
    standby = member(zk_server.hosts, election, "h1", tmp_path, session_timeout="1.5")
    standby.wait_log("joined the pool")
    job = Zkherd(cron(proxy.hosts, election, "h0", "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done",
                      extra=("--stop-timeout", "0.2")), tmp_path / "job.log")
    job.wait_log("started child")
    proxy.blackhole()  # the leader host is cut off mid-job
    assert job.wait(10) == 76, job.log()
    assert job.has("job stopped: leadership was lost")
    standby.wait_log("this member leads the pool", timeout=10)
    stopped = datetime_of(job.log(), "child exited")
    assert stopped < datetime_of(standby.log(), "this member leads the pool")
    proxy.reset_all()
    leader.kill()
    standby.stop()


def datetime_of(log_text, pattern):
    import datetime

    line = next(line for line in log_text.splitlines() if pattern in line)
    return datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00"))


def test_cron_never_hangs_or_piles_up(zk_server, zk_base, tmp_path):
    start = time.monotonic()
    down = zkherd(*cron("127.0.0.1:1", "/cron", "h0", "true", extra=("--timeout", "1")))
    assert down.returncode == 69 and time.monotonic() - start < 5
    election = zk_base + "/cron"
    leader = member(zk_server.hosts, election, "h0", tmp_path)
    leader.wait_log("this member leads the pool")
    long_job = Zkherd(cron(zk_server.hosts, election, "h0", "sleep", "30", tick="1"), tmp_path / "long.log")
    long_job.wait_log("started child")
    time.sleep(1.1)  # the next tick: the same job must not start twice on this host
    second = zkherd(*cron(zk_server.hosts, election, "h0", "sleep", "30", tick="1"))
    assert second.returncode == 75 and "still running on this host" in second.stderr
    not_leader = zkherd(*cron(zk_server.hosts, election, "h9", "true"))
    assert not_leader.returncode == 0 and not_leader.stderr == ""
    long_job.signal(signal.SIGTERM)
    assert long_job.wait() == 128 + signal.SIGTERM
    leader.stop()


def barrier(hosts, path, count, *extra):
    return ["barrier", path, "--zk", hosts, "--count", str(count), *extra]


def test_barrier_three_participants_one_late_and_timeout(zk_server, zk, zk_base, tmp_path):
    path, out = zk_base + "/bar", tmp_path / "order"
    cmd = ("--", "sh", "-c", "echo in >> %s" % out)
    early = [Zkherd(barrier(zk_server.hosts, path, 3, "--timeout", "20", *cmd), tmp_path / ("b%d.log" % i))
             for i in range(2)]
    time.sleep(1.5)
    assert not out.exists()  # two of three: nobody goes on
    assert all(b.proc.poll() is None for b in early)
    late = zkherd(*barrier(zk_server.hosts, path, 3, "--timeout", "20", *cmd))
    assert late.returncode == 0, late.stderr
    assert [b.wait() for b in early] == [0, 0]
    assert out.read_text().splitlines() == ["in", "in", "in"]
    assert zk.get_children(path) == []  # everyone left, ready removed

    start = time.monotonic()
    alone = zkherd(*barrier(zk_server.hosts, path, 2, "--timeout", "1"))
    assert alone.returncode == 75 and "only 1 of 2 participants arrived within 1 s" in alone.stderr
    assert time.monotonic() - start < 5
    assert zk.get_children(path) == []  # its node went with it
    assert zkherd(*barrier("127.0.0.1:1", path, 2, "--timeout", "1", "--connect-timeout", "1")).returncode == 69


def test_barrier_survives_a_connection_blip(zk_server, zk_base, fault_proxy, tmp_path):
    path = zk_base + "/bar"
    proxy = fault_proxy()
    first = Zkherd(barrier(proxy.hosts, path, 2, "--timeout", "20"), tmp_path / "first.log")
    time.sleep(1.0)
    proxy.reset_all()  # the connection drops and comes back (same session)
    time.sleep(0.5)
    second = zkherd(*barrier(zk_server.hosts, path, 2, "--timeout", "20"))
    assert second.returncode == 0, second.stderr
    assert first.wait() == 0


def test_cron_job_survives_a_connection_blip_and_still_sees_the_leader_leave(zk_server, zk_base, fault_proxy,
                                                                             tmp_path):
    """Found by the chaos run (seed 1121): when a connection drops, kazoo clears every watch with an
    event of type NONE; the job took that for the leader's member node going and was stopped (76)
    whenever its ZooKeeper server restarted. Now the watch is set again once reconnected."""
    election = zk_base + "/cron"
    leader = member(zk_server.hosts, election, "h0", tmp_path)
    leader.wait_log("this member leads the pool")
    proxy = fault_proxy()
    job = Zkherd(cron(proxy.hosts, election, "h0", "sleep", "2"), tmp_path / "job.log")
    job.wait_log("started child")
    proxy.reset_all()  # the job's connection drops; kazoo reconnects with the same session
    assert job.wait(10) == 0, job.log()
    assert not job.has("leadership")
    long_job = Zkherd(cron(proxy.hosts, election, "h0", "sleep", "30", extra=("--stop-timeout", "0.2")),
                      tmp_path / "long.log")
    long_job.wait_log("started child")
    proxy.reset_all()
    time.sleep(1.0)  # reconnected, watching the leader's node again
    leader.stop()
    assert long_job.wait(10) == 76
    assert long_job.has("job stopped: leadership was lost.*the leader's member node is gone")
