"""The tick markers of `zkherd cron` (docs/cron.md, "Tick markers"): their names and their collection.

A marker is the persistent znode ELECTION/ticks/JOB/START: START is the tick's start in Unix seconds
(the time rounded down to a multiple of --tick), its data "ID TOKEN TICK STATE MEMBER" (recipes/tickmark.py; the run's
token, the tick length). The name alone tells a marker's age, whatever --tick each run used, so
markers are collected by age without a read per marker:

- a run collects its own job's markers older than keep(tick) = max(2 days, 10 ticks), and older than
  keep() of the tick in the marker's data too (read only for those candidates: a job of another
  --tick under the same name keeps its markers);
- it also collects every other job's markers older than 2 days, but the newest, and that newest one
  (then the job's folder) once it is older than keep(its own tick, from its data) - a stale job, say
  one named after a command line that was edited since;
- names that are not a START (hand-made, or `²`) are never touched; a marker more than keep() in the
  future is garbage and goes too. The current tick's marker is never old, so never collected.

Collection is best effort (the next run tries again) and never a reason not to run the job.
"""

from __future__ import annotations

import time

from kazoo.exceptions import KazooException

from zkherd.common import paths
from zkherd.core.loop import TRANSIENT

MIN_KEEP = 2 * 86400  # seconds: a marker younger than this is always kept
KEEP_TICKS = 10


def keep(tick):
    """How long the markers of a job with this tick length are kept, in seconds."""
    return max(MIN_KEEP, KEEP_TICKS * tick)


def start_of(name):
    """The tick start a marker's name gives, or None for a name that is not a marker's."""
    if name.isascii() and name.isdigit() and len(name) < 19:
        return int(name)
    return None


def tick_of(data):
    """The tick length a marker's data gives ("ID TOKEN TICK"), or None (hand-made, older zkherd)."""
    try:
        value = float(data.decode("ascii").split()[2])
    except (UnicodeDecodeError, IndexError, ValueError, AttributeError):
        return None
    return value if 0 < value < float("inf") else None


def expired(start, tick, now):
    """True if a marker of a tick that began at *start* may go: older than keep(), or as far in the future."""
    return abs(now - start) >= keep(tick or 0)


class Collector:
    """Deletes old markers under ELECTION/ticks; *wait(result)* waits for an async answer."""

    def __init__(self, ticks_root, job, tick, log):
        self.root = ticks_root
        self.job = job
        self.tick = tick
        self.log = log

    def collect(self, client, wait, current):
        try:
            jobs = wait(client.get_children_async(self.root))
            for job in jobs:
                if job == self.job:
                    self._own(client, wait, current)
                else:
                    self._other(client, wait, job)
        except TRANSIENT + (KazooException,) as exc:
            self.log.debug("could not collect old tick markers; a later run will", error=type(exc).__name__)

    def _starts(self, client, wait, job):
        names = wait(client.get_children_async(paths.join(self.root, job)))
        return sorted((start, name) for name, start in ((n, start_of(n)) for n in names) if start is not None)

    def _own(self, client, wait, current):
        now = time.time()
        for start, name in self._starts(client, wait, self.job):
            old = name != current and expired(start, self.tick, now)
            if old and self._past_its_tick(client, wait, self.job, name, start, now):
                self._delete(client, self.job, name)

    def _past_its_tick(self, client, wait, job, name, start, now):
        """A marker that is old by a name's reckoning is also old for the tick in its data: a job of
        another --tick under the same name (a weekly one) keeps its current marker."""
        data = wait(client.get_async(paths.join(paths.join(self.root, job), name)))[0]
        return expired(start, tick_of(data), now)

    def _other(self, client, wait, job):
        now = time.time()
        starts = self._starts(client, wait, job)
        past = [(start, name) for start, name in starts if start <= now]  # a future marker is never the newest
        if not past:
            return
        newest, newest_name = past[-1]
        for start, name in starts:
            old = name != newest_name and expired(start, None, now)
            if old and self._past_its_tick(client, wait, job, name, start, now):
                self._delete(client, job, name)
        if not expired(newest, None, now):
            return
        if self._past_its_tick(client, wait, job, newest_name, newest, now):
            self.log.info("collecting the markers of a job that has not run for long", job=job, last_tick=newest)
            self._delete(client, job, newest_name)
            self._delete(client, job, None)  # refused while a run makes a new marker: it stays then

    def _delete(self, client, job, name):
        """Fire and forget: a marker that is a folder (a hand edit) or that went meanwhile stays or is gone."""
        node = paths.join(self.root, job)
        node = node if name is None else paths.join(node, name)
        client.delete_async(node)
