"""Issue 13: the fence under long faults, against the CLI contract (promise 1: the runner stops its
child before its session can expire on the server, whatever the runner's loop is doing).

What is compared, and whose clock says so:
- the child's death: the kernel's (a pidfd of the child's main process becomes readable when it
  exits; the child is in a cgroup or process group that the runner kills as a whole), on
  CLOCK_MONOTONIC;
- the earliest moment the server may expire the session: the server's own view (`cons`, see
  tests/support/zkview.py) of when it last certainly heard from the runner's session, plus the
  negotiated timeout, on the same CLOCK_MONOTONIC (ZooKeeper's elapsed time). It is taken where
  the server can hear nothing more from the runner (right before a freeze, or after a cut), and it
  is a lower bound: the test never credits the runner with traffic the server may not have seen;
- "no overlap": the kernel's flock on a slot file that every child takes with `flock -n` (as
  tests/support/runner.py exclusive_child does): a child that finds it taken records an overlap.

The children here ignore SIGTERM: they use their whole stop time and die only by SIGKILL, the
runner's last word, which must come before the session can expire.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.support import zkview
from tests.support.runner import OVERLAP_EXIT, Zkherd, overlaps
from tests.support.zkutil import wait_for

# A child that takes the slot (or records an overlap), says when it started under which lock
# node, ignores SIGTERM, and lives until SIGKILL. Only the main shell holds the slot (`9>&-`).
STUBBORN = (
    'exec 9>"$0/slot"; '
    'if ! flock -n 9; then echo "$(date +%s.%N) $1 $$ OVERLAP" >>"$0/overlaps.log"; '
    'exit ' + str(OVERLAP_EXIT) + '; fi; '
    'echo "$$ $1 ${ZKHERD_LOCK_PATH-unset}" >>"$0/starts.log"; '
    'trap "" TERM; while :; do sleep 0.05 9>&-; done'
)
# The same, but it stops on SIGTERM after *delay* seconds, like a service that shuts down slowly
# (it says when it got the signal, and a second one - the runner signals every process of the tree
# - does not cut its shutdown short).
SLOW_STOPPER = STUBBORN.replace(
    'trap "" TERM', 'trap "trap \'\' TERM; echo $$ >>$0/stopping.log; sleep $2 9>&-; exit 0" TERM')


def stubborn_child(work, name):
    return ["sh", "-c", STUBBORN, str(work), name]


def slow_stopper(work, name, delay):
    return ["sh", "-c", SLOW_STOPPER, str(work), name, str(delay)]


def starts(work):
    """[(pid, name, ZKHERD_LOCK_PATH)] of every child that started in *work*."""
    path = Path(work) / "starts.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(int(line.split()[0]), line.split()[1], line.split(maxsplit=2)[2]) for line in lines]


def started(work, name, count=1, timeout=30.0):
    """The pid of the *count*th child named *name* to start in *work*."""
    found = wait_for(lambda: [entry[0] for entry in starts(work) if entry[1] == name][count - 1:], timeout,
                     message=lambda: "child %s #%d to start in %s: %s" % (name, count, work, starts(work)))
    return found[0]


class Death:
    """When the process *pid* exits, as the kernel tells it (CLOCK_MONOTONIC)."""

    def __init__(self, pid):
        self.pid = pid
        self.at = None
        self._fd = os.pidfd_open(pid)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.poll()
        self.at = time.monotonic()
        os.close(self._fd)

    def wait(self, timeout):
        self._thread.join(timeout)
        return self.at


def no_traceback(*runners):
    for runner in runners:
        assert "Traceback" not in runner.log(), runner.log()


def run_args(hosts, timeout, *options):
    return ["run", "--zk", hosts, "--session-timeout", str(timeout), *options]


# -- (a) the frozen server -----------------------------------------------------------

FROZEN_T = 10
ROUNDS, RUNNERS = 2, 4  # runners frozen at once: each is caught at another point of its loop


class Pusher:
    """A steady stream of changes under a mirrored subtree (fire and forget: the server may freeze)."""

    def __init__(self, client, root, nodes, every=0.02):
        self.client, self.root, self.nodes, self.every = client, root, nodes, every
        self.stopped = threading.Event()
        self.count = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self.stopped.wait(self.every):
            self.count += 1
            self.client.set_async("%s/n%d" % (self.root, self.count % self.nodes), b"v%d" % self.count)

    def stop(self):
        self.stopped.set()
        self._thread.join(5)


@pytest.mark.slow
def test_frozen_server_the_child_is_dead_before_the_session_can_expire(make_zk_server, tmp_path):
    """zkherd --session-timeout 10 run --lock L --mirror-dir D=/cfg --on-change none --stop-timeout 10
    -- a-service-that-ignores-SIGTERM, a steady stream of changes under /cfg, then the server frozen
    (SIGSTOP: a long GC pause, a stuck disk). --change-delay 0 keeps the runners reading /cfg all the
    time, so the freeze catches them inside a read, as it did one try in three in the issue."""
    server = make_zk_server()
    admin = KazooClient(server.hosts)
    admin.start(timeout=10)
    nodes = 40
    for i in range(nodes):
        admin.create("/cfg/n%d" % i, b"v", makepath=True)
    late = []
    try:
        for round_ in range(ROUNDS):
            runners, deaths = [], []
            for i in range(RUNNERS):
                work = tmp_path / ("r%d-%d" % (round_, i))
                work.mkdir()
                runners.append(Zkherd(run_args(server.hosts, FROZEN_T, "--lock", "/locks/%d-%d" % (round_, i),
                                               "--mirror-dir", "%s/cfg=/cfg" % work, "--on-change", "none",
                                               "--change-delay", "0", "--stop-timeout", "10", "--",
                                               *stubborn_child(work, "c")), work / "runner.log"))
            for i in range(RUNNERS):
                deaths.append(Death(started(tmp_path / ("r%d-%d" % (round_, i)), "c")))
            sids = [wait_for(lambda r=runner: zkview.session_of(r.log())) for runner in runners]
            pusher = Pusher(admin, "/cfg", nodes)
            time.sleep(1.0 + 0.5 * round_)  # the stream flows: every runner reads /cfg again and again
            view = zkview.sessions(server)
            os.kill(server.pid, signal.SIGSTOP)
            frozen = time.monotonic()
            try:
                pusher.stop()
                for death in deaths:
                    death.wait(max(0.0, frozen + FROZEN_T + 3.0 - time.monotonic()))
            finally:
                os.kill(server.pid, signal.SIGCONT)
            for runner, sid, death in zip(runners, sids, deaths):
                expires = view[sid].expires_no_earlier_than
                if death.at is None or death.at >= expires:
                    late.append("round %d, %s: child %s %s after the earliest expiry (frozen %.3fs after the "
                                "server last heard from the runner); runner's log:\n%s"
                                % (round_, runner.log_path.parent.name, death.pid,
                                   "still alive" if death.at is None else "died %.3fs" % (death.at - expires),
                                   frozen - view[sid].heard_no_earlier_than, runner.log()[-2500:]))
            no_traceback(*runners)
            for runner in runners:
                runner.kill()
    finally:
        admin.stop()
        admin.close()
    assert late == [], "\n\n".join(late)


# -- (b) cut off with --lock --mirror --rolling-lock, a push at the cut -------------------------

@pytest.mark.parametrize(("timeout", "cut_at"), [
    (10, "get_data"), (10, "multi"), pytest.param(30, "get_data", marks=pytest.mark.slow)])
def test_cut_off_with_a_push_at_the_cut_the_child_dies_before_the_session_can_expire(
        zk_server, zk_admin, zk_base, fault_proxy, tmp_path, timeout, cut_at):
    """--lock --mirror --rolling-lock, a child that ignores SIGTERM (--stop-timeout as long as the
    session timeout: it uses all of the stop time the runner gives it), a new version pushed, and
    the holder cut off (a partition) as it reads it (get_data) or as it queues for the rolling lock
    with it (multi): its child is dead before the server may expire the session, and the standby's
    child starts only after that."""
    cfg, lock, rolling = zk_base + "/cfg", zk_base + "/lock", zk_base + "/rolling"
    zk_admin.create(cfg, b"v0", makepath=True)
    work = tmp_path / "w"
    work.mkdir()
    proxy = fault_proxy()

    def runner(name, hosts):
        return Zkherd(run_args(hosts, timeout, "--lock", lock, "--mirror", "%s/%s.conf=%s" % (work, name, cfg),
                               "--rolling-lock", rolling, "--stop-timeout", str(timeout), "--",
                               *stubborn_child(work, name)), tmp_path / ("%s.log" % name))

    holder = runner("holder", proxy.hosts)
    death = Death(started(work, "holder"))
    sid = wait_for(lambda: zkview.session_of(holder.log()))
    standby = runner("standby", zk_server.hosts)
    standby.wait_log("queued for lock")
    try:
        proxy.before_request(cut_at, then="blackhole")  # held, with all that follows
        zk_admin.set(cfg, b"v1")
        assert proxy.wait_fired(1, timeout=10), "the holder sent no %s after the push: the test cuts it there" % cut_at
        time.sleep(0.5)
        view = zkview.sessions(zk_server)[sid]  # nothing more reaches the server from the holder
        expires = view.expires_no_earlier_than
        died = death.wait(max(0.0, expires - time.monotonic() + 3.0))
        assert died is not None and died < expires, (
            "the holder's child %s the earliest moment the server may expire its session; holder's log:\n%s"
            % ("outlived" if died is None else "died %.3fs after" % (died - expires), holder.log()[-3000:]))
        pid = started(work, "standby", timeout=timeout + 10)  # the standby takes over, once the session expired
        assert overlaps(work) == []
        assert [entry[1] for entry in starts(work)] == ["holder", "standby"]
        no_traceback(holder, standby)
    finally:
        holder.kill()
        standby.kill()
    assert pid


# -- (c) a restart for new files racing a session loss -------------------------------------

RACE_T = 3


@pytest.mark.parametrize("via", ["direct", "proxy"])
def test_restart_for_new_files_racing_a_session_loss(zk_server, zk_admin, zk_base, fault_proxy, tmp_path, via):
    """A push restarts the holder's child (which takes 0.5 s to stop); the runner stalls right then
    (SIGSTOP: swapped out, a stuck VM) until its session expired on the server and the standby took
    over. Resumed, it reaps the child, learns that the session is gone and gets a new one - in some
    order: "direct", the server closed the connection and kazoo finds out at once; "proxy", the
    holder is also cut off, and kazoo finds out only after its ping timeout. The restart must not
    skip the lock and the fence: no crash, no child started again while the standby holds the lock,
    never a child without its lock node (ZKHERD_LOCK_PATH=None), never two children at once."""
    cfg, lock = zk_base + "/cfg", zk_base + "/lock"
    zk_admin.create(cfg, b"v0", makepath=True)
    work = tmp_path / "w"
    work.mkdir()
    proxy = fault_proxy()

    def runner(name, hosts):
        return Zkherd(run_args(hosts, RACE_T, "--lock", lock, "--mirror", "%s/%s.conf=%s" % (work, name, cfg),
                               "--on-change", "restart", "--stop-timeout", "30", "--",
                               *slow_stopper(work, name, 0.5)), work / ("%s.log" % name))

    holder = runner("holder", proxy.hosts if via == "proxy" else zk_server.hosts)
    started(work, "holder")
    standby = runner("standby", zk_server.hosts)
    standby.wait_log("queued for lock")
    try:
        zk_admin.set(cfg, b"v1")
        wait_for((work / "stopping.log").exists, timeout=10, interval=0.01,
                 message=lambda: "the holder's child to get the stop signal:\n" + holder.log()[-2000:])
        holder.signal(signal.SIGSTOP)  # the child stops within 0.5 s: before the session can expire
        try:
            if via == "proxy":
                proxy.blackhole()
            started(work, "standby", timeout=RACE_T + 15)  # the holder's session expired
        finally:
            holder.signal(signal.SIGCONT)
        if via == "proxy":
            time.sleep(RACE_T)  # resumed but still cut off: it must not start anything meanwhile
            proxy.heal()
        # back in contact: it must queue for the lock again (its old nodes went with its session)
        wait_for(lambda: holder.proc.poll() is not None or holder.log().count("queued for lock") >= 2,
                 timeout=RACE_T + 10, message=lambda: "the holder queued again:\n" + holder.log()[-3000:])
        time.sleep(0.5)  # a wrong start of the child would show by now
        no_traceback(holder, standby)
        assert holder.proc.poll() is None, "the holder exited:\n" + holder.log()[-3000:]
        assert holder.log().count("started child") == 1, "a child started again without the lock:\n" + holder.log()
        assert overlaps(work) == [], holder.log()[-3000:]
        wrong = [entry for entry in starts(work) if not entry[2].startswith(lock + "/")]
        assert wrong == [], "children started without their lock node: %s" % wrong
    finally:
        holder.kill()
        standby.kill()
