"""The failed-version record ROLLING_LOCK/failed: a host whose restarted child failed with a
configuration version writes it, the others read it before they apply a version and skip exactly
that version.

The record steers every host of a rollout, and anyone who may write the rolling lock can write it,
so it is untrusted input. A configuration version is a zxid (the newest mzxid/pzxid of the mirrored
set). A host reads the record first and the set right after it, so a genuine record names a version
that existed before the record was written (below the record's own mzxid) and no newer than the
set this host then reads (zxids only grow). A record that breaks either rule, or is not a JSON
object with an integer version, is refused with a WARNING and the rollout goes on. A version is
skipped only when it is exactly the one recorded: someone who may write the record can still pause
a rollout on the current version, as a genuine failure does (the ACL is the defense), but never
freeze the versions pushed after it.
"""

from __future__ import annotations

import json
import socket
import time

from kazoo.exceptions import ConnectionLoss, KazooException, NoNodeError, SessionExpiredError

from zkherd.common import codec, paths
from zkherd.core.loop import TRANSIENT

WHAT_TO_DO = "delete the node, and give the rolling lock an ACL that only the deployment's credentials may write " \
             "(--acl auth::rwcda)"


def recorded_version(data, mzxid):
    """(version, None) for a record that names a version that existed when it was written, else
    (None, why not). Decoded by the shared bounded codec: deep nesting is an error, not a crash."""
    try:
        (data or b"").decode("utf-8")
        record = codec.decode(data, "json", "it")
    except UnicodeDecodeError:
        return None, "it is not UTF-8 text"
    except codec.CodecError as exc:  # not JSON, or nested too deeply
        return None, exc.message
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
        self.refused = set()  # (mzxid of the record, why): each refusal is logged once
        self.mzxid = None  # of the record read last

    def record(self, loop, version, why):
        """False if ZooKeeper could not be asked (try again on a later turn), else True (written, or
        given up on: the alert and the log still say it)."""
        if version is None or version < 0:
            return True  # no version the others could skip
        data = json.dumps({"version": version, "host": socket.gethostname(), "id": self.ident,
                           "reason": why, "time": time.time()}).encode()
        try:
            try:
                loop.get(loop.client.set_async(self.node, data))
            except NoNodeError:
                loop.get(loop.client.create_async(self.node, data, makepath=True))
        except Exception as exc:  # the alert and the log still say it
            self.log.warning("could not record the failed version", node=self.node,
                             error=str(exc) or type(exc).__name__)
            return not isinstance(exc, TRANSIENT)
        return True

    def read(self, loop):
        """The version recorded as failed, checked against the record itself, or None (none, or
        refused); call check() with the set read right after."""
        try:
            data, stat = loop.get(loop.client.get_async(self.node))
        except NoNodeError:
            return None
        except (ConnectionLoss, SessionExpiredError):
            raise
        except KazooException as exc:  # denied, say: apply the version rather than stop the rollout
            self.log.warning("cannot read the failed-version record; going on without it", node=self.node,
                             error=type(exc).__name__)
            return None
        self.mzxid = stat.mzxid
        version, why = recorded_version(data, stat.mzxid)
        if why is not None:
            self.refuse(why)
        return version

    def check(self, version, newest_read):
        """*version* (from read()) if it can be genuine given the newest set this host has read
        since it read the record, else None (refused at WARNING)."""
        if version is not None and version > newest_read:
            self.refuse("its version %d is newer than any configuration this host read (newest: %d), and a "
                        "genuine record is written after the version it names" % (version, newest_read))
            return None
        return version

    def refuse(self, why):
        if (self.mzxid, why) in self.refused:
            return
        self.refused.add((self.mzxid, why))
        self.log.warning("refusing the failed-version record: %s; the rollout goes on" % why, node=self.node,
                         action=WHAT_TO_DO)
