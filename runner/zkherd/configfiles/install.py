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
- Install: the folders opened are checked to still be in place (a swapped one refuses the set);
  then renameat from the private folder into place, unlinkat of the files to remove, fsync of the
  folders; the private folders are removed.
- What is in place is read with O_NOFOLLOW|O_NONBLOCK and must be a regular file.

A symlink below the operator's folder is never followed, read or written through: the set is
refused with a message that names it (LocalFileError) and the files in place stay as they were.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import NamedTuple

from zkherd.common.connection import ZkError
from zkherd.common.tree import MAX_FILE_BYTES, read_up_to
from zkherd.configfiles import staging
from zkherd.configfiles.staging import is_temp  # noqa: F401 (the name callers know)

DEFAULT_FILE_MODE = 0o644  # --file-mode: the mode of the files zkherd creates (a file in place keeps its own)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO must not block us
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class LocalFileError(ZkError):
    """A local file or folder that zkherd refuses to (or cannot) read or write."""


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
    """The mode of folders made for files of *file_mode*: x wherever r is (0644 -> 0755, 0600 -> 0700)."""
    return file_mode | (file_mode & 0o444) >> 2


def _symlink(link, root, target=None, verb="write"):
    return LocalFileError("refusing to %s %s: %s is a symlink, and zkherd follows no symlink inside %s (remove it, "
                          "or point the configuration where it leads); the files in place are kept"
                          % (verb, target or link, link, root))


def _refusal(parent, name, path, root, exc, target=None, verb="write"):
    """The error for *name* in the folder *parent* that could not be opened (*exc*)."""
    try:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except OSError:
        mode = 0
    if stat.S_ISLNK(mode):
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
        """The fd of ROOT/names..., None if it does not exist (and create is False). *purpose*:
        the file that needs it, for messages."""
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
            mode = self.mode if create else None
            fd = None if parent is None else self._open_below(parent, root, names, mode, purpose)
            if fd is None:
                return None
        self.fds[key] = fd
        return fd

    @staticmethod
    def _open_below(parent, root, names, create, purpose):
        """*create*: the mode of a folder to make if missing, or None."""
        name, path = names[-1], os.path.join(root, *names)
        for _attempt in range(2):
            try:
                return os.open(name, _DIR, dir_fd=parent)
            except FileNotFoundError:
                if create is None:
                    return None
                try:
                    os.mkdir(name, create, dir_fd=parent)
                    os.fsync(parent)
                except FileExistsError:
                    pass  # made meanwhile: open it (and check it) again
            except OSError as exc:
                raise _refusal(parent, name, path, root, exc, purpose) from None
        raise LocalFileError("cannot make the folder %s" % path)

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


class FileSet:
    """Files to write and remove together: stage() and remove() as many as needed, then
    install() or discard() (both release everything). New files get *file_mode*."""

    def __init__(self, file_mode=DEFAULT_FILE_MODE):
        self.file_mode = file_mode
        self.folders = Folders(folder_mode(file_mode))
        self.staged = []  # [Target]
        self.removed = []  # [Target]
        self._private = {}  # folder key -> (name, fd) of its private staging folder

    def _open(self, target, verb="read"):
        """An fd of the regular file in place (the caller closes it), None if there is none;
        LocalFileError for a link, a FIFO, a socket... (never followed, never blocking)."""
        fd = self.folders.open(*target.folder, purpose=target.path)
        if fd is None:
            return None
        try:
            handle = os.open(target.names[-1], _READ, dir_fd=fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _refusal(fd, target.names[-1], target.path, target.root, exc, verb=verb) from None
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            os.close(handle)
            raise LocalFileError("refusing to %s %s: it is not a regular file" % (verb, target.path))
        return handle

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

    def exists(self, target):
        """Whether a regular file is in place (LocalFileError for anything else)."""
        handle = self._open(target)
        if handle is not None:
            os.close(handle)
        return handle is not None

    def differs(self, target, data):
        """Whether the file in place differs from *data* (also: there is none). A size that
        differs is a change, without reading; else at most len(data) + 1 bytes are read."""
        handle = self._open(target)
        if handle is None:
            return True
        try:
            return os.fstat(handle).st_size != len(data) or read_up_to(handle, len(data) + 1) != data
        finally:
            os.close(handle)

    def copy(self, target):
        """The bytes of the file in place, kept to put it back (--on-failure rollback): None if
        there is none or it is no regular file (a link, a FIFO, a socket: nothing of it is read);
        LocalFileError if it is bigger than MAX_FILE_BYTES."""
        fd = self.folders.open(*target.folder, purpose=target.path)
        try:
            st = None if fd is None else os.stat(target.names[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        return self.read(target) if st is not None and stat.S_ISREG(st.st_mode) else None

    def files(self, root):
        """Every entry below ROOT that is not a folder (files, links...), as Targets; folders
        are entered without following links; our staging folders are left out."""
        found, pending = [], [()]
        while pending:
            names = pending.pop()
            fd = self.folders.open(root, names)
            if fd is None:
                continue
            with os.scandir(fd) as entries:
                for entry in entries:
                    if is_temp(entry.name):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(names + (entry.name,))
                    else:
                        found.append(Target(root, names + (entry.name,)))
        return sorted(found)

    def stage(self, target, data):
        """Write *data* for *target* in the private folder beside it, with the owner and mode of
        the file it replaces (file_mode for a new one)."""
        fd = self.folders.open(*target.folder, create=True, purpose=target.path)
        name = target.names[-1]
        try:
            old = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        except OSError as exc:
            raise LocalFileError("cannot stage %s: %s" % (target.path, exc.strerror)) from None
        if old is not None and stat.S_ISLNK(old.st_mode):
            raise _symlink(target.path, target.root)
        if old is not None and not stat.S_ISREG(old.st_mode):
            raise LocalFileError("refusing to write %s: it is not a regular file" % target.path)
        try:
            handle = os.open(name, _CREATE, 0o600, dir_fd=self._private_folder(target, fd))
        except OSError as exc:
            raise LocalFileError("cannot stage %s: %s" % (target.path, exc.strerror)) from None
        self.staged.append(target)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view):]
            mode = self.file_mode if old is None else stat.S_IMODE(old.st_mode)
            if old is not None:
                try:
                    os.fchown(handle, old.st_uid, old.st_gid)  # before fchmod: chown clears set-id bits
                except PermissionError:  # not root: the file becomes ours, without set-id bits
                    mode &= ~(stat.S_ISUID | stat.S_ISGID)
            os.fchmod(handle, mode)
            os.fsync(handle)
        except OSError as exc:
            raise LocalFileError("cannot stage %s: %s" % (target.path, exc.strerror)) from None
        finally:
            os.close(handle)

    def _private_folder(self, target, fd):
        """The fd of the private staging folder in the folder *fd*: made (after sweeping our
        leftovers there) on first use."""
        if target.folder not in self._private:
            try:
                staging.sweep(fd)
                self._private[target.folder] = staging.make(fd)
            except (staging.StagingError, OSError) as exc:
                raise LocalFileError("refusing to stage %s: %s" % (target.path, exc)) from None
        return self._private[target.folder][1]

    def remove(self, target):
        """Delete *target* with the install (nothing if its folder is gone)."""
        if self.folders.open(*target.folder, purpose=target.path) is not None:
            self.removed.append(target)

    def staged_paths(self):
        """[(target path, path of the staged file for --check-cmd)]: through the private folder's
        descriptor (/proc/PID/fd/N/NAME), so that no rename or link in the folder can redirect it."""
        return [(t.path, staging.check_path(self._private[t.folder][1], t.names[-1])) for t in self.staged]

    def install(self):
        """Rename every staged file into place, delete the removed files, fsync the folders;
        LocalFileError, and nothing changed, if a folder was swapped meanwhile."""
        touched = set()
        try:
            self.folders.check()
            for target in self.staged:
                os.replace(target.names[-1], target.names[-1], src_dir_fd=self._private[target.folder][1],
                           dst_dir_fd=self.folders.fds[target.folder])
                touched.add(target.folder)
            self.staged = []
            for target in self.removed:
                try:
                    os.unlink(target.names[-1], dir_fd=self.folders.fds[target.folder])
                    touched.add(target.folder)
                except (FileNotFoundError, IsADirectoryError):
                    pass  # gone already, or a folder now: never removed
            for key in touched:
                os.fsync(self.folders.fds[key])
        except OSError as exc:
            raise LocalFileError("cannot install %s: %s" % (exc.filename or "the files", exc.strerror)) from None
        finally:
            self.discard()

    def discard(self):
        """Delete what was staged and not installed, and release every folder."""
        for target in self.staged:
            try:
                os.unlink(target.names[-1], dir_fd=self._private[target.folder][1])
            except OSError:
                pass
        for key, (name, fd) in self._private.items():
            os.close(fd)  # and with it our lock on it
            try:
                os.rmdir(name, dir_fd=self.folders.fds[key])
            except OSError:
                pass  # moved away (or replaced) by someone else: nothing of ours is left in it
        self.staged, self.removed = [], []
        self._private.clear()
        self.folders.close()


def _too_big(path, limit):
    return LocalFileError("%s is bigger than %d bytes, more than zkherd reads of a local file; refusing to read it"
                          % (path, limit))
