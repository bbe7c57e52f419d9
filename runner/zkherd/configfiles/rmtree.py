"""Deleting what is in one of our private folders (staging.py) - which may hold a tree a local user
planted in a mirrored folder before an install moved it aside - without recursion, within a bounded
number of descriptors, and without making root delete anything that user could not.

- Iterative: a stack of open folders, at most MAX_OPEN deep. A folder deeper than that is first
  renamed up into the private folder itself (ours, mode 0700: nobody else can enter it) and cleared
  from there later, so a tree 100,000 folders deep costs MAX_OPEN descriptors and O(n) steps.
- Every path is one name relative to a descriptor, opened with O_NOFOLLOW: a link is deleted, never
  followed.
- Owners (the confused deputy): a folder is entered only if its owner is the owner of the folder that
  holds it, or that folder is ours (the runner's uid) and the entry's owner is one the caller allows
  (the runner's uid, or the owner of the mirrored folder it came from). So a user who moves in a
  folder of theirs holding root's folders never gets root to delete inside those: they stay where
  they are (in the private folder, which then stays too) and `kept` names them. Nor is a folder of
  ours right inside the private folder that others may write, when the caller names the owners
  (a folder of displaced or leftover entries): renaming a folder needs write access to it, so that
  is the one kind of our folders another user can have moved into a mirrored folder. zkherd makes
  its own folders writable by itself alone (install.folder_mode).
- Bounded work: at most MAX_STEPS entries per call; beyond, the rest stays (a leftover, swept later).
Never raises: what cannot be deleted stays.
"""

from __future__ import annotations

import os
import secrets
import stat

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_OPEN = 32  # descriptors held at once, whatever the depth
MAX_STEPS = 1_000_000  # entries looked at per call
_GONE = object()


class _Frame:
    """An open folder being emptied: its fd, its name in the folder below it on the stack, its
    owner, the entries still to do [(name, is a folder)], and whether it is the private folder."""

    def __init__(self, fd, name, owner, pending, ours=False):
        self.fd, self.name, self.owner, self.pending, self.ours = fd, name, owner, pending, ours


def clear(fd, allowed_owners=None):
    """Delete everything in the folder *fd* (one of our private folders); returns the names (relative
    to it) of the folders left alone because of their owner, or because the work bound was reached.
    *allowed_owners*: the owners a folder right inside *fd* may have to be entered (None: any)."""
    kept, steps = [], 0
    try:
        top = _Frame(fd, None, os.geteuid(), _listing(fd), ours=True)
    except OSError:
        return ["."]
    stack = [top]
    while stack:
        frame = stack[-1]
        if not frame.pending or steps >= MAX_STEPS:
            if frame.pending:
                kept.append(frame.name or ".")
            stack.pop()
            if frame is not top:
                os.close(frame.fd)
                _quietly(os.rmdir, frame.name, dir_fd=stack[-1].fd)  # not empty: something stays in it
            continue
        name, is_dir = frame.pending.pop()
        steps += 1
        if not is_dir:
            _quietly(os.unlink, name, dir_fd=frame.fd)
            continue
        child = _enter(frame, name, allowed_owners if frame is top else None)
        if child is _GONE:
            continue
        if child is None:
            kept.append(name)
            continue
        if len(stack) >= MAX_OPEN:  # too deep to hold: move it up into the private folder, clear it from there
            os.close(child.fd)
            moved = _move_up(frame.fd, name, fd)
            if moved is None:
                kept.append(name)
            else:
                top.pending.append((moved, True))
            continue
        stack.append(child)
    return kept


def _enter(frame, name, allowed_owners):
    """The _Frame of the subfolder *name* of *frame*; None if it is left alone for its owner (or
    cannot be listed); _GONE if it is no longer a folder (a link or a file now: deleted as such)."""
    try:
        sub = os.open(name, _DIR, dir_fd=frame.fd)
    except OSError:
        _quietly(os.unlink, name, dir_fd=frame.fd)
        return None if _exists(frame.fd, name) else _GONE
    st = os.fstat(sub)
    owner = st.st_uid
    if owner != frame.owner and not (frame.ours and (allowed_owners is None or owner in allowed_owners)):
        os.close(sub)
        return None
    if frame.ours and allowed_owners is not None and owner == frame.owner and st.st_mode & 0o022:
        # Ours, yet others may write it: moving a folder needs write access to it, so another user may
        # have moved it into the mirrored folder from anywhere (a shared group folder of root's).
        os.close(sub)
        return None
    try:
        pending = _listing(sub)
    except OSError:
        os.close(sub)
        return None
    return _Frame(sub, name, owner, pending)


def _move_up(parent, name, top):
    """Rename the folder *name* of *parent* into the private folder *top* (nobody else can enter it,
    so a name free now stays free); its new name, None if that fails."""
    for _attempt in range(5):
        new = ".deep-" + secrets.token_hex(8)
        if not _exists(top, new):
            try:
                os.rename(name, new, src_dir_fd=parent, dst_dir_fd=top)
            except OSError:
                return None
            return new
    return None


def _listing(fd):
    with os.scandir(fd) as entries:
        return [(entry.name, _is_dir(entry)) for entry in entries]


def _is_dir(entry):
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _exists(fd, name):
    try:
        return stat.S_IFMT(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode) != 0
    except OSError:
        return False


def _quietly(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except OSError:
        pass
