"""Mirrored configuration (--mirror LOCAL=ZNODE): znodes become local files.

- One consistent snapshot: every znode is read (pipelined, each read leaves a watch), then a
  transaction of `check` operations confirms that all those versions existed together; if one
  moved meanwhile, the snapshot is read again. No file ever mixes old and new values (confd #596).
- Only files whose content differs are staged (install.FileSet: a temporary file in the same
  directory, with the mode and owner of the file it replaces, written and fsynced, all through
  file descriptors so that a local user who can write the folder cannot redirect root). Then
  --check-cmd may look at the staged set, and only then are they renamed into place (each rename
  atomic) and their directories fsynced. A rejected set is deleted; the old files stay.
- A missing znode never becomes an empty file: at start the runner waits for it, later the last
  file stays (and a warning says so).
- --mirror-dir LOCAL_DIR=ZNODE mirrors a subtree: every znode without children is a file at its
  relative path (folders' own data is not written; the root znode is always the folder, so a root
  without children is an empty folder - made at start, emptied as one set later), files and folders
  that no znode is at or below are deleted with the next install, and every znode of the subtree is
  watched. A change of
  shape (a file that becomes a folder or back, a subtree that appears or goes) is one set like any
  other: installed whole or not at all (install.FileSet). Nothing is written outside LOCAL_DIR,
  nor through a symlink inside it (install.Target.below, install.FileSet).
"""

from __future__ import annotations

import os

from kazoo.exceptions import ConnectionLoss, KazooException, NoNodeError, SessionExpiredError

from zkherd.common import paths, tree
from zkherd.common.connection import ZkError, translate
from zkherd.common.errors import VERSION
from zkherd.configfiles.install import Target
from zkherd.configfiles.templates import RenderError, TemplateSet
from zkherd.configfiles.zkreads import Moving

__all__ = ["Mirror", "Moving"]


class Mirror:
    def __init__(self, pairs, dir_pairs, post, log, templates=()):
        self.pairs = list(pairs)  # [(local path, znode)]
        self.dir_pairs = list(dir_pairs)  # [(local directory, root znode)]
        self.post = post
        self.log = log
        # --template: rendered first, confirmed after the mirrored reads: one state for the whole set
        self.templates = TemplateSet(templates, post, log) if templates else None

    def _watch(self, event):
        self.post("mirror", event.path)

    def snapshot(self, loop):
        """({znode: data or None if missing}, version) as of one moment; every znode is watched.
        Raises Moving when a znode changed while the set was read (the loop reads again)."""
        client, get = loop.client, loop.get
        rendered = self.render(loop)
        znodes = sorted({pair[1] for pair in self.pairs})
        reads = [(z, client.get_async(z, watch=self._watch)) for z in znodes]
        found, missing = {}, []
        for znode, result in reads:
            try:
                found[znode] = get(result)
            except NoNodeError:
                missing.append(znode)
            except (ConnectionLoss, SessionExpiredError):
                raise  # the loop tries again
            except KazooException as exc:
                raise translate(exc, "read", znode) from None
        trees = {}
        for root in [pair[1] for pair in self.dir_pairs]:
            try:
                nodes = tree.read_tree(client, root, watch=self._watch, attempts=1, get=get)
            except ZkError as exc:
                if exc.kind == VERSION:
                    raise Moving(exc.message) from None
                raise
            trees[root] = nodes or None
            if not nodes:
                missing.append(root)
            found.update({("tree", path): (node.data, node.stat) for path, node in nodes.items()})
        for znode in missing:  # be told when it appears
            get(client.exists_async(znode, watch=self._watch))
        if len(found) > 1:
            txn = client.transaction()
            for key, answer in found.items():
                txn.check(key[1] if isinstance(key, tuple) else key, answer[1].version)
            if any(isinstance(r, Exception) for r in get(txn.commit_async())):
                raise Moving("a mirrored znode changed while the set was read")
        snap = {z: (found[z][0] or b"") if z in found else None for z in znodes}
        for root, nodes in trees.items():
            snap[("tree", root)] = None if nodes is None else {  # the root itself is a folder, also when empty
                paths.relative(root, path): node.data for path, node in nodes.items()
                if not node.children and path != root}
        # a deletion shows in the parent's pzxid, not in any mzxid
        version = max((max(answer[1].mzxid, answer[1].pzxid) for answer in found.values()), default=0)
        if self.templates is not None:
            self.templates.confirm(loop)  # Moving if what they read changed before the mirrored reads ended
            snap.update((("template", dest), data) for dest, data in rendered.items())
            version = max(version, self.templates.version())
        return snap, version

    def render(self, loop):
        """{DEST: bytes or None} of the templates; a RenderError is believed only once confirmed
        (bad data that was already being replaced is Moving)."""
        if self.templates is None:
            return {}
        try:
            return self.templates.render(loop)
        except RenderError:
            self.templates.confirm(loop)
            raise

    def desired_files(self, snap):
        """[(Target, data or None)] of every mirrored file (None: its znode is missing)."""
        result = [(Target.file(local), snap[znode]) for local, znode in self.pairs]
        for local_dir, root in self.dir_pairs:
            leaves = snap[("tree", root)]
            for rel, data in sorted((leaves or {}).items()):
                result.append((Target.below(local_dir, rel), data))
        for template in self.templates.templates if self.templates is not None else ():
            result.append((Target.file(template.dest), snap[("template", template.dest)]))
        return result

    def source(self, path):
        """The znode a file comes from (for a template: the missing znode its render read)."""
        found = dict(self.pairs + self.template_pairs()).get(path)
        return found or "-"

    def stale(self, snap, files):
        """Entries in mirrored directories that no znode is at or below (deleted with the next
        install: a file, a link itself, a whole folder), listed through *files* (a FileSet)
        without following links."""
        result = []
        for local_dir, root in self.dir_pairs:
            leaves = snap[("tree", root)]
            if leaves is None or not os.path.isdir(local_dir):
                continue  # a missing root keeps the last files, as a missing znode does
            result += files.unwanted(local_dir, [Target.below(local_dir, rel).names for rel in leaves])
        return result

    def changes(self, snap, files):
        """[(Target, data)] for files whose content differs from the snapshot (compared through
        *files*: sizes first, never a whole unbounded read); missing znodes keep their file."""
        result = []
        for target, data in self.desired_files(snap):
            if data is None:
                if files.exists(target):
                    self.log.warning("mirrored znode is missing, keeping the last file", file=target.path,
                                     znode=self.source(target.path))
            elif files.differs(target, data):
                result.append((target, data))
        return result

    def folders(self, snap):
        """[(root, names)] of the folders the mirrored files go into: the operator's, and every folder
        on the way of a file of *snap* below a mirrored directory."""
        found = {(os.path.dirname(os.path.abspath(local)), ()) for local, _z in self.pairs + self.template_pairs()}
        for local_dir, root in self.dir_pairs:
            found.add((local_dir, ()))
            for rel in snap[("tree", root)] or {}:
                try:
                    names = Target.below(local_dir, rel).names
                except ZkError:
                    continue  # refused when the set is staged
                found.update((local_dir, names[:depth]) for depth in range(1, len(names)))
        return sorted(found)

    def empty_roots(self, snap):
        """Mirrored directories whose root znode has no children: an empty folder (made if missing)."""
        return [local_dir for local_dir, root in self.dir_pairs if snap[("tree", root)] == {}]

    def missing(self, snap):
        """Files or directories that do not exist yet and whose znode is missing (the child
        cannot start)."""
        return ([(local, znode) for local, znode in self.pairs if snap[znode] is None and not os.path.exists(local)]
                + [(local_dir, root) for local_dir, root in self.dir_pairs
                   if snap[("tree", root)] is None and not os.path.isdir(local_dir)]
                + [(dest, znode) for dest, znode in self.template_pairs()
                   if snap[("template", dest)] is None and not os.path.exists(dest)])

    def missing_files(self):
        return ([pair[0] for pair in self.pairs + self.template_pairs() if not os.path.exists(pair[0])]
                + [pair[0] for pair in self.dir_pairs if not os.path.isdir(pair[0])])

    def template_pairs(self):
        """[(DEST, the znode its last render missed, or SRC)]."""
        if self.templates is None:
            return []
        return [(t.dest, self.templates.missing.get(t.dest, t.src)) for t in self.templates.templates]
