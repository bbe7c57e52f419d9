"""Mirrored configuration (--mirror LOCAL=ZNODE): znodes become local files.

- One consistent snapshot: every znode is read (pipelined, each read leaves a watch), then a
  transaction of `check` operations confirms that all those versions existed together; if one
  moved meanwhile, the snapshot is read again. No file ever mixes old and new values (confd #596).
- Only files whose content differs are staged: a temporary file in the same directory, with the
  mode and owner of the file it replaces, written and fsynced. Then --check-cmd may look at the
  staged set, and only then are they renamed into place (each rename atomic) and their
  directories fsynced. A rejected set is deleted; the old files stay.
- A missing znode never becomes an empty file: at start the runner waits for it, later the last
  file stays (and a warning says so).
"""

from __future__ import annotations

import os
import tempfile

from kazoo.exceptions import NoNodeError

from zkherd.common.connection import ZkError, translate


class Mirror:
    def __init__(self, pairs, wakeup, log, op_timeout):
        self.pairs = list(pairs)  # [(local path, znode)]
        self.wakeup = wakeup
        self.log = log
        self.op_timeout = op_timeout
        self.version = None  # the newest mzxid of the snapshot last installed (or found current)

    def _watch(self, event):
        self.wakeup.post("mirror", event.path)

    def _get(self, result):
        return result.get(timeout=self.op_timeout)

    def snapshot(self, client, attempts=5):
        """{znode: data or None if missing} as of one moment; every znode is watched."""
        znodes = sorted({znode for _, znode in self.pairs})
        for _attempt in range(attempts):
            reads = [(z, client.get_async(z, watch=self._watch)) for z in znodes]
            found, missing = {}, []
            for znode, result in reads:
                try:
                    found[znode] = self._get(result)
                except NoNodeError:
                    missing.append(znode)
                except Exception as exc:
                    if isinstance(exc, client.handler.timeout_exception):
                        raise
                    raise translate(exc, "read", znode) from None
            for znode in missing:  # be told when it appears
                self._get(client.exists_async(znode, watch=self._watch))
            if len(found) > 1:
                txn = client.transaction()
                for znode, (_, stat) in found.items():
                    txn.check(znode, stat.version)
                if any(isinstance(r, Exception) for r in self._get(txn.commit_async())):
                    self.log.debug("mirror: a znode changed while we read the set, reading again")
                    continue
            snap = {z: (found[z][0] or b"") if z in found else None for z in znodes}
            version = max((stat.mzxid for _, stat in found.values()), default=0)
            return snap, version
        raise ZkError("the mirrored znodes kept changing while being read (%d attempts)" % attempts)

    def changes(self, snap):
        """[(local, data)] for files whose content differs from the snapshot; missing znodes
        keep their file."""
        result = []
        for local, znode in self.pairs:
            data = snap[znode]
            if data is None:
                if os.path.exists(local):
                    self.log.warning("mirrored znode is missing, keeping the last file", znode=znode, file=local)
                continue
            try:
                with open(local, "rb") as handle:
                    if handle.read() == data:
                        continue
            except FileNotFoundError:
                pass
            result.append((local, data))
        return result

    def missing(self, snap):
        """Files that do not exist yet and whose znode is missing (the child cannot start)."""
        return [(local, znode) for local, znode in self.pairs if snap[znode] is None and not os.path.exists(local)]

    def missing_files(self):
        return [local for local, _ in self.pairs if not os.path.exists(local)]

    @staticmethod
    def stage(changes):
        """Write each change to a temp file beside its target; [(local, staged path)]."""
        staged = []
        try:
            for local, data in changes:
                directory = os.path.dirname(os.path.abspath(local))
                os.makedirs(directory, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(local), suffix=".zkherd", dir=directory)
                staged.append((local, tmp))
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    try:
                        old = os.stat(local)
                        os.chmod(tmp, old.st_mode & 0o7777)
                        os.chown(tmp, old.st_uid, old.st_gid)
                    except FileNotFoundError:
                        os.chmod(tmp, 0o644)
                    except PermissionError:
                        pass  # not root: the file becomes ours, with the old mode
                    os.fsync(handle.fileno())
        except OSError as exc:
            Mirror.discard(staged)
            raise ZkError("cannot stage %s: %s" % (local, exc.strerror)) from None
        return staged

    @staticmethod
    def install(staged):
        directories = set()
        for local, tmp in staged:
            os.replace(tmp, local)
            directories.add(os.path.dirname(os.path.abspath(local)))
        for directory in directories:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    @staticmethod
    def discard(staged):
        for _, tmp in staged:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
