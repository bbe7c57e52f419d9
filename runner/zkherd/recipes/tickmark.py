"""The tick marker's two-phase protocol of `zkherd cron` (docs/cron.md, "Tick markers"): who runs a tick.

The marker ELECTION/ticks/JOB/START holds "ID TOKEN TICK STATE MEMBER": the claimer's id, a token
of its run, the tick length, "claimed" or "started", and the leader member node the run leads under.

- claim: create the marker "... claimed MEMBER". A marker that exists is ours if it holds our data
  (the reply to our create was lost); a "claimed" one is an orphan, taken over with set_data(our
  claimed data, version=its version), if its MEMBER is not our leader node and no longer exists (its
  claimer lost the leadership before starting the job), or if it is an earlier run's of this job on
  this host under the same member (same id and MEMBER: that run has ended, since we hold the job's
  local lock - it was stopped or timed out between its claim and its commit). Anything else: the
  tick is taken.
- commit, right before the job starts: set_data("... started MEMBER", version=our claim's). That
  compare-and-set is the one decision point: of the claimer and any number of takers-over, exactly
  one commits; a failure is re-read (our own "started": a lost reply) and otherwise means "do not run".

Markers of zkherd before the two phases ("ID TOKEN TICK") and any other data read as "started".
"""

from __future__ import annotations

import uuid
from typing import NamedTuple

from kazoo.exceptions import BadArgumentsError, BadVersionError, NodeExistsError, NoNodeError

CLAIMED, STARTED = "claimed", "started"
ATTEMPTS = 3  # the marker changed under us this many times: someone else is on it, leave it


class Marker(NamedTuple):
    ident: str
    token: str
    tick: str
    state: str
    member: str


def parse(data):
    """The Marker *data* holds, or None for an old-format or garbage marker (it means "started")."""
    try:
        fields = data.decode("utf-8").split(" ")
    except (UnicodeDecodeError, AttributeError):
        return None
    if len(fields) != 5 or fields[3] not in (CLAIMED, STARTED) or not _znode_path(fields[4]):
        return None
    return Marker(*fields)


def _znode_path(text):
    """A path ZooKeeper takes (a hand edit may hold anything: the server would refuse the request)."""
    return text.startswith("/") and len(text) > 1 and "\x00" not in text and all(
        part not in ("", ".", "..") for part in text[1:].split("/"))


class TickMark:
    """One run's part in the marker *node*; *wait(result)* waits for an async answer (it raises
    what the request raised). claim() and commit() may be called again after a lost request."""

    def __init__(self, node, ident, tick, member):
        token = uuid.uuid4().hex
        self.node = node
        self.ident = ident
        self.member = member
        self.claimed = self._data(ident, token, tick, CLAIMED)
        self.started = self._data(ident, token, tick, STARTED)
        self.version = None  # of our claim
        self.taken_from = None  # the id whose orphaned claim we took over

    def _data(self, ident, token, tick, state):
        return ("%s %s %d %s %s" % (ident, token, tick, state, self.member)).encode("utf-8")

    def claim(self, client, wait):
        """True if the tick is ours to commit, False if another run has it."""
        for _attempt in range(ATTEMPTS):
            try:
                wait(client.create_async(self.node, self.claimed, makepath=True))
                self.version = 0
                return True
            except NodeExistsError:
                pass
            try:
                data, stat = wait(client.get_async(self.node))
            except NoNodeError:
                continue  # deleted meanwhile (by hand): make it again
            if data == self.claimed:  # our create or takeover whose reply was lost
                self.version = stat.version
                return True
            found = parse(data)
            if not self._orphan(client, wait, found):
                return False
            try:
                self.version = wait(client.set_async(self.node, self.claimed, version=stat.version)).version
                self.taken_from = found.ident
                return True
            except (BadVersionError, NoNodeError):
                continue  # it changed meanwhile: look again (a lost reply finds our own claim)
        return False

    def _orphan(self, client, wait, found):
        """A claim whose claimer never started the job, and whose leadership is gone or which an
        earlier run of this job on this host left (the caller holds the job's local lock)."""
        if found is None or found.state != CLAIMED:
            return False
        if found.member == self.member:
            return found.ident == self.ident
        try:
            return wait(client.exists_async(found.member)) is None
        except (ValueError, BadArgumentsError):  # not a znode path: a hand edit
            return False

    def commit(self, client, wait):
        """True: start the job now; False: another run took the tick over (or the marker went)."""
        try:
            wait(client.set_async(self.node, self.started, version=self.version))
            return True
        except (BadVersionError, NoNodeError):
            pass
        try:
            return wait(client.get_async(self.node))[0] == self.started  # our commit, its reply lost
        except NoNodeError:
            return False
