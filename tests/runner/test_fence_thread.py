"""core/fence.py with a fake session and a real child process (issue 13, items 1 and 5): the fence
thread acts on its own, within 50 ms of its deadlines, while the main thread is blocked; and a jump
of the boot clock (a suspend of the host) is acted on within 50 ms.

The fence's action times are recorded by the target it calls (in the fence's thread); the child's
death is the kernel's (a pidfd becomes readable when the process is gone).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time

import pytest

from zkherd.core import clock, fence

ACT_WITHIN = 0.1  # the fence looks every 50 ms while armed; the rest is for a loaded 2-core machine (50.15 ms seen)


class FakeSession:
    """What the fence reads: the negotiated timeout and the earliest possible expiry (boot clock)."""

    def __init__(self, timeout, expires_at):
        self.timeout = timeout
        self.expires_at = expires_at

    def expires_no_earlier_than(self):
        return self.expires_at


class Target:
    """A real process that ignores the stop signal (it uses its whole stop time), in a process group
    of its own; records when the fence told it to stop and to die, and when it died."""

    def __init__(self):
        self.proc = subprocess.Popen(["sh", "-c", "trap '' TERM; exec sleep 1000"], start_new_session=True)
        self.acted = {}
        self.died_at = None
        pidfd = os.pidfd_open(self.proc.pid)
        self._watcher = threading.Thread(target=self._watch, args=(pidfd,), daemon=True)
        self._watcher.start()

    def _watch(self, pidfd):
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll()  # readable once the process has exited
        self.died_at = clock.now()
        os.close(pidfd)

    def signal_stop(self):
        self.acted.setdefault("stop", clock.now())
        os.killpg(self.proc.pid, signal.SIGTERM)

    def kill(self):
        self.acted.setdefault("kill", clock.now())
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def dead_within(self, seconds):
        self._watcher.join(seconds)
        return self.died_at

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def target():
    made = Target()
    yield made
    made.close()


def fired_events():
    events = []
    return events, lambda what, kill_at: events.append((what, kill_at, clock.now()))


def block_main_thread(how, seconds):
    """The loop is busy: asleep in a long call, or computing (holding the GIL between switches)."""
    if how == "sleep":
        time.sleep(seconds)
    else:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sum(range(1000))


@pytest.mark.parametrize("how", ["sleep", "busy"])
def test_the_fence_stops_and_kills_on_time_while_the_main_thread_is_blocked(target, how):
    timeout, stop_timeout = 2.0, 10.0  # margin 0.25 s; the stop time is capped at 0.75 s
    margin, stop_time = fence.margin(timeout), fence.stop_time(stop_timeout, timeout)
    events, on_fire = fired_events()
    session = FakeSession(timeout, clock.now() + margin + stop_time + 0.3)
    guard = fence.Fence(session, on_fire)
    try:
        guard.arm(target, stop_timeout)
        stop_at, kill_at = guard.deadlines()
        block_main_thread(how, kill_at - clock.now() + 0.3)  # past both deadlines, the loop never looks
        died = target.dead_within(5.0)
    finally:
        guard.close()
    assert target.acted.keys() == {"stop", "kill"}, target.acted
    assert stop_at <= target.acted["stop"] <= stop_at + ACT_WITHIN, (target.acted["stop"] - stop_at)
    assert kill_at <= target.acted["kill"] <= kill_at + ACT_WITHIN, (target.acted["kill"] - kill_at)
    assert died is not None and target.acted["kill"] <= died < session.expires_at, (died, session.expires_at)
    assert [event[0] for event in events] == ["stop", "kill"]  # the loop is told, once each


def test_a_jump_of_the_boot_clock_is_acted_on_at_the_next_look(target, monkeypatch):
    """A suspend of the host: the boot clock (and the server's time) jumps; the fence looks at least
    every 50 ms while armed, so it kills at once on the next look, without a stop first."""
    offset = [0.0]
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + offset[0])
    timeout = 10.0
    events, on_fire = fired_events()
    session = FakeSession(timeout, clock.now() + 60.0)  # far away: nothing to do for a minute
    guard = fence.Fence(session, on_fire)
    try:
        guard.arm(target, 10.0)
        time.sleep(0.2)
        assert target.acted == {}
        offset[0] = 120.0  # resumed two minutes later: the session may have expired already
        jumped = clock.now()
        died = target.dead_within(5.0)
    finally:
        guard.close()
    assert "kill" in target.acted and target.acted["kill"] - jumped <= ACT_WITHIN, (target.acted, jumped)
    assert died is not None, "the child outlived the jump"
    assert [event[0] for event in events][0] == "kill"


def test_a_disarmed_fence_does_nothing(target):
    """Disarmed (the child was reaped), the fence never touches the target again."""
    events, on_fire = fired_events()
    session = FakeSession(2.0, clock.now() + fence.margin(2.0) + fence.stop_time(1.0, 2.0) + 0.2)
    guard = fence.Fence(session, on_fire)
    try:
        guard.arm(target, 1.0)
        guard.disarm()
        time.sleep(session.expires_at - clock.now() + 0.1)
    finally:
        guard.close()
    assert target.proc.poll() is None and target.acted == {} and events == []


def test_the_fence_clock_counts_a_suspend():
    """CLOCK_BOOTTIME (it counts a suspend, as the server's clock does), not CLOCK_MONOTONIC."""
    assert clock._CLOCK == time.CLOCK_BOOTTIME  # noqa: SLF001
    assert abs(clock.now() - time.clock_gettime(time.CLOCK_BOOTTIME)) < 1.0


class _Session:
    timeout = 1.0
    last_heard = None

    def expires_no_earlier_than(self):
        return self.last_heard + self.timeout


class _Target:
    def __init__(self):
        self.kills = 0

    def signal_stop(self):
        pass

    def kill(self):
        self.kills += 1


def test_the_fence_looks_every_50ms_not_in_a_busy_loop_after_the_kill():
    """Pure logic (a stub session and target). core/fence.py: past kill_at, `wake - now` is
    negative, so the thread waits 0 s and kills again at once, over and over, holding the GIL and
    its condition; in subreaper mode each kill scans all of /proc under ownprocs' lock. Until the
    loop reaps (a child stuck in D state: forever) the runner burns a core and slows its own loop."""

    session = _Session()
    session.last_heard = clock.now() - 10.0  # the deadline is long past
    looker = fence.Fence(session, lambda what, kill_at: None)
    target = _Target()
    try:
        started = time.process_time()
        looker.arm(target, 0.0)
        time.sleep(0.5)
        kills, used = target.kills, time.process_time() - started
    finally:
        looker.close()
    assert kills <= 20 and used < 0.2, "in 0.5 s the fence killed %d times and used %.2fs of CPU" % (kills, used)
