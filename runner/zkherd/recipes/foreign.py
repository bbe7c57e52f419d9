"""Foreign nodes in a lock: nodes in the lock-/run- lines that no session owns.

Runners only make ephemeral nodes, so a persistent (or container) node in a line was made by
someone else, and nobody would ever delete it: it is left out of the line, never waited on. Its
name is remembered: a runner's node never gets the name of an earlier node of the same lock
folder (the server's sequence counter only grows while the folder exists; a new folder - a new
czxid - starts afresh, and so does this memory), so a look at the line need not ask again.

Reports are aggregated: one WARNING per look at the line that found new ones (how many, and the
first few), and the --alert command at most once every ALERT_INTERVAL per lock, naming how many
were found since the last alert. 200 squatted node pairs cost one warning and one alert, not 400
of each.

Not foreign: a node of a live session (an attacker's own ephemeral nodes block the lock until
that session ends), and TTL nodes (extendedTypesEnabled), whose ephemeralOwner has the high byte
0xFF - as have the real sessions of a server with id 255, which cannot be told apart from them.
Only the lock's ACL keeps those out.
"""

from __future__ import annotations

import time

from zkherd.common import paths

# ephemeralOwner of the nodes that no session owns: 0 (persistent) and Long.MIN_VALUE (a container,
# which the server never deletes while it has had no children). Never a 0xFF high byte (see above).
NO_SESSION = (0, -(2 ** 63))
ALERT_INTERVAL = 600.0  # seconds between two alerts about one lock's foreign nodes
SHOWN = 5  # nodes named in a warning or an alert
WHAT_TO_DO = ("delete them, and give the lock an ACL that only the deployment's credentials may write "
              "(--acl auth::rwcda)")


def is_foreign(stat):
    return stat.ephemeralOwner in NO_SESSION


class ForeignNodes:
    def __init__(self, lock, log, on_foreign=None):
        self.lock = lock
        self.log = log
        self.on_foreign = on_foreign  # called with the alert's message
        self.names = set()  # known foreign, in this incarnation of the lock folder
        self.folder = None  # its czxid
        self.unalerted = 0  # found since the last alert
        self.alerted_at = None

    def folder_is(self, czxid):
        """The lock folder seen now: a new one (deleted and made again) forgets every name."""
        if czxid != self.folder:
            self.folder = czxid
            self.names.clear()

    def report(self, found):
        """Log (and maybe alert) the foreign nodes *found* in one look; remember them."""
        new = sorted(set(found) - self.names)
        if not new:
            return
        self.names.update(new)
        shown = ",".join(paths.join(self.lock, name) for name in new[:SHOWN]) + (",..." if len(new) > SHOWN else "")
        self.log.warning("foreign nodes in the lock, ignored: no session owns them, so no runner holds them; "
                         + WHAT_TO_DO, lock=self.lock, count=len(new), nodes=shown)
        self.unalerted += len(new)
        now = time.monotonic()
        if self.on_foreign is None or self.alerted_at is not None and now - self.alerted_at < ALERT_INTERVAL:
            return
        self.on_foreign("%d foreign node%s in the lock %s (owned by no session, ignored; %s): %s"
                        % (self.unalerted, "" if self.unalerted == 1 else "s", self.lock, shown, WHAT_TO_DO))
        self.unalerted, self.alerted_at = 0, now
