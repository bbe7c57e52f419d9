"""A template render that must end: a time limit (--render-timeout, SIGALRM) and the loop's signals.

The loop runs in the main thread and a render runs inside one of its turns: a template that loops
for minutes would keep SIGTERM recorded but never acted on, and a child's HUP never forwarded. While
a template renders, the guard lets SIGALRM (its time limit) and any signal the loop records raise
into the render - but never inside a ZooKeeper read (kazoo's queues and locks are left alone): a
signal that arrives during one is raised as soon as that read returns. The time limit counts the
template's own work, not the reads. The render then fails
cleanly (Interrupted: render again later; RenderTimeout: a render error) and the loop handles the
signal. Python runs signal handlers between bytecodes only: C code that never returns to the
interpreter (printing a huge value) is not interrupted - what ZooKeeper data can make a render do
is bounded elsewhere (templates.decode, templates.environment; docs/security.md).
"""

from __future__ import annotations

import contextlib
import signal

from zkherd.configfiles.zkreads import Moving

DEFAULT_TIMEOUT = 10.0


class Interrupted(Moving):
    """A signal for the loop arrived while a template rendered: render again after it is handled."""


class RenderTimeout(Exception):
    """The render took longer than --render-timeout."""


class Guard:
    def __init__(self, limit):
        self.limit = limit
        self.active = False  # a template renders now
        self.reading = 0  # inside a ZooKeeper read: raise after it
        self.pending = None  # the exception to raise once the read returns

    @contextlib.contextmanager
    def rendering(self, wakeup):
        """Around one template's render (main thread only). Armed and disarmed inside the try, and
        the disarming done again if a signal raises into it: a signal at any point never leaves the
        guard armed after the render (its timer or handler would raise wherever the loop is then)."""
        previous = None
        try:
            self.reading, self.pending = 0, None
            previous = signal.signal(signal.SIGALRM, self._alarm)
            if wakeup is not None:
                wakeup.on_signal = self._signal
            self.active = True
            if self.limit:
                signal.setitimer(signal.ITIMER_REAL, self.limit)
            self._raise_pending()  # a signal that came while arming
            yield
        finally:
            while True:
                try:
                    self._disarm(previous, wakeup)
                    break
                except (Interrupted, RenderTimeout):  # raised into the disarming itself: finish it
                    continue

    def _disarm(self, previous, wakeup):
        self.active = False  # from here on the handlers raise nothing
        signal.setitimer(signal.ITIMER_REAL, 0)
        if previous is not None:
            signal.signal(signal.SIGALRM, previous)
        if wakeup is not None:
            wakeup.on_signal = None

    @contextlib.contextmanager
    def read(self):
        """Around a ZooKeeper read inside a render: signals wait until it returned, and the time
        limit does not run (a slow server is the loop's to retry, not a render error)."""
        left = 0.0
        if self.active and not self.reading and self.limit:
            left = signal.setitimer(signal.ITIMER_REAL, 0)[0]
        self.reading += 1
        try:
            yield
        finally:
            self.reading -= 1
            if left > 0 and self.active and not self.reading:
                signal.setitimer(signal.ITIMER_REAL, left)
        self._raise_pending()

    def _raise_pending(self):
        if self.active and not self.reading and self.pending is not None:
            exc, self.pending = self.pending, None
            raise exc

    def _interrupt(self, exc):
        if not self.active:
            return
        if self.pending is None or isinstance(exc, Interrupted):  # a signal for the loop wins over the limit
            self.pending = exc
        self._raise_pending()

    def _alarm(self, signum, frame):
        self._interrupt(RenderTimeout("took longer than --render-timeout %gs" % self.limit))

    def _signal(self, signum):
        self._interrupt(Interrupted("interrupted by %s" % signal.Signals(signum).name))
