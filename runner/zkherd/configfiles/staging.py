"""Private staging folders: where install.FileSet writes new content before it is renamed into place.

One per folder written into, made beside the targets: "." + 12 hex digits + ".zkherd", mode 0700,
ours - nobody else can enter it, so nobody can swap what is in it. A user who can write the folder
can still rename it (or put their own at its name), so it is only ever used through its descriptor:

- files are staged and renamed relative to that descriptor;
- --check-cmd gets /proc/<our pid>/fd/<that descriptor>/NAME, a path that leads to the folder
  object itself wherever it was moved (the kernel's magic link; a process of our own user may
  open it, also under systemd's ProtectProc=invisible, which hides only other users' processes);
- it is flock()ed while in use, so that another zkherd can tell it from a leftover.

A crash (or a user who renamed one and back) can leave one behind. Before making a new one, the
leftovers in that folder are removed: only folders with exactly that name pattern, owned by our
uid, mode 0700, made before this process started and not locked by a live zkherd - with what is
in them (what we staged, or moved aside during an install), deleted relative to their descriptors
without following a link. Nothing else is ever deleted.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import stat
import time

from zkherd.configfiles import rmtree

TEMP_SUFFIX = ".zkherd"  # "." + 12 hex digits + this: 20 characters, whatever the target's name
_NAME = re.compile(r"\A\.[0-9a-f]{12}\.zkherd\Z")
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
STARTED = time.time()  # leftovers are older than this process


class StagingError(Exception):
    """The private folder cannot be made, or is not ours (someone replaced it)."""


def is_temp(name):
    """A private staging folder of ours (or a temp file of an older zkherd): never a target."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def make(parent):
    """(name, fd) of a new private folder in the folder *parent* (an fd), locked; StagingError
    if it cannot be made or what we open at its name is not ours."""
    for _attempt in range(5):
        name = "." + secrets.token_hex(6) + TEMP_SUFFIX
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise StagingError(exc.strerror) from None
    try:
        fd = os.open(name, _DIR, dir_fd=parent)  # a link or another's folder in its place: refused
    except OSError as exc:
        raise StagingError(exc.strerror) from None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        os.close(fd)
        raise StagingError("the private folder %s was replaced (is someone else writing there?)" % name)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours and new: nobody else can hold it
    except OSError as exc:
        os.close(fd)
        raise StagingError(exc.strerror) from None
    return name, fd


def check_path(fd, name):
    """The path --check-cmd gets for the file *name* staged in the private folder *fd*."""
    return "/proc/%d/fd/%d/%s" % (os.getpid(), fd, name)


def sweep(parent):
    """Remove the leftover private folders of ours in the folder *parent* (an fd); returns their names."""
    removed = []
    with os.scandir(parent) as entries:
        names = [entry.name for entry in entries if _NAME.match(entry.name)]
    for name in names:
        try:
            fd = os.open(name, _DIR, dir_fd=parent)
        except OSError:
            continue  # a link, gone, not a folder: not ours to touch
        try:
            if _leftover(fd) and _empty(fd, parent) and _same(parent, name, fd):
                os.rmdir(name, dir_fd=parent)
                removed.append(name)
        except OSError:
            pass  # whatever it is now, it stays
        finally:
            os.close(fd)
    return removed


def _leftover(fd):
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) != 0o700 or st.st_ctime >= STARTED:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when fd is closed
    except BlockingIOError:
        return False  # a live zkherd stages there right now
    return True


def _empty(fd, parent):
    """Delete what is in the folder *fd* (its top entries: if ours or the owner's of *parent*);
    True if it is empty then."""
    clear(fd, {os.geteuid(), os.fstat(parent).st_uid})
    with os.scandir(fd) as entries:
        return next(entries, None) is None


def clear(fd, allowed_owners=None):
    """Delete everything in the folder *fd* (ours: a private folder), relative to descriptors, never
    through a link, without recursion (rmtree.py); returns what was left alone (OSError is not raised)."""
    return rmtree.clear(fd, allowed_owners)


def _same(parent, name, fd):
    return os.path.samestat(os.stat(name, dir_fd=parent, follow_symlinks=False), os.fstat(fd))
