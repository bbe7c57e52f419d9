"""Putting a staged set in place all or nothing: each entry is renamed into place, what it displaces
is kept in a private folder (never deleted yet), and when a rename fails every step done so far is
undone in reverse order. Used by install.FileSet; every path here is one name relative to a folder
descriptor, and nothing is followed.

Per entry (a file, or a whole folder with what is below it):

- a regular file replaced by a regular file: the old one is hard-linked into the aside folder, then
  the new one renamed over it - one atomic rename, nobody ever sees the name missing; undone by
  renaming the kept link back over it (atomic too). Where the link is refused (fs.protected_hardlinks
  for a non-root runner, a file system without links) the old file is moved aside as below.
- anything else (a file where a folder goes, a folder where a file goes, an entry that goes): the
  old entry is renamed into the aside folder, then the new one (if any) renamed into place - between
  the two renames the name is briefly missing; undone by renaming the new entry back into its
  private folder and the old one back into place.
"""

from __future__ import annotations

import os
import stat


class Swaps:
    """The renames of one install, in the order done, to undo them if a later one fails."""

    def __init__(self):
        self.undo_steps = []  # [(what, from folder fd, to folder fd, name)]: rename to undo, newest last

    def put(self, parent, name, staged, aside, new_is_file):
        """Put the entry *name* of the folder *staged* (an fd, or None: the entry just goes) into the
        folder *parent*; what is there goes to the folder *aside* (an fd) under the same name."""
        try:
            old = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        if staged is not None and new_is_file and old is not None and stat.S_ISREG(old.st_mode):
            try:
                os.link(name, name, src_dir_fd=parent, dst_dir_fd=aside, follow_symlinks=False)
            except OSError:
                pass  # no link: moved aside below
            else:
                os.replace(name, name, src_dir_fd=staged, dst_dir_fd=parent)
                self.undo_steps.append(("put back", aside, parent, name))
                return
        if old is not None:
            os.rename(name, name, src_dir_fd=parent, dst_dir_fd=aside)
            self.undo_steps.append(("put back", aside, parent, name))
        if staged is not None:
            os.rename(name, name, src_dir_fd=staged, dst_dir_fd=parent)
            self.undo_steps.append(("take out", parent, staged, name))

    def undo(self):
        """Undo every rename done, newest first; returns [(name, error)] of the steps that failed
        (what they should have put back is still in the aside folder)."""
        failed = []
        for what, source, dest, name in reversed(self.undo_steps):
            try:
                os.replace(name, name, src_dir_fd=source, dst_dir_fd=dest)
            except OSError as exc:
                failed.append((what, name, exc.strerror))
        self.undo_steps = []
        return failed
