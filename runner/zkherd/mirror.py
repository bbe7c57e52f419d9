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
- --mirror-dir LOCAL_DIR=ZNODE mirrors a subtree: every znode without children is a file at its
  relative path (folders' own data is not written), files whose znode went are deleted with the
  next install, and every znode of the subtree is watched. Nothing is written outside LOCAL_DIR,
  nor through a symlink inside it (safe_join).
"""

from __future__ import annotations

import os
import tempfile

from kazoo.exceptions import NoNodeError

from zkherd.common import paths, tree
from zkherd.common.connection import ZkError, translate


class Mirror:
    def __init__(self, pairs, wakeup, log, op_timeout, dir_pairs=()):
        self.pairs = list(pairs)  # [(local path, znode)]
        self.dir_pairs = list(dir_pairs)  # [(local directory, root znode)]
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
        znodes = sorted({pair[1] for pair in self.pairs})
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
            trees = {}
            for root in [pair[1] for pair in self.dir_pairs]:
                nodes = tree.read_tree(client, root, watch=self._watch)
                trees[root] = nodes or None
                if not nodes:
                    missing.append(root)
                found.update({("tree", path): (node.data, node.stat) for path, node in nodes.items()})
            for znode in missing:  # be told when it appears
                self._get(client.exists_async(znode, watch=self._watch))
            if len(found) > 1:
                txn = client.transaction()
                for key, answer in found.items():
                    txn.check(key[1] if isinstance(key, tuple) else key, answer[1].version)
                if any(isinstance(r, Exception) for r in self._get(txn.commit_async())):
                    self.log.debug("mirror: a znode changed while we read the set, reading again")
                    continue
            snap = {z: (found[z][0] or b"") if z in found else None for z in znodes}
            for root, nodes in trees.items():
                snap[("tree", root)] = None if nodes is None else {
                    paths.relative(root, path): node.data for path, node in nodes.items() if not node.children}
            # a deletion shows in the parent's pzxid, not in any mzxid
            version = max((max(answer[1].mzxid, answer[1].pzxid) for answer in found.values()), default=0)
            return snap, version
        raise ZkError("the mirrored znodes kept changing while being read (%d attempts)" % attempts)

    def desired_files(self, snap):
        """[(local, data or None)] of every mirrored file (None: its znode is missing)."""
        result = [(local, snap[znode]) for local, znode in self.pairs]
        for local_dir, root in self.dir_pairs:
            leaves = snap[("tree", root)]
            for rel, data in sorted((leaves or {}).items()):
                result.append((safe_join(local_dir, rel), data))
        return result

    def stale(self, snap):
        """Files in mirrored directories whose znode is gone (deleted with the next install)."""
        result = []
        for local_dir, root in self.dir_pairs:
            leaves = snap[("tree", root)]
            if leaves is None or not os.path.isdir(local_dir):
                continue  # a missing root keeps the last files, as a missing znode does
            wanted = {safe_join(local_dir, rel) for rel in leaves}
            for directory, _dirs, files in os.walk(local_dir):
                result += [p for p in (os.path.join(directory, f) for f in files)
                           if p not in wanted and not p.endswith(".zkherd")]
        return sorted(result)

    def changes(self, snap):
        """[(local, data)] for files whose content differs from the snapshot; missing znodes
        keep their file."""
        result = []
        for local, data in self.desired_files(snap):
            if data is None:
                if os.path.exists(local):
                    self.log.warning("mirrored znode is missing, keeping the last file", file=local)
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
        """Files or directories that do not exist yet and whose znode is missing (the child
        cannot start)."""
        return ([(local, znode) for local, znode in self.pairs if snap[znode] is None and not os.path.exists(local)]
                + [(local_dir, root) for local_dir, root in self.dir_pairs
                   if snap[("tree", root)] is None and not os.path.isdir(local_dir)])

    def missing_files(self):
        return ([pair[0] for pair in self.pairs if not os.path.exists(pair[0])]
                + [pair[0] for pair in self.dir_pairs if not os.path.isdir(pair[0])])

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
    def install(staged, stale=()):
        directories = set()
        for local, tmp in staged:
            os.replace(tmp, local)
            directories.add(os.path.dirname(os.path.abspath(local)))
        for local in stale:
            try:
                os.unlink(local)
            except FileNotFoundError:
                continue
            directories.add(os.path.dirname(os.path.abspath(local)))
        for directory in directories:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    @staticmethod
    def discard(staged):
        for tmp in [pair[1] for pair in staged]:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def safe_join(local_dir, rel):
    """LOCAL_DIR/rel for a relative znode path 'a/b' (or a list of names), refusing a name that is
    empty, '.', '..' or holds '/' or NUL, and a folder on the way that is a symlink: nothing named
    by ZooKeeper is written outside LOCAL_DIR, nor through a link inside it."""
    names = rel.split("/") if isinstance(rel, str) else list(rel)
    bad = next((n for n in names if n in ("", ".", "..") or "/" in n or "\0" in n), None)
    if bad is not None:
        raise ZkError("refusing to write %r under %s: %r is not a plain file name" % ("/".join(names), local_dir, bad))
    target = os.path.join(local_dir, *names)
    parent = os.path.realpath(os.path.dirname(target))
    expected = os.path.join(os.path.realpath(local_dir), *names[:-1])
    if parent != expected:
        raise ZkError("refusing to write %s: a folder on the way is a symlink (it leads to %s); symlinks inside %s "
                      "are not followed" % (target, parent, local_dir))
    return target
