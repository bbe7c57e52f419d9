"""Write a tree read from ZooKeeper into a local directory, never through a symlink.

A znode with children is a folder, its own data (when not empty) in the file .znode; a znode
without children is a file holding its data. Every entry is opened relative to its parent's
file descriptor with O_NOFOLLOW, so a symlink planted in DIR is refused, never followed; files are
written to a temporary name and renamed over (a reader never sees half a file)."""

from __future__ import annotations

import os

from zkherd.common import paths
from zkherd.common.tree import DEFAULT_DATA_NAME
from zkherd.core import exits
from zkherd.znodes import LocalError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def dump(nodes, root, directory, force=False, warn=None):
    """Write {path: tree.Node} under *root* into *directory*; the number of files written."""
    try:
        os.mkdir(directory, 0o755)
    except FileExistsError:
        pass
    except OSError as exc:
        raise LocalError("cannot create %r: %s" % (directory, exc.strerror), exits.CANTCREAT) from None
    top = _open_dir(None, directory, directory)
    try:
        if os.listdir(top) and not force:
            raise LocalError("%r is not empty: give --force to write into it anyway (files of the same names are "
                             "replaced, other entries are left alone)" % directory, exits.CANTCREAT)
        return _write_folder(top, nodes, nodes[root], directory, warn or (lambda text: None))
    finally:
        os.close(top)


def _open_dir(parent_fd, name, shown):
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        reason = "a symlink or not a directory: refused" if exc.errno in (20, 40) else exc.strerror
        raise LocalError("cannot open the directory %r: %s" % (shown, reason), exits.CANTCREAT) from None


def _write_folder(fd, nodes, node, shown, warn):
    written = 0
    if node.data:
        _write_file(fd, DEFAULT_DATA_NAME, node.data, os.path.join(shown, DEFAULT_DATA_NAME))
        written += 1
    for name in node.children:
        child = nodes.get(paths.join(node.path, name))
        if child is None:  # ZooKeeper's own /zookeeper, left out of every read
            continue
        where = os.path.join(shown, name)
        if name == DEFAULT_DATA_NAME:
            raise LocalError("znode %s is named like the file that holds its parent's data (%s): it cannot be "
                             "dumped" % (child.path, DEFAULT_DATA_NAME), exits.DATAERR)
        if name.startswith("."):
            warn("%s: names beginning with '.' are written, but `tree load` and `tree diff` skip them" % child.path)
        if not child.children:
            _write_file(fd, name, child.data, where)
            written += 1
            continue
        try:
            os.mkdir(name, 0o755, dir_fd=fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise LocalError("cannot create %r: %s" % (where, exc.strerror), exits.CANTCREAT) from None
        sub = _open_dir(fd, name, where)
        try:
            written += _write_folder(sub, nodes, child, where, warn)
        finally:
            os.close(sub)
    return written


def _write_file(fd, name, data, shown):
    temp = ".%s.zkherd-dump-%d" % (name[:100], os.getpid())
    try:
        handle = os.open(temp, _FILE_FLAGS, 0o644, dir_fd=fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view):]
        finally:
            os.close(handle)
        os.rename(temp, name, src_dir_fd=fd, dst_dir_fd=fd)  # replaces a symlink itself, never its target
    except OSError as exc:
        try:
            os.unlink(temp, dir_fd=fd)
        except OSError:
            pass
        raise LocalError("cannot write %r: %s" % (shown, exc.strerror), exits.CANTCREAT) from None
