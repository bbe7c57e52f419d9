"""Local edits of a file or of a folder tree, told by Linux's inotify: a thread reads the kernel's
events and only posts ("local", None) to the loop's wakeup (core/wakeup.py); the loop does the rest.

Through ctypes (three libc calls), so that offline sites need no extra wheel. What it follows:
- a file: its folder, for events of its name, so that a file replaced by rename (vim, sed -i), or
  deleted and made again, is still followed (a watch on the file's inode would stay on the old one);
- a folder tree (a DJB directory): every folder in it, and the folders made later, added as their
  creation is reported; and the parent folder, in case the whole tree is replaced.
Only finished writes count (IN_CLOSE_WRITE, a rename, a removal, a folder made), and a burst of them
is posted once after QUIET seconds without more: the loop never reads a file a writer still has open
for writing because of us (a file that still does not parse is handled by the reader, as when polling).

`unusable(path)` says why inotify cannot be used for *path* (no inotify, a network filesystem that
does not report remote edits); Watcher() raises WatchError when the kernel refuses (inotify limits).
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import threading
import time

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_Q_OVERFLOW, IN_IGNORED = 0x400, 0x800, 0x4000, 0x8000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_ISDIR = 0x1000000, 0x2000000, 0x40000000
CHANGES = IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF \
    | IN_MOVE_SELF
EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name, NUL-padded
QUIET, MOST = 0.05, 0.5  # a burst is posted after QUIET s without events, at the latest MOST s after it began

# Filesystems where inotify does not see edits made elsewhere (/proc/self/mountinfo's type names)
REMOTE = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "afs", "lustre", "gpfs", "fuse")


class WatchError(Exception):
    pass


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    return libc


def fs_type(path):
    """The filesystem type of the mount that holds *path* (None if unknown)."""
    real, best, kind = os.path.realpath(path), "", None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                point = fields[4].encode().decode("unicode_escape")  # \040 for a space
                fstype = fields[fields.index("-") + 1]
                if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                    best, kind = point, fstype
    except (OSError, ValueError, IndexError):
        return None
    return kind


def unusable(path):
    """Why inotify cannot follow *path*, or None."""
    try:
        _libc().inotify_init1  # noqa: B018 - only: is it there (glibc, musl)?
    except (OSError, AttributeError):
        return "this system has no inotify"
    kind = fs_type(path)
    if kind and kind.split(".")[0] in REMOTE:
        return "%s is on a %s filesystem, where inotify misses edits made on other hosts" % (path, kind)
    return None


class Watcher:
    def __init__(self, path, tree, post):
        """Follow *path* (a file, or with *tree* a folder tree); *post*() is called from the thread."""
        self.path = os.path.abspath(path)
        self.parent, self.name = os.path.split(self.path)
        self.tree = tree
        self.post = post
        self.error = None  # set by the thread when the kernel refused a watch later (post is called then too)
        self._libc = _libc()
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise WatchError(self._why("cannot start inotify"))
        self._dirs = {}  # wd -> folder
        self._stop = False
        try:
            self._add(self.parent)
            if tree:
                self._add_tree(self.path)
        except WatchError:
            os.close(self._fd)
            raise
        self._thread = threading.Thread(target=self._run, name="fswatch", daemon=True)
        self._thread.start()

    def _why(self, what):
        err = ctypes.get_errno()
        hint = {errno.EMFILE: " (fs.inotify.max_user_instances reached)",
                errno.ENOSPC: " (fs.inotify.max_user_watches reached)"}.get(err, "")
        return "%s: %s%s" % (what, os.strerror(err), hint)

    def _add(self, folder):
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(folder), CHANGES | IN_ONLYDIR | IN_DONT_FOLLOW)
        if wd < 0:
            if ctypes.get_errno() in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return  # gone meanwhile, or a link: its parent's event tells
            raise WatchError(self._why("cannot watch %s" % folder))
        self._dirs[wd] = folder

    def _add_tree(self, top):
        """Watch *top* and the folders below it (not hidden ones, which CONF's reader skips too)."""
        self._add(top)
        for folder, dirs, _files in os.walk(top):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in dirs:
                self._add(os.path.join(folder, name))

    def _relevant(self, wd, mask, name):
        """Whether an event may change what CONF reads; adds the watches of folders made in the tree."""
        folder = self._dirs.get(wd)
        if mask & IN_IGNORED:
            self._dirs.pop(wd, None)
            return False
        if folder is None:
            return False
        if folder == self.parent:
            if name != self.name:
                return False
            if self.tree and mask & (IN_CREATE | IN_MOVED_TO) and mask & IN_ISDIR:
                self._add_tree(self.path)  # the tree itself made again
            return True
        if name.startswith("."):
            return False  # editors' swap and temporary files; their rename to the real name counts
        if mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
            self._add_tree(os.path.join(folder, name))
        return True

    def _events(self):
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        offset = 0
        while offset < len(data):
            wd, mask, _cookie, size = EVENT.unpack_from(data, offset)
            name = data[offset + EVENT.size:offset + EVENT.size + size].rstrip(b"\0")
            offset += EVENT.size + size
            yield wd, mask, os.fsdecode(name)

    def _run(self):
        pending_since = None
        while not self._stop:
            timeout = 0.5 if pending_since is None else QUIET
            try:
                ready = select.select([self._fd], [], [], timeout)[0]
            except (OSError, ValueError):  # closed under us
                return
            now = time.monotonic()
            if ready:
                try:
                    for wd, mask, name in list(self._events()):
                        if mask & IN_Q_OVERFLOW or self._relevant(wd, mask, name):
                            pending_since = pending_since or now
                        if mask & IN_Q_OVERFLOW and self.tree:
                            self._add_tree(self.path)
                except WatchError as exc:  # a folder made later could not be watched: the loop polls from now
                    self.error = str(exc)
                    self.post("local", None)
                    return
                except OSError:
                    return
            if pending_since is not None and (not ready or now - pending_since >= MOST):
                pending_since = None
                self.post("local", None)

    def close(self):
        self._stop = True
        self._thread.join(1.0)
        os.close(self._fd)
