"""Local edits of a file or of a folder tree, told by Linux's inotify: a thread reads the kernel's
events and only posts ("local", None) to the loop's wakeup (core/wakeup.py); the loop does the rest.

Through ctypes (four libc calls), so that offline sites need no extra wheel. What it follows:
- a file: its folder, for events of its name, so that a file replaced by rename (vim, sed -i), or
  deleted and made again, is still followed (a watch on the file's inode would stay on the old one);
- a folder tree (a DJB directory): every folder in it, and the folders made later, added as their
  creation is reported; and the parent folder, in case the whole tree is replaced;
- the folder above CONF's folder, for that folder's name: when CONF's folder is removed and made
  again, or swapped by rename, it is watched again (without that folder above: the loop polls).
CONF's folder and the tree's top are watched through symlinks (the operator's, as on the way to
any file); links below the top are not followed (read_dir refuses them).
Only finished writes count (IN_CLOSE_WRITE, a rename, a removal, a folder made), and a burst of them
is posted once after QUIET seconds without more: the loop never reads a file a writer still has open
for writing because of us (a file that still does not parse is handled by the reader, as when polling).

`unusable(path)` says why inotify cannot be used for *path* (no inotify, a network filesystem that
does not report remote edits); Watcher() raises WatchError when a watch is refused (inotify limits,
a folder that cannot be watched). Later, the thread sets Watcher.error and posts: the loop polls.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import select
import struct
import threading
import time

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_Q_OVERFLOW, IN_IGNORED = 0x400, 0x800, 0x4000, 0x8000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_ISDIR = 0x1000000, 0x2000000, 0x40000000
SELF = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED  # the watched folder itself went (or its watch)
CHANGES = IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF \
    | IN_MOVE_SELF
ROOT = CHANGES | IN_ONLYDIR  # CONF's folder, the tree's top: through symlinks
BELOW = ROOT | IN_DONT_FOLLOW  # the tree's folders
ABOVE = IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR  # for CONF's folder coming back
GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)  # a folder gone meanwhile, or a link: an event tells later
EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name, NUL-padded
QUIET, MOST = 0.05, 0.5  # a burst is posted after QUIET s without events, at the latest MOST s after it began

# Filesystems where inotify does not see edits made elsewhere (/proc/self/mountinfo's type names)
REMOTE = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "afs", "lustre", "gpfs", "fuse",
          "virtiofs", "vboxsf", "vmhgfs")


class WatchError(Exception):
    pass


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc


def _unescape(field):
    """A mountinfo path: bytes with \\NNN octal escapes (space, tab, newline, backslash), then the
    file system's encoding - not unicode_escape, which reads UTF-8 bytes as Latin-1."""
    return os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8) & 0xFF]), field))


def fs_type(path):
    """The filesystem type of the mount that holds *path* (None if unknown)."""
    real, best, kind = os.path.realpath(path), "", None
    try:
        with open("/proc/self/mountinfo", "rb") as handle:
            for line in handle:
                fields = line.split()
                point = _unescape(fields[4])
                fstype = fields[fields.index(b"-") + 1].decode("ascii", "replace")
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
        self.above, self.parent_name = os.path.split(self.parent)
        self.tree = tree
        self.post = post
        self.error = None  # set by the thread when it gave up (post is called then too): the loop polls
        self._libc = _libc()
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise WatchError(self._why("cannot start inotify"))
        self._stop_r, self._stop_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # wakes the thread's select to end
        self._dirs = {}  # wd -> folder: CONF's folder and the tree's folders
        self._parent_wd = self._above_wd = None
        self._closed = False
        try:
            self._watch_parent(strict=True)
            if self.parent_name:  # not / itself; without it, CONF's folder going makes the loop poll
                wd = self._libc.inotify_add_watch(self._fd, os.fsencode(self.above), ABOVE)
                self._above_wd = wd if wd >= 0 else None
        except WatchError:
            self._close_fds()
            raise
        self._thread = threading.Thread(target=self._run, name="fswatch", daemon=True)
        self._thread.start()

    def _why(self, what):
        err = ctypes.get_errno()
        hint = {errno.EMFILE: " (fs.inotify.max_user_instances reached)",
                errno.ENOSPC: " (fs.inotify.max_user_watches reached)"}.get(err, "")
        return "%s: %s%s" % (what, os.strerror(err), hint)

    def _add(self, folder, mask, strict=False):
        """The watch of *folder*, or None when it is gone meanwhile (unless *strict*: then a WatchError)."""
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(folder), mask)
        if wd < 0:
            if not strict and ctypes.get_errno() in GONE:
                return None
            raise WatchError(self._why("cannot watch %s" % folder))
        self._dirs[wd] = folder
        return wd

    def _forget(self, wds):
        for wd in wds:
            if self._dirs.pop(wd, None) is not None:
                self._libc.inotify_rm_watch(self._fd, wd)  # its IN_IGNORED comes later, unknown by then

    def _tree_wds(self, below=None):
        """The watches of the tree's folders (of *below* and the folders in it only, if given)."""
        return {wd for wd, folder in self._dirs.items() if wd != self._parent_wd
                and (below is None or folder == below or folder.startswith(below + "/"))}

    def _watch_parent(self, strict=False):
        """Watch CONF's folder (again) and the tree; a watch left on a folder moved away is removed."""
        wd = self._add(self.parent, ROOT, strict)
        if self._parent_wd not in (None, wd):
            self._forget([self._parent_wd])
        self._parent_wd = wd
        if wd is None:
            self._forget(self._tree_wds())
            if self._above_wd is None:
                raise WatchError("%s was removed or moved, and inotify cannot tell when it is back" % self.parent)
        elif self.tree:
            self._watch_tree(self.path, ROOT, strict)

    def _watch_tree(self, top, mask, strict=False):
        """Watch *top* and the folders below it (not hidden ones, which CONF's reader skips too); the
        watches of folders no longer there (replaced by others) are removed: the same inode keeps its wd."""
        old, new = self._tree_wds(top), {self._add(top, mask, strict)}
        if None not in new:
            for folder, dirs, _files in os.walk(top):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                new.update(self._add(os.path.join(folder, name), BELOW) for name in dirs)
        self._forget(old - new)

    def _relevant(self, wd, mask, name):
        """Whether an event may change what CONF reads; keeps the watches up to date."""
        if wd == self._above_wd:
            if mask & SELF:
                raise WatchError("%s was removed or moved, and inotify cannot tell when %s is back"
                                 % (self.above, self.parent))
            if name != self.parent_name:
                return False
            self._watch_parent()  # CONF's folder made again, or another one renamed to its name
            return True
        if wd == self._parent_wd and mask & SELF:
            self._forget([wd])
            self._parent_wd = None
            self._watch_parent()  # already back (a quick swap), else when the folder above tells
            return True
        folder = self._dirs.get(wd)
        if mask & IN_IGNORED:
            self._dirs.pop(wd, None)
            return False
        if folder is None:
            return False
        if wd == self._parent_wd:
            if name != self.name or mask & IN_CREATE and not self.tree:
                return False  # a new file: its IN_CLOSE_WRITE tells when it is written
            if self.tree and mask & (IN_CREATE | IN_MOVED_TO):
                self._watch_tree(self.path, ROOT)  # the tree itself made again, or a link to one
            elif self.tree and mask & (IN_DELETE | IN_MOVED_FROM):
                self._forget(self._tree_wds())
            return True
        if name.startswith("."):
            return False  # editors' swap and temporary files; their rename to the real name counts
        path = os.path.join(folder, name)
        if mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
            self._watch_tree(path, BELOW)
        elif mask & IN_ISDIR and mask & IN_MOVED_FROM:
            self._forget(self._tree_wds(path))  # moved out of the tree, or elsewhere in it (then made again)
        elif mask & IN_CREATE:
            return False  # a new file (or a link, which read_dir refuses): written when IN_CLOSE_WRITE tells
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
        try:
            self._follow()
        except Exception as exc:  # noqa: BLE001 - never a thread's traceback on stderr: the loop polls instead
            self.error = str(exc) if isinstance(exc, WatchError) else "inotify stopped: %r" % exc
            self.post("local", None)

    def _follow(self):
        pending_since = None
        while True:
            ready = select.select([self._fd, self._stop_r], [], [], None if pending_since is None else QUIET)[0]
            if self._stop_r in ready:
                return
            now = time.monotonic()
            for wd, mask, name in list(self._events()) if ready else ():
                if mask & IN_Q_OVERFLOW:
                    self._watch_parent()  # events were lost: watch everything there is again
                if mask & IN_Q_OVERFLOW or self._relevant(wd, mask, name):
                    pending_since = pending_since or now
            if pending_since is not None and (not ready or now - pending_since >= MOST):
                pending_since = None
                self.post("local", None)

    def close(self):
        """End the thread at once, then close its fds (never while it may still use them)."""
        if self._closed:
            return
        try:
            os.write(self._stop_w, b"\0")
        except OSError:
            pass
        self._thread.join(5.0)
        if not self._thread.is_alive():  # else (stuck walking a huge tree?) leave the fds to the process's end
            self._close_fds()

    def _close_fds(self):
        self._closed = True
        for fd in (self._fd, self._stop_r, self._stop_w):
            os.close(fd)
