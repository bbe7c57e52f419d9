"""Write a tree read from ZooKeeper into a local directory: all of it, or (on any refusal) nothing.

A znode with children is a folder, its own data (when not empty) in the file .znode; a znode
without children is a file holding its data. In order:

1. Every name is checked first (a znode named .znode, a name longer than a file name may be):
   a tree that cannot be dumped changes nothing.
2. DIR is made (mode folder_mode(file_mode): 0700 by default) or opened without following a
   link, and refused unless root or this user owns it and nobody else may write it
   (configfiles.owners): another local user's folder is one where they read the dump, or swap a
   file that a later `tree load` of the backup writes into ZooKeeper. So is every folder below DIR
   the dump writes into and did not make (with --force).
3. The files are staged and installed as one set by configfiles.install.FileSet - the runner's
   fd-safe, all-or-nothing install: private staging folders with unpredictable names, no
   symlink followed, nothing in place replaced before every file is staged, a failed install
   rolled back. New files get *file_mode* (0600 by default: a dump may hold ACL-protected data);
   a file it replaces keeps its owner and mode.
"""

from __future__ import annotations

import os

from zkherd.common import paths
from zkherd.common.connection import ZkError
from zkherd.common.tree import DEFAULT_DATA_NAME
from zkherd.configfiles.install import FileSet, Target, folder_mode
from zkherd.configfiles.owners import untrusted
from zkherd.core import exits
from zkherd.znodes import LocalError

DEFAULT_FILE_MODE = 0o600
NAME_MAX = 255  # bytes of a file name (Linux)
_TOP = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def dump(nodes, root, directory, force=False, warn=None, file_mode=DEFAULT_FILE_MODE):
    """Write {path: tree.Node} under *root* into *directory*; the number of files written."""
    files = planned(nodes, root, warn or (lambda text: None))
    directory = os.path.abspath(directory)
    top = _open_top(directory, folder_mode(file_mode))
    fileset = FileSet(file_mode)
    fileset.folders.fds[(directory, ())] = top  # the folder checked, not one put at its name since
    try:
        if os.listdir(top) and not force:
            raise LocalError("%r is not empty: give --force to write into it anyway (files of the same names are "
                             "replaced, other entries are left alone)" % directory, exits.CANTCREAT)
        for names, data in files:
            fileset.stage(Target(directory, names), data)
        for (_root, names), fd in list(fileset.folders.fds.items()):
            _check_trusted(fd, os.path.join(directory, *names))
        fileset.install()
    except ZkError as exc:  # install.LocalFileError: a link, a folder where a file goes, a full disk...
        if isinstance(exc, LocalError):
            raise
        raise LocalError("%s; nothing of this dump was written" % exc.message, exits.CANTCREAT) from None
    finally:
        fileset.discard()  # releases the folders too (top with them)
    return len(files)


def planned(nodes, root, warn):
    """[(names below DIR, data)] of every file of the dump; LocalError (65) for a tree that cannot be dumped."""
    files, pending = [], [(nodes[root], ())]
    while pending:
        node, names = pending.pop()
        if names and not node.children:  # a leaf (DIR itself is always a folder)
            files.append((names, node.data))
            continue
        if node.data:
            files.append((names + (DEFAULT_DATA_NAME,), node.data))
        for name in node.children:
            child = nodes.get(paths.join(node.path, name))
            if child is None:  # ZooKeeper's own /zookeeper, left out of every read
                continue
            if name == DEFAULT_DATA_NAME:
                raise LocalError("znode %s is named like the file that holds its parent's data (%s): it cannot be "
                                 "dumped; nothing was written" % (child.path, DEFAULT_DATA_NAME), exits.DATAERR)
            if len(name.encode("utf-8")) > NAME_MAX:
                raise LocalError("znode %s has a name longer than a file name may be (%d bytes): it cannot be "
                                 "dumped; nothing was written" % (child.path, NAME_MAX), exits.DATAERR)
            if name.startswith("."):
                warn("%s: names beginning with '.' are written, but `tree load` and `tree diff` skip them" % child.path)
            pending.append((child, names + (name,)))
    return sorted(files)


def _open_top(directory, mode):
    try:
        os.mkdir(directory, mode)
    except FileExistsError:
        pass
    except OSError as exc:
        raise LocalError("cannot create %r: %s" % (directory, exc.strerror), exits.CANTCREAT) from None
    try:
        fd = os.open(directory, _TOP)
    except OSError as exc:
        reason = "a symlink or not a directory: refused" if exc.errno in (20, 40) else exc.strerror
        raise LocalError("cannot open the directory %r: %s" % (directory, reason), exits.CANTCREAT) from None
    try:
        _check_trusted(fd, directory)
    except LocalError:
        os.close(fd)
        raise
    return fd


def _check_trusted(fd, path):
    problem = untrusted(os.fstat(fd))
    if problem:
        raise LocalError("refusing to dump into %s: it is %s, so another local user could read the dump or change it "
                         "before it is loaded back; use a folder of this user that only it can write (or a new one: "
                         "zkherd makes it)" % (path, problem), exits.CANTCREAT)
