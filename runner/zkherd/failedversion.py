"""The failed-version record ROLLING_LOCK/failed: a host whose restarted child failed with a
configuration version writes it, the others read it before they apply a version and skip that one.

The record steers every host of a rollout, and anyone who may write the rolling lock can write it,
so it is untrusted input. A configuration version is a zxid (the newest mzxid/pzxid of the mirrored
set), and a genuine record is written after the version it names existed: its version is below the
record's own mzxid (which is itself no newer than anything the runner has seen). A record naming a
version that cannot exist (in the future, negative, not a number) is refused with a WARNING, and
the rollout goes on; before this rule, one such write froze every rollout for good.
"""

from __future__ import annotations

import json
import socket
import time

from kazoo.exceptions import ConnectionLoss, KazooException, NoNodeError, SessionExpiredError

from zkherd.common import paths

WHAT_TO_DO = "delete the node, and give the rolling lock an ACL that only the deployment's credentials may write " \
             "(--acl auth::rwcda)"


def recorded_version(data, mzxid):
    """(version, None) for a record that names a version that existed when it was written, else
    (None, why not)."""
    try:
        record = json.loads(data.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError too
        return None, "it is not JSON"
    if not isinstance(record, dict):
        return None, "it is not a JSON object"
    version = record.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        return None, "its version %s is not a number" % json.dumps(version)[:40]
    if version < 0:
        return None, "its version %d is negative" % version
    if version >= mzxid:
        return None, ("its version %d is newer than the record itself (written at zxid %d): no such version "
                      "existed when it was written" % (version, mzxid))
    return version, None


class FailedVersions:
    def __init__(self, rolling_lock, ident, log):
        self.node = paths.join(rolling_lock, "failed")
        self.ident = ident
        self.log = log
        self.refused = set()  # mzxid of the records already refused (one warning each)

    def record(self, client, version, why, timeout):
        if version is None or version < 0:
            return  # no version the others could skip
        data = json.dumps({"version": version, "host": socket.gethostname(), "id": self.ident,
                           "reason": why, "time": time.time()}).encode()
        try:
            try:
                client.set_async(self.node, data).get(timeout=timeout)
            except NoNodeError:
                client.create_async(self.node, data, makepath=True).get(timeout=timeout)
        except Exception as exc:  # the alert and the log still say it
            self.log.warning("could not record the failed version", node=self.node, error=str(exc))

    def newest(self, client, timeout):
        """The version another host recorded as failed, or None (none, or a record refused)."""
        try:
            data, stat = client.get_async(self.node).get(timeout=timeout)
        except NoNodeError:
            return None
        except (ConnectionLoss, SessionExpiredError):
            raise
        except KazooException as exc:  # denied, say: apply the version rather than stop the rollout
            self.log.warning("cannot read the failed-version record; going on without it", node=self.node,
                             error=type(exc).__name__)
            return None
        version, why = recorded_version(data, stat.mzxid)
        if version is None and stat.mzxid not in self.refused:
            self.refused.add(stat.mzxid)
            self.log.warning("refusing the failed-version record: %s; the rollout goes on" % why, node=self.node,
                             action=WHAT_TO_DO)
        return version
