"""The fence: a child that runs under a lock is dead before the server may expire the session that
holds the lock (promise 1), whatever the main loop is doing.

The leader expires a session *timeout* after it last heard of the client; the session knows a
lower bound of that moment (Session.expires_no_earlier_than, on the boot clock), kept fresh by the
syncs this thread sends (Session.beat) for as long as the fence lives. The fence sends
the stop signal at that moment minus the stop time minus a margin, and kills the whole tree at that
moment minus the margin. It runs in a thread of its own and acts itself - a ZooKeeper request the
loop waits on, a long template render or a slow disk can delay the loop, never the fence - then tells
the loop (an event), which does the bookkeeping. It looks at the clock at least every 50 ms while
armed, so a suspend of the host (the boot clock jumps) is noticed within 50 ms of the resume.
"""

from __future__ import annotations

import threading

from zkherd.core import clock

LOOK_EVERY = 0.05


def margin(session_timeout):
    """Time kept between a fenced child's death and the earliest possible session expiry."""
    return 0.05 + 0.1 * session_timeout


def stop_time(stop_timeout, session_timeout):
    """The time a fenced child gets between the stop signal and SIGKILL: --stop-timeout, but never
    so long that the fence would act while the session is well (the leader's proof of us is up to
    0.4*timeout old, see core/session.py)."""
    return max(0.0, min(stop_timeout, 0.4 * session_timeout - margin(session_timeout)))


class Fence:
    """arm(target, stop_timeout) while a child runs under a lock; disarm() once it is reaped.

    *target* has signal_stop() and kill() (both safe from any thread); *on_fire(what, kill_at)* is
    called from the fence's thread with what was done ("stop" or "kill") and must only post an event.
    """

    def __init__(self, session, on_fire):
        self.session = session
        self.on_fire = on_fire
        self._cond = threading.Condition()
        self._target = None
        self._stop_timeout = 0.0
        self._done = set()  # what was done for the current target: "stop", "kill"
        self._closed = False
        self._also = None  # another session's bound: () -> (expires_no_earlier_than, timeout) or None
        self._thread = threading.Thread(target=self._run, name="zkherd-fence", daemon=True)
        self._thread.start()

    def deadlines(self, stop_timeout=None):
        """(stop_at, kill_at) on the boot clock for the current session (for a child with
        *stop_timeout*, default the armed one's)."""
        stop_timeout = self._stop_timeout if stop_timeout is None else stop_timeout
        bounds = [(self.session.expires_no_earlier_than(), self.session.timeout)]
        if self._also is not None:
            other = self._also()
            if other is not None:
                bounds.append(other)
        kill_at = min(expires - margin(timeout) for expires, timeout in bounds)
        stop_at = min(expires - margin(timeout) - stop_time(stop_timeout, timeout) for expires, timeout in bounds)
        return stop_at, kill_at

    def also(self, bound):
        """Fence on another session too (cron: the `elect` member's lease, recipes/lease.py): *bound()*
        gives (the earliest moment that session may expire on the boot clock, its timeout), or None."""
        with self._cond:
            self._also = bound
            self._cond.notify()

    def time_left(self):
        """Seconds until the fence acts (None if not armed): a bound for any request's timeout."""
        with self._cond:
            if self._target is None:
                return None
            return self.deadlines()[0] - clock.now()

    def arm(self, target, stop_timeout):
        with self._cond:
            self._target, self._stop_timeout, self._done = target, stop_timeout, set()
            self._cond.notify()

    def disarm(self):
        """After this returns, the fence does nothing more to the target (the loop may reap it)."""
        with self._cond:
            self._target = None
            self._cond.notify()

    @property
    def fired(self):
        with self._cond:
            return set(self._done)

    def close(self):
        with self._cond:
            self._closed, self._target = True, None
            self._cond.notify()
        self._thread.join(timeout=1.0)

    def _run(self):
        with self._cond:
            while not self._closed:
                beat = self._beat()
                if self._target is None:
                    self._cond.wait(beat)
                    continue
                stop_at, kill_at = self.deadlines()
                now = clock.now()
                if now >= kill_at:
                    self._act("kill", self._target.kill, kill_at)  # again each look: nothing may start anew
                elif now >= stop_at and "stop" not in self._done:
                    self._act("stop", self._target.signal_stop, kill_at)
                wake = now + LOOK_EVERY if "kill" in self._done else kill_at if "stop" in self._done else stop_at
                self._cond.wait(max(0.0, min(LOOK_EVERY, beat, wake - now)))

    def _beat(self):
        """The session's heartbeat through the leader (core/session.py); seconds until the next."""
        try:
            return self.session.beat()
        except Exception:  # never let the fence thread die
            return LOOK_EVERY

    def _act(self, what, action, kill_at):
        try:
            action()
        except Exception:  # never let the fence thread die: the next look tries again
            pass
        if what not in self._done:
            self._done.add(what)
            try:
                self.on_fire(what, kill_at)
            except Exception:
                pass
