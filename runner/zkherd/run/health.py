"""Health checks of the child (--health CMD): the first one --health-delay after each start, then every
--health-interval; a check that runs longer than --health-timeout is killed and counts as failed.
The status changes only after --health-rise passes or --health-fall failures in a row, so one
flaky check does not flap it."""

from __future__ import annotations

import time

from zkherd import telemetry
from zkherd.core.shellcmd import Task

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


class Health:
    def __init__(self, command, delay, interval, timeout, rise, fall, env, log):
        self.command = command
        self.delay = delay
        self.interval = interval
        self.timeout = timeout
        self.rise = rise
        self.fall = fall
        self.env = env
        self.log = log
        self.status = STARTING
        self.task = None
        self.next_at = None
        self.streak = 0  # consecutive results that disagree with the status
        self.started_at = None

    def child_started(self):
        self.stop()
        self.status = STARTING
        self.streak = 0
        self.started_at = time.monotonic()
        self.next_at = self.started_at + self.delay

    def stop(self):
        if self.task is not None:
            self.task.kill()
            self.task = None
        self.next_at = None

    @property
    def healthy_by(self):
        """A (re)started child not healthy by then is a failed version: its first check comes
        --health-delay after the start, and it gets --health-delay more (at least the time of
        --health-rise checks) to become healthy."""
        return self.started_at + self.delay + max(self.delay, self.rise * self.interval)

    @property
    def in_delay(self):
        return self.started_at is not None and time.monotonic() < self.started_at + self.delay

    def poll(self):
        """Run due checks; returns (seconds until something is due or None, status if it changed)."""
        now = time.monotonic()
        changed = None
        if self.task is not None:
            left = self.task.poll()
            if self.task.done is None:
                return left, None
            changed = self._record(self.task.ok, self.task)
            self.task = None
            self.next_at = now + self.interval
        if self.next_at is not None and now >= self.next_at:
            self.task = Task("health check", self.command, self.env, self.timeout, self.log)
            self.next_at = None
            return self.task.poll() or self.timeout, changed
        return (self.next_at - now) if self.next_at is not None else None, changed

    def _record(self, passed, task):
        telemetry.get().health(passed=passed, seconds=time.monotonic() - task.started)
        if not passed:
            self.log.info("health check failed", code=task.done, timed_out=task.timed_out)
        wanted = HEALTHY if passed else UNHEALTHY
        if self.status == wanted:
            self.streak = 0
            return None
        self.streak += 1
        if self.streak >= (self.rise if passed else self.fall):
            self.status = wanted
            self.streak = 0
            self.log.info("child is %s" % wanted)
            telemetry.get().health(wanted)
            return wanted
        return None
