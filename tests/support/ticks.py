"""Cron ticks for tests: a tick length chosen so that the current tick has room for a scenario.

A test that needs "a whole tick ahead" used to sleep to the next start of a fixed tick (30 s: 15 s
on average, up to 30 s, of pure waiting). What the scenarios need is only that the tick now running
has at least *room* seconds left (so every run of the scenario is in the same tick, and a --catch-up
deadline a few seconds before the tick's end is far enough away). Any whole-second tick length
serves `zkherd cron` alike, so the first length (from *shortest* up) whose current tick has that
room is taken: no sleep at all.
"""

from __future__ import annotations

import time


def tick_with_room(room, shortest=30):
    """(tick, start): a whole-second tick length >= *shortest* and the start of its current tick,
    which has at least *room* seconds left from now."""
    if shortest <= room:
        shortest = int(room) + 1
    now = time.time()
    for tick in range(shortest, 100 * shortest):
        start = int(now // tick * tick)
        if start + tick - now >= room:
            return tick, start
    raise AssertionError("no tick length with %s s left in its current tick" % room)  # never: room < tick
