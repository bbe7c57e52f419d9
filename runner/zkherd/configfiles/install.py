"""Files written as a set into folders that someone else may also write (fd-safe atomic writes,
shared by --mirror, --mirror-dir, `farm join` and `farm export`).

zkherd runs as root, and a folder it writes into may be writable by a less trusted local user, who
can rename, replace or plant anything in it at any moment. So below the folder the operator named
nothing is done by path:

- The operator's folder is opened as configured (symlinks on the way to it are the operator's);
  every folder below it is opened - or made with mkdirat - relative to its parent with
  O_NOFOLLOW|O_DIRECTORY, once per set, and kept open until the set is installed or discarded.
- New content is staged in a private folder made beside the target (mkdirat, mode 0700, ours:
  nobody else can enter it, so nobody can swap what is in it): the file, under the target's own
  name, is created with O_CREAT|O_EXCL|O_NOFOLLOW relative to it, written, given the old file's
  owner and mode with fchown/fchmod on the open file, and fsynced. The private folder's name is
  short and fixed-length, so a target name of any length up to NAME_MAX works.
- A set is made of entries: a file, or the first folder on a file's way that is new (nothing, or
  a file, in place) staged whole with what is below it; nothing is made in place before install.
- Install, all or nothing: the folders opened are checked to still be in place (a swapped one
  refuses the set); then each entry is renamed into place, and what it displaces - or an entry
  that goes - is moved into a second private folder, not deleted (swap.Swaps); a failed step
  undoes the steps before it, in reverse. Then fsync of the folders; the private folders are
  removed with what they hold.
- What is in place is read with O_NOFOLLOW|O_NONBLOCK and must be a regular file.

A symlink below the operator's folder is never followed, read or written through: the set is
refused with a message that names it (LocalFileError) and the files in place stay as they were.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import traceback
from typing import NamedTuple

from zkherd.common.connection import ZkError
from zkherd.common.tree import MAX_FILE_BYTES, read_up_to
from zkherd.configfiles import staging
from zkherd.configfiles.staging import is_temp  # noqa: F401 (the name callers know)
from zkherd.configfiles.swap import Swaps

DEFAULT_FILE_MODE = 0o644  # --file-mode: the mode of the files zkherd creates (a file in place keeps its own)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO must not block us
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class LocalFileError(ZkError):
    """A local file or folder that zkherd refuses to (or cannot) read or write."""


def _guarded(method):
    """Any other error of a local file operation (a RecursionError, a MemoryError, an OSError no
    branch expected) becomes a LocalFileError: an install failure - the files in place kept, an
    alert, a retry - never the end of the runner and its child."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except ZkError:
            raise
        except Exception as exc:  # noqa: BLE001 (see above)
            error = LocalFileError("%s failed: %s: %s" % (method.__name__, type(exc).__name__, exc))
            error.traceback = traceback.format_exc()  # a bug is retried, not hidden: the runner logs it with -v
            raise error from None

    return guarded


class Target(NamedTuple):
    """A file: `root`, a folder the operator named, and the `names` leading to it from there."""

    root: str
    names: tuple

    @property
    def path(self):
        return os.path.join(self.root, *self.names)

    @property
    def folder(self):
        return (self.root, self.names[:-1])

    @classmethod
    def file(cls, path):
        """A path the operator gave: its folder is theirs, its file name below it."""
        path = os.path.abspath(path)
        return cls(os.path.dirname(path), (os.path.basename(path),))

    @classmethod
    def below(cls, root, rel):
        """ROOT plus a relative path 'a/b' (or a list of names) that comes from ZooKeeper: each
        name must be a plain file name, so that nothing named there leaves ROOT."""
        names = tuple(rel.split("/") if isinstance(rel, str) else rel)
        bad = next((n for n in names if n in ("", ".", "..") or "/" in n or "\0" in n), None)
        if bad is not None or not names:
            raise LocalFileError("refusing to write %r under %s: %r is not a plain file name"
                                 % ("/".join(names), root, bad))
        return cls(root, names)


def folder_mode(file_mode):
    """The mode of folders made for files of *file_mode*: x wherever r is (0644 -> 0755, 0600 -> 0700),
    and writable by zkherd's user alone (0664 -> 0755): nobody else adds to a mirrored folder, and a
    folder of ours that others may write is never emptied when it goes (rmtree.py)."""
    return (file_mode | (file_mode & 0o444) >> 2) & ~0o022


def _symlink(link, root, target=None, verb="write"):
    return LocalFileError("refusing to %s %s: %s is a symlink, and zkherd follows no symlink inside %s (remove it, "
                          "or point the configuration where it leads); the files in place are kept"
                          % (verb, target or link, link, root))


def _lmode(parent, name):
    """The mode of *name* in the folder *parent* (0: there is none), without following a link."""
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except OSError:
        return 0


def _refusal(parent, name, path, root, exc, target=None, verb="write"):
    """The error for *name* in the folder *parent* that could not be opened (*exc*)."""
    if stat.S_ISLNK(_lmode(parent, name)):
        return _symlink(path, root, target, verb)
    if exc.errno in (errno.ENOTDIR, errno.ELOOP):
        return LocalFileError("refusing to %s %s: %s is not a folder" % (verb, target or path, path))
    return LocalFileError("cannot open %s: %s" % (path, exc.strerror))


class Folders:
    """Folders below an operator's folder, each opened once relative to its parent without
    following a link, and kept open: what is done in them happens there, wherever they go."""

    def __init__(self, mode=0o755):
        self.fds = {}  # (root, names) -> fd
        self.mode = mode  # of the folders made below an operator's folder

    def open(self, root, names, create=False, purpose=None):
        """The fd of ROOT/names..., None if it does not exist - or if something that is neither a
        folder nor a link is on the way (a file where a folder goes: nothing is below it). *create*
        makes ROOT itself (the folders below it come with an install); *purpose*: the file that
        needs it, for messages."""
        key = (root, tuple(names))
        if key in self.fds:
            return self.fds[key]
        if not names:
            try:
                if create:
                    os.makedirs(root, exist_ok=True)
                fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # as configured
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise LocalFileError("cannot open the folder %s: %s" % (root, exc.strerror)) from None
        else:
            parent = self.open(root, names[:-1], create, purpose)
            fd = None if parent is None else self._open_below(parent, root, names, purpose)
            if fd is None:
                return None
        self.fds[key] = fd
        return fd

    @staticmethod
    def _open_below(parent, root, names, purpose):
        name, path = names[-1], os.path.join(root, *names)
        try:
            return os.open(name, _DIR, dir_fd=parent)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ENOTDIR and not stat.S_ISLNK(_lmode(parent, name)):
                return None
            raise _refusal(parent, name, path, root, exc, purpose) from None

    def check(self):
        """LocalFileError if a folder below an operator's folder is no longer where it was."""
        for (root, names), fd in self.fds.items():
            if not names:
                continue
            try:
                st = os.stat(names[-1], dir_fd=self.fds[(root, names[:-1])], follow_symlinks=False)
                same = os.path.samestat(st, os.fstat(fd))
            except OSError:
                same = False
            if not same:
                raise LocalFileError("refusing to install the files under %s: %s was moved or replaced while they were "
                                     "staged (is someone else writing there?); the files in place are kept"
                                     % (root, os.path.join(root, *names)))

    def close(self):
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


class InPlace:
    """What is in place below operators' folders, read without following a link or blocking."""

    def __init__(self, file_mode=DEFAULT_FILE_MODE):
        self.file_mode = file_mode
        self.folders = Folders(folder_mode(file_mode))

    def _open(self, target, verb="read", folder_ok=False):
        """An fd of the regular file in place (the caller closes it), None if there is none (or,
        with *folder_ok*, a folder is there); LocalFileError for a link, a FIFO, a socket... (never
        followed, never blocking)."""
        fd = self.folders.open(*target.folder, purpose=target.path)
        if fd is None:
            return None
        try:
            handle = os.open(target.names[-1], _READ, dir_fd=fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _refusal(fd, target.names[-1], target.path, target.root, exc, verb=verb) from None
        mode = os.fstat(handle).st_mode
        if not stat.S_ISREG(mode):
            os.close(handle)
            if folder_ok and stat.S_ISDIR(mode):
                return None
            raise LocalFileError("refusing to %s %s: it is not a regular file" % (verb, target.path))
        return handle

    @_guarded
    def read(self, target, limit=MAX_FILE_BYTES):
        """The bytes of the regular file in place, None if there is none; LocalFileError if it
        is bigger than *limit* (never read whole: a sparse file of terabytes costs nothing)."""
        handle = self._open(target)
        if handle is None:
            return None
        try:
            if os.fstat(handle).st_size > limit:
                raise _too_big(target.path, limit)
            data = read_up_to(handle, limit + 1)  # it may have grown since
            if len(data) > limit:
                raise _too_big(target.path, limit)
            return data
        finally:
            os.close(handle)

    @_guarded
    def exists(self, target):
        """Whether a regular file is in place (LocalFileError for anything else)."""
        handle = self._open(target)
        if handle is not None:
            os.close(handle)
        return handle is not None

    @_guarded
    def differs(self, target, data):
        """Whether the file in place differs from *data* (also: there is none). A size that
        differs is a change, without reading; else at most len(data) + 1 bytes are read."""
        handle = self._open(target, folder_ok=True)  # a folder where the file goes: it differs
        if handle is None:
            return True
        try:
            return os.fstat(handle).st_size != len(data) or read_up_to(handle, len(data) + 1) != data
        finally:
            os.close(handle)

    @_guarded
    def copy(self, target, limit=MAX_FILE_BYTES):
        """The bytes of the file in place, kept to put it back (--on-failure rollback): None if
        there is none or it is no regular file (a link, a FIFO, a socket: nothing of it is read);
        LocalFileError if it is bigger than *limit*."""
        fd = self.folders.open(*target.folder, purpose=target.path)
        try:
            st = None if fd is None else os.stat(target.names[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        return self.read(target, limit) if st is not None and stat.S_ISREG(st.st_mode) else None

    @_guarded
    def files(self, root, names=()):
        """Every entry below ROOT/names... that is not a folder (files, links...), as Targets;
        folders are entered without following links; our private folders are left out."""
        found = []
        self._walk(root, names, lambda path, kind: kind == "folder" or found.append(Target(root, path)))
        return sorted(found)

    @_guarded
    def unwanted(self, root, keep):
        """The topmost entries below ROOT that no path in *keep* (tuples of names: the files
        wanted) is at or below - a whole folder where nothing wanted is left - as Targets. A file
        or link where a wanted folder goes is not listed: staging moves it aside (or refuses a link)."""
        keep = set(keep)
        prefixes = {path[:depth] for path in keep for depth in range(1, len(path))}
        found = []

        def sort(path, kind):
            if path in keep and kind in ("file", "link") or path in prefixes and kind != "folder":
                return False  # replaced by staging (or, a link, refused)
            if path in prefixes:
                return True  # a wanted folder: enter it
            found.append(Target(root, path))  # also a folder or FIFO where a file goes
            return False

        self._walk(root, (), sort)
        return sorted(found)

    def _walk(self, root, names, visit):
        """Call visit(names, kind: "folder", "file", "link" or "other") for the entries below
        ROOT/names (not our private folders); the folders it returns True for are entered, without
        following a link."""
        pending = [tuple(names)]
        while pending:
            names = pending.pop()
            fd = self.folders.open(root, names)
            if fd is None:
                continue
            with os.scandir(fd) as entries:
                listed = [(entry.name, _kind(entry)) for entry in entries]
            for name, kind in listed:
                if not is_temp(name) and visit(names + (name,), kind) and kind == "folder":
                    pending.append(names + (name,))


class FileSet(InPlace):
    """Files to write and entries to remove together, all or nothing: stage() and remove() as many
    as needed, then install() or discard() (both release everything). New files get *file_mode*.

    Each entry of the set - the first name on a file's way that is not a folder in place - is
    staged whole in the private folder beside it: a file, or a new folder with the files below it
    (where nothing, or a file, is in place). Nothing is written in place before install()."""

    def __init__(self, file_mode=DEFAULT_FILE_MODE):
        super().__init__(file_mode)
        self.staged = []  # [Target]
        self.removed = []  # [Target]
        self.entries = {}  # (folder key, name) -> "file" or "folder" staged, None: it goes
        self._where = {}  # Target -> (folder key, its path in the private folder)
        self._private = {}  # folder key -> (name, fd) of its private staging folder
        self._aside = {}  # folder key -> (name, fd) of the private folder that keeps what an install displaces
        self._keep_aside = False  # an install could not be undone whole: what it displaced stays there
        self.left_alone = []  # folders displaced by the last install and not deleted (their owner: rmtree.py)

    @_guarded
    def stage(self, target, data):
        """Write *data* for *target* in the private folder of its entry, with the owner and mode of
        the regular file it replaces (file_mode for a new one). Anything but a folder or a link on
        its way is moved aside with the install; in its own place, anything but a regular file
        (a folder, a FIFO) only if remove()d first, else it is refused: a path an operator named
        is never a folder to delete."""
        key, name, below, old = self._place(target)
        if self.entries.get((key, name)) == "file" or self.entries.get((key, name)) and not below:
            raise LocalFileError("refusing to write %s: the set holds it both as a file and as a folder" % target.path)
        if old is not None and not stat.S_ISREG(old.st_mode) and self.entries.get((key, name), "") is not None:
            raise LocalFileError("refusing to write %s: it is not a regular file" % target.path)  # and not removed
        private = self._private_folder(key, target.path)
        path = os.path.join(name, *below)
        try:
            for depth in range(len(below)):  # the new folders on the way, in the private folder
                try:
                    os.mkdir(os.path.join(name, *below[:depth]), self.folders.mode, dir_fd=private)
                except FileExistsError:
                    pass  # made for another file of the set (nobody else can enter the private folder)
            handle = os.open(path, _CREATE, 0o600, dir_fd=private)
        except OSError as exc:
            raise LocalFileError("cannot stage %s: %s" % (target.path, exc.strerror)) from None
        self.entries[(key, name)] = "folder" if below else "file"
        self.staged.append(target)
        self._where[target] = (key, path)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view):]
            old = old if old is not None and stat.S_ISREG(old.st_mode) else None  # what we take owner and mode of
            mode = self.file_mode if old is None else stat.S_IMODE(old.st_mode)
            if old is not None:
                try:
                    os.fchown(handle, old.st_uid, old.st_gid)  # before fchmod: chown clears set-id bits
                except PermissionError:  # not root: the file becomes ours, without set-id bits
                    mode &= ~(stat.S_ISUID | stat.S_ISGID)
            os.fchmod(handle, mode)
            os.fsync(handle)
            if below:  # its new folder's entry, before that folder is renamed into place
                _fsync_folder(os.path.dirname(path), private)
        except OSError as exc:
            raise LocalFileError("cannot stage %s: %s" % (target.path, exc.strerror)) from None
        finally:
            os.close(handle)

    def _place(self, target):
        """(folder key, entry name, names below the entry, the stat of the target in place or None)
        for *target*: its entry is the first name on its way that is not a folder in place, or that
        this set stages already. A symlink on the way or in place is refused."""
        root, names = target.root, target.names
        fd = self.folders.open(root, (), create=True, purpose=target.path)
        for depth, name in enumerate(names):
            key, last = (root, names[:depth]), depth == len(names) - 1
            if self.entries.get((key, name)):
                return key, name, names[depth + 1:], None
            try:
                old = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                old = None
            except OSError as exc:
                raise LocalFileError("cannot stage %s: %s" % (target.path, exc.strerror)) from None
            if old is not None and stat.S_ISLNK(old.st_mode):
                raise _symlink(os.path.join(root, *names[:depth + 1]), root, target.path)
            if last or old is None or not stat.S_ISDIR(old.st_mode):
                return key, name, names[depth + 1:], old if last else None
            fd = self.folders.open(root, names[:depth + 1], purpose=target.path)
            if fd is None:
                raise LocalFileError("refusing to write %s: %s was replaced while it was staged"
                                     % (target.path, os.path.join(root, *names[:depth + 1])))
        raise LocalFileError("refusing to write %s: no file name" % target.path)

    def _private_folder(self, key, purpose, store=None):
        """The fd of the private folder of the folder *key*: made (after sweeping our leftovers
        there) on first use. *store*: self._private (new entries) or self._aside (displaced ones)."""
        store = self._private if store is None else store
        if key not in store:
            try:
                fd = self.folders.open(*key, purpose=purpose)
                if key not in self._private and key not in self._aside:
                    staging.sweep(fd)
                store[key] = staging.make(fd)
            except (staging.StagingError, OSError) as exc:
                raise LocalFileError("refusing to stage %s: %s" % (purpose, exc)) from None
        return store[key][1]

    @_guarded
    def remove(self, target):
        """Delete *target* - a file, a link (itself), a folder with all below it - with the install
        (nothing if its folder is gone)."""
        fd = self.folders.open(*target.folder, purpose=target.path)
        if fd is None:
            return
        if stat.S_ISDIR(_lmode(fd, target.names[-1])):  # opened now: one swapped before the install refuses it
            self.folders.open(target.root, target.names, purpose=target.path)
        self.removed.append(target)
        self.entries.setdefault((target.folder, target.names[-1]), None)

    def affects(self, target):
        """Whether the install replaces or removes *target* (it is an entry of the set, or below one)."""
        names = target.names
        return any(((target.root, names[:depth]), names[depth]) in self.entries for depth in range(len(names)))

    @_guarded
    def sweep(self, folders):
        """Remove our leftover private folders (staging.sweep) in each of *folders* [(root, names)]
        that is there; returns their paths. A folder that cannot be opened is skipped."""
        removed = []
        for root, names in folders:
            try:
                fd = self.folders.open(root, names)
            except LocalFileError:
                continue  # a link on the way, say: refused when a file is written there
            if fd is not None:
                removed += [os.path.join(root, *names, name) for name in staging.sweep(fd)]
        return removed

    def staged_paths(self):
        """[(target path, path of the staged file for --check-cmd)]: through the private folder's
        descriptor (/proc/PID/fd/N/NAME), so that no rename or link in the folder can redirect it."""
        return [(t.path, staging.check_path(self._private[self._where[t][0]][1], self._where[t][1]))
                for t in self.staged]

    @_guarded
    def install(self):
        """Put every entry in place - all, or (on any error) none: what was done is undone, and
        LocalFileError says what failed. Refused before anything moves if a folder was swapped."""
        self.left_alone = []
        try:
            self.folders.check()
            plan = self._plan()
            for key, _name, _kind in plan:
                self._private_folder(key, os.path.join(key[0], *key[1]), self._aside)
            swaps, current = Swaps(), None
            try:
                for key, name, kind in plan:
                    current = os.path.join(key[0], *key[1], name)
                    swaps.put(self.folders.fds[key], name, self._private[key][1] if kind else None,
                              self._aside[key][1], kind == "file")
                current = None
                for key in {key for key, _name, _kind in plan}:
                    os.fsync(self.folders.fds[key])
            except Exception as exc:  # noqa: BLE001 - whatever failed, undo what was done before anything is discarded
                raise self._rolled_back(current, exc, swaps.undo()) from None
            self.staged = []
        finally:
            self.discard()

    def _plan(self):
        """[(folder key, name, "file" | "folder" | None: it goes)], sorted; an entry below another
        entry of the set goes with it."""
        plan = []
        for (key, name), kind in sorted(self.entries.items(), key=lambda item: item[0]):
            path = key[1] + (name,)
            above = next((path[:depth] for depth in range(1, len(path))
                          if ((key[0], path[:depth - 1]), path[depth - 1]) in self.entries), None)
            if above is None:
                plan.append((key, name, kind))
            elif kind:
                raise LocalFileError("refusing to install %s: the same set replaces %s, a folder on its way"
                                     % (os.path.join(key[0], *path), os.path.join(key[0], *above)))
        return plan

    def _rolled_back(self, current, exc, failed):
        what = "put %s in place" % current if current else "fsync the folders"
        reason = getattr(exc, "strerror", None) or "%s: %s" % (type(exc).__name__, exc)
        if not failed:
            return LocalFileError("cannot %s: %s; the whole set was rolled back, the files in place are as they were"
                                  % (what, reason))
        self._keep_aside = True
        kept = ", ".join(os.path.join(key[0], *key[1], name) for key, (name, _fd) in self._aside.items())
        return LocalFileError("cannot %s: %s; rolling the set back failed for %s (%s): what they replaced is kept "
                              "in %s" % (what, reason, ", ".join(step[1] for step in failed), failed[0][2], kept))

    def discard(self):
        """Delete what was staged (and displaced) and not installed, and release every folder."""
        for store in (self._private, self._aside):
            for key, (name, fd) in store.items():
                if store is self._aside and not self._keep_aside:  # what a local user may have planted
                    owners = {os.geteuid(), os.fstat(self.folders.fds[key]).st_uid}
                    self.left_alone += [os.path.join(key[0], *key[1], name, left) for left in staging.clear(fd, owners)]
                elif store is not self._aside:
                    staging.clear(fd)  # only what we staged
                os.close(fd)  # and with it our lock on it
                try:
                    os.rmdir(name, dir_fd=self.folders.fds[key])
                except OSError:
                    pass  # not empty (kept), moved away or replaced by someone else: nothing of ours is left in it
            store.clear()
        self.staged, self.removed, self._keep_aside = [], [], False
        self.entries.clear()
        self._where.clear()
        self.folders.close()


def _kind(entry):
    if entry.is_symlink():
        return "link"
    return "folder" if entry.is_dir(follow_symlinks=False) else "file" if entry.is_file(follow_symlinks=False) \
        else "other"


def _fsync_folder(path, parent):
    fd = os.open(path, _DIR, dir_fd=parent)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _too_big(path, limit):
    return LocalFileError("%s is bigger than %d bytes, more than zkherd reads of a local file; refusing to read it"
                          % (path, limit))
