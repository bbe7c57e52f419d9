"""The main loop's alarm clock: signals and kazoo threads only *record* what happened and wake
the loop through a self-pipe; the loop, in the main thread, does all the work (Supervisor's rule:
a signal handler never acts)."""

from __future__ import annotations

import collections
import os
import select
import signal
import threading


class Wakeup:
    """A self-pipe plus a queue of (kind, value) events, safe to post from any thread, and
    signal numbers recorded by handlers that do nothing else."""

    def __init__(self):
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._events = collections.deque()
        self._lock = threading.Lock()
        self.signals = collections.deque()
        self.on_signal = None  # called after a signal is recorded (a template render may stop: renderguard.py)

    def post(self, kind, value=None):
        with self._lock:
            self._events.append((kind, value))
        self.poke()

    def poke(self):
        try:
            os.write(self._write, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: the loop is awake anyway

    def install_signals(self, signums):
        """Record these signals (and SIGCHLD) and wake the loop; the wakeup fd makes a signal that
        arrives while the loop sleeps in select() wake it at once."""
        signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for signum in signums:
            signal.signal(signum, self._record)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake the loop

    def _record(self, signum, frame):
        self.signals.append(signum)
        if self.on_signal is not None:
            self.on_signal(signum)

    def wait(self, timeout):
        """Sleep until something is posted, a signal arrives, or *timeout* seconds pass."""
        if timeout is None or timeout > 0:
            try:
                select.select([self._read], [], [], timeout)
            except InterruptedError:
                pass
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass

    def events(self):
        with self._lock:
            events, self._events = list(self._events), collections.deque()
        return events

    def close(self):
        signal.set_wakeup_fd(-1)
        os.close(self._read)
        os.close(self._write)
