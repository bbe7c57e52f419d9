# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Znode path rules, the same ones the ZooKeeper server applies (PathUtils.validatePath).

Checking on the client side turns a server-side "bad arguments" into a message that says
what is wrong with which path. Shared by the Ansible plugins and the runner: no Ansible imports.
"""

from __future__ import annotations

import posixpath

from .errors import UserError


class PathError(UserError, ValueError):
    """A znode path that ZooKeeper would refuse."""


def _bad_char(ch):
    code = ord(ch)
    return (
        code == 0
        or 0x01 <= code <= 0x1F
        or 0x7F <= code <= 0x9F
        or 0xD800 <= code <= 0xF8FF
        or 0xFFF0 <= code <= 0xFFFF
    )


def validate(path, what="znode path"):
    """Return *path* unchanged if ZooKeeper accepts it, else raise PathError."""
    if not isinstance(path, str) or not path:
        raise PathError("%s must be a non-empty string, got %r" % (what, path))
    if not path.startswith("/"):
        raise PathError("invalid %s %r: it must start with '/'" % (what, path))
    if path == "/":
        return path
    if path.endswith("/"):
        raise PathError("invalid %s %r: it must not end with '/'" % (what, path))
    for name in path[1:].split("/"):
        if not name:
            raise PathError("invalid %s %r: empty node name ('//')" % (what, path))
        if name in (".", ".."):
            raise PathError("invalid %s %r: relative name %r" % (what, path, name))
        for ch in name:
            if _bad_char(ch):
                raise PathError("invalid %s %r: character U+%04X is not allowed" % (what, path, ord(ch)))
    return path


def validate_name(name):
    """A single child name (as from a file name, a dict key or a member name). Never empty:
    '/' + '' is the parent itself, and a write meant for a child would land on it."""
    if not isinstance(name, str):
        raise PathError("invalid znode name %r: it must be a string" % (name,))
    if not name:
        raise PathError("invalid znode name '': a name must not be empty")
    if "/" in name:
        raise PathError("invalid znode name %r: it must not contain '/'" % (name,))
    validate("/" + name, what="znode name")
    return name


def join(parent, name):
    return parent.rstrip("/") + "/" + name


def parent(path):
    return posixpath.dirname(path) or "/"


def depth(path):
    return 0 if path == "/" else path.count("/")


def ancestors(path):
    """Proper ancestors of *path*, root excluded, shallowest first: /a/b/c -> [/a, /a/b]."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def relative(root, path):
    """*path* relative to *root* ('' for root itself)."""
    if path == root:
        return ""
    prefix = root.rstrip("/") + "/"
    if not path.startswith(prefix):
        raise PathError("%r is not under %r" % (path, root))
    return path[len(prefix):]


def is_system(path):
    """ZooKeeper's own /zookeeper subtree (quotas, config): never read or written as user data."""
    return path == "/zookeeper" or path.startswith("/zookeeper/")
