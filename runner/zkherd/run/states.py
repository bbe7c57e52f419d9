"""The states of `zkherd run` and the one place where it goes from one to another.

    WAITING_CONFIG -> QUEUED -> STARTING -> RUNNING -> CHECKING -> RESTARTING -> STARTING ...
                                   \\-> STOPPING / FENCED -> QUEUED ... -> EXITING
    QUEUED or STOPPING (drained: `zkherd drain`, --standby-only) -> DRAINED -> QUEUED (undrained)

Every transition is checked against TRANSITIONS (a transition that is not there is a bug: it is
logged as one and made anyway, so that the runner never stops supervising its child over a wrong
arrow) and logged with its reason (`state running -> checking new files why=...`). docs/runner.md
draws the same graph.
"""

from __future__ import annotations

import enum

from zkherd import telemetry


class State(enum.Enum):
    CONNECTING = "connecting"  # no session that can take the lock (at start, or after one expired)
    WAITING_CONFIG = "waiting for config"  # the first mirrored files cannot be made yet
    QUEUED = "queued"  # in the lock's line (or about to start: no lock)
    STARTING = "starting"  # the child started and is not healthy yet (--health)
    RUNNING = "running"
    CHECKING = "checking new files"  # new files staged and checked, or waiting for the rolling lock
    RESTARTING = "restarting"  # stopping the child to start it again with new files
    PAUSED = "paused on a failed version"  # the rollout holds the rolling lock until a newer version
    STOPPING = "stopping"  # stopping the child: the lock was lost, or the runner was told to stop
    FENCED = "fenced"  # the fence stopped the child: the session may expire
    DRAINED = "drained"  # out of the lock's line until `zkherd undrain` (or for good: --standby-only)
    EXITING = "exiting"  # the child is gone for good: release what is left and exit


S = State
NAMES = [state.value for state in State]
_CHILD_UP = {S.STARTING, S.RUNNING, S.CHECKING, S.PAUSED}
TRANSITIONS = {
    S.CONNECTING: {S.WAITING_CONFIG, S.QUEUED, S.EXITING},
    S.WAITING_CONFIG: {S.QUEUED, S.CONNECTING, S.EXITING},
    S.QUEUED: {S.STARTING, S.RUNNING, S.WAITING_CONFIG, S.CONNECTING, S.DRAINED, S.EXITING},
    S.STARTING: {S.RUNNING, S.CHECKING, S.RESTARTING, S.PAUSED, S.STOPPING, S.FENCED},
    S.RUNNING: {S.STARTING, S.CHECKING, S.RESTARTING, S.PAUSED, S.STOPPING, S.FENCED},
    S.CHECKING: {S.RUNNING, S.STARTING, S.RESTARTING, S.PAUSED, S.STOPPING, S.FENCED},
    S.RESTARTING: {S.STARTING, S.RUNNING, S.QUEUED, S.STOPPING, S.FENCED, S.CONNECTING},
    S.PAUSED: {S.RUNNING, S.STARTING, S.CHECKING, S.RESTARTING, S.STOPPING, S.FENCED, S.QUEUED, S.DRAINED},
    S.STOPPING: {S.QUEUED, S.DRAINED, S.EXITING, S.FENCED, S.CONNECTING},
    S.DRAINED: {S.QUEUED, S.WAITING_CONFIG, S.CONNECTING, S.EXITING},
    S.FENCED: {S.QUEUED, S.EXITING, S.CONNECTING},
    S.EXITING: set(),
}


def child_up(state):
    """States in which the child is meant to run (it may be unhealthy, or paused on a failed version)."""
    return state in _CHILD_UP


class Machine:
    """The current state, and the one place where it changes."""

    def __init__(self, log):
        self.log = log
        self.state = S.CONNECTING
        self.why = "connecting to ZooKeeper"
        telemetry.get().state(self.state.value, NAMES)

    def to(self, state, why, **fields):
        if state == self.state:
            return
        if state not in TRANSITIONS[self.state]:
            self.log.error("internal error: unexpected transition, made anyway", old=self.state.value,
                           new=state.value, why=why)
        self.log.info("state %s -> %s" % (self.state.value, state.value), why=why, **fields)
        self.state, self.why = state, why
        telemetry.get().state(state.value, NAMES)
