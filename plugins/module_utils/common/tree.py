# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Znode trees: read a subtree from ZooKeeper, build a desired tree from a local directory or
a nested dict, and plan the changes that make the first equal to the second.

A desired tree maps absolute znode paths to bytes, or to None for a folder without a data
file (its znode is created empty, an existing one keeps its data). Shared by the Ansible
plugins and the runner (`zkherd tree load/dump`): no Ansible imports.
"""

from __future__ import annotations

import fnmatch
import json
import os
import time
from stat import S_ISREG

from . import multiread, paths
from .connection import ZkError, translate
from .errors import USAGE, VERSION

DEFAULT_DATA_NAME = ".znode"
DEFAULT_EXCLUDE = (".*",)
# ZooKeeper refuses requests over jute.maxbuffer (1 MiB by default); a value must leave room
# for the path and the request header, so values are held under a round megabyte.
MAX_VALUE_BYTES = 1000 * 1000
# The most zkherd reads of a local file it must read whole (a rollback copy, farm join's CONF, the
# files of a DJB directory together): eight values. Anything bigger is refused, never read.
MAX_FILE_BYTES = 8 * MAX_VALUE_BYTES
READ_ATTEMPTS = 5  # reads of a tree that changed while it was read, before giving up


class Node:
    """A znode as read: data, kazoo stat, and child names."""

    __slots__ = ("path", "data", "stat", "children")

    def __init__(self, path, data, stat, children):
        self.path = path
        self.data = data or b""
        self.stat = stat
        self.children = children

    @property
    def ephemeral(self):
        return bool(self.stat.ephemeralOwner)


def read_tree(client, root, watch=None, attempts=READ_ATTEMPTS, get=None):
    """All znodes under *root* (included) as {path: Node}, as they were at one moment; {} when
    root does not exist.

    Reads level by level with pipelined async requests: a thousand znodes cost a few round
    trips, not a thousand. Children are listed only for znodes whose stat says they have some,
    which halves the requests for a tree of leaves - unless a *watch* is given (the runner's
    --mirror-dir): then every znode gets a data and a child watch, so that a new child of a leaf
    is seen too. ZooKeeper's own /zookeeper is left out.

    One snapshot: before reading, the client's last zxid Z is taken (a zxid the server had
    reached; every later read sees at least that state). A read whose znode was changed after Z
    (its mzxid, or the pzxid of its children, is greater) or that vanished since its parent was
    listed means the tree changed while being read: it is read again, up to *attempts* times.
    Otherwise every znode read is as it was at Z, and so is the tree.

    *get(result)* waits for an async answer (default: as long as it takes); the runner passes one
    with a timeout, and attempts=1 - its loop tries again itself, never sleeping here.
    """
    get = get or (lambda result: result.get())
    for attempt in range(attempts):
        nodes = _read_once(client, root, watch, get)
        if nodes is not None:
            return nodes
        if attempt + 1 == attempts:
            break
        time.sleep(0.05 * (attempt + 1))
    raise ZkError("the tree under %s kept changing while it was read (%d times): another writer is at work; "
                  "nothing was changed" % (root, attempts), VERSION)


class _Changed(Exception):
    """The tree changed while it was read."""


def _read_once(client, root, watch, get):
    """{path: Node} as of one zxid, or None when the tree changed while it was read."""
    from kazoo.exceptions import NoNodeError

    def answers(requests, listed=True):
        for path, result in requests:
            try:
                answer = get(result)
            except NoNodeError:
                if listed:
                    raise _Changed() from None  # listed by its parent, gone since
                continue
            except Exception as exc:
                if not type(exc).__module__.startswith("kazoo"):
                    raise  # the caller's own, from its get (a timeout)
                raise translate(exc, "read", path) from None
            if answer[1].mzxid > start or answer[1].pzxid > start:
                raise _Changed()
            yield path, answer

    try:
        get(client.exists_async(root))  # a reply, so that the client's last zxid is recent
    except Exception as exc:
        if not type(exc).__module__.startswith("kazoo"):
            raise
        raise translate(exc, "read", root) from None
    start = getattr(client, "last_zxid", None)
    if start is None:  # not a kazoo client that tracks it: no check possible
        start = float("inf")
    if watch is None and multiread.supported(client, get):
        try:
            return _read_levels_multi(client, root, start, get)
        except _Unsupported:
            multiread.forget(client)  # a server without multi-read (an ensemble in an upgrade)
            multiread.settle(client, get, root)  # it closes the connection: not under the reads below
    nodes = {}
    level, listed = [root], False
    try:
        while level:
            read = dict(answers([(p, client.get_async(p, watch=watch)) for p in level], listed))
            parents = [p for p, answer in read.items() if answer[1].numChildren or watch]
            children = dict(answers([(p, client.get_children_async(p, watch=watch, include_data=True))
                                     for p in parents]))
            level, listed = [], True
            for path, (data, stat) in read.items():
                names = sorted(children[path][0]) if path in children else []
                nodes[path] = Node(path, data, stat, names)
                level.extend(c for c in (paths.join(path, name) for name in names) if not paths.is_system(c))
    except _Changed:
        return None
    return nodes


class _Unsupported(Exception):
    """The server answered a multi-read as a server without it does."""


def _read_levels_multi(client, root, start, get):
    """_read_once with multiRead requests: each level's children and data in a few requests."""
    from kazoo.exceptions import MarshallingError, NoNodeError, UnimplementedError

    def answer(path, value, listed):
        if isinstance(value, NoNodeError):
            if listed:
                raise _Changed()  # listed by its parent, gone since
            return None
        if isinstance(value, Exception):
            raise translate(value, "read", path)
        return value

    nodes, sizes = {}, multiread.Sizes(client)
    level, listed = [root], False
    try:
        while level:
            try:
                read = list(multiread.read_nodes(client, level, get, sizes))
            except (UnimplementedError, MarshallingError) as exc:
                raise _Unsupported() from exc
            except Exception as exc:
                if not type(exc).__module__.startswith("kazoo"):
                    raise
                raise translate(exc, "read", level[0]) from None
            next_level = []
            for path, names, got in read:
                got, names = answer(path, got, listed), answer(path, names, listed)
                if got is None or names is None:
                    continue
                data, stat = got
                if stat.mzxid > start or stat.pzxid > start:
                    raise _Changed()
                names = sorted(names)
                nodes[path] = Node(path, data, stat, names)
                next_level.extend(c for c in (paths.join(path, name) for name in names) if not paths.is_system(c))
            level, listed = next_level, True
    except _Changed:
        return None
    return nodes


def missing_ancestors(client, path):
    """Ancestors of *path* that do not exist, shallowest first (one round trip)."""
    pending = [(p, client.exists_async(p)) for p in paths.ancestors(path)]
    missing = []
    for parent, result in pending:
        try:
            if result.get() is None:
                missing.append(parent)
        except Exception as exc:
            raise translate(exc, "check", parent) from None
    return missing


def read_up_to(handle, size):
    """At most *size* bytes from the open file *handle* (a local file is never read unbounded)."""
    chunks, left = [], size
    while left > 0:
        chunk = os.read(handle, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def check_value_size(path, data, source):
    """ZooKeeper drops the connection on a request over its limit; say what is too big instead."""
    if len(data) > MAX_VALUE_BYTES:
        raise ZkError("%s for %s is %d bytes, over the %d bytes a znode value may hold"
                      % (source, path, len(data), MAX_VALUE_BYTES), USAGE)
    return data


def _excluded(name, exclude, data_name):
    return name != data_name and any(fnmatch.fnmatchcase(name, pattern) for pattern in exclude)


def desired_from_dir(local_dir, root, data_name=DEFAULT_DATA_NAME, exclude=DEFAULT_EXCLUDE):
    """A local directory -> desired tree: a folder is a znode, a file a znode holding its bytes,
    and the file named *data_name* inside a folder holds that folder's own data.

    Symlinks are followed (config files are often links) as long as they stay inside the source
    directory: one that leads out of it is an error, and so is a directory loop.
    """
    if not os.path.isdir(local_dir):
        raise ZkError("source directory %r does not exist or is not a directory" % (local_dir,), USAGE)
    desired = {}
    seen = set()
    top = os.path.realpath(local_dir)

    def walk(directory, znode):
        real = os.path.realpath(directory)
        if real in seen:
            raise ZkError("directory loop through symlink at %r" % (directory,), USAGE)
        seen.add(real)
        desired[znode] = None
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if _excluded(entry.name, exclude, data_name):
                    continue
                if entry.is_symlink():
                    leads_to = os.path.realpath(entry.path)
                    if leads_to != top and not leads_to.startswith(top.rstrip("/") + "/"):
                        raise ZkError("%r is a symlink to %r, outside the source directory %r: refused"
                                      % (entry.path, leads_to, local_dir), USAGE)
                inside = top if entry.is_symlink() else None  # where its target must still be when opened
                if entry.name == data_name:
                    if not entry.is_file():
                        raise ZkError("%r must be a file" % entry.path, USAGE)
                    desired[znode] = check_value_size(znode, _read(entry.path, inside), "file %r" % entry.path)
                    continue
                try:
                    child = paths.join(znode, paths.validate_name(entry.name))
                except paths.PathError as exc:
                    raise ZkError("%s (from %r)" % (exc, entry.path), USAGE) from None
                if entry.is_dir():
                    walk(entry.path, child)
                elif entry.is_file():
                    desired[child] = check_value_size(child, _read(entry.path, inside), "file %r" % entry.path)
                else:
                    raise ZkError("%r is neither a file nor a directory (or a dangling symlink)"
                                  % entry.path, USAGE)
        seen.discard(real)

    walk(local_dir, root)
    return desired


def _read(path, inside=None):
    """The bytes of the file *path*, checked when open (a folder another user can write may have
    its entries swapped after they were checked): not a link when it was none (O_NOFOLLOW); a
    link's target (*inside*: the source directory) still inside the source directory and the very
    file opened. Read no further than a value may be."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if inside else os.O_NOFOLLOW)
    try:
        handle = os.open(path, flags)
    except OSError as exc:
        raise ZkError("cannot read %r: %s" % (path, exc.strerror), USAGE) from None
    try:
        st = os.fstat(handle)
        if inside is not None:
            leads_to = os.path.realpath(path)
            try:
                same = os.path.samestat(st, os.stat(leads_to))
            except OSError:
                same = False
            if not same or not leads_to.startswith(inside.rstrip("/") + "/"):
                raise ZkError("%r changed while it was read (a symlink swapped?): refused" % path, USAGE)
        if not S_ISREG(st.st_mode):
            raise ZkError("%r is not a regular file" % path, USAGE)
        return read_up_to(handle, MAX_VALUE_BYTES + 1)
    except OSError as exc:
        raise ZkError("cannot read %r: %s" % (path, exc.strerror), USAGE) from None
    finally:
        os.close(handle)


def leaf_bytes(value):
    """A dict leaf -> bytes: text as UTF-8, None as empty, other scalars and lists as JSON."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def desired_from_dict(tree, root, data_name=DEFAULT_DATA_NAME):
    """A nested dict -> desired tree: a dict value is a folder, anything else a leaf; the key
    *data_name* inside a dict holds that folder's own data."""
    if not isinstance(tree, dict):
        raise ZkError("the tree must be a dict of names to values or dicts, got %s" % type(tree).__name__, USAGE)
    desired = {}

    def walk(node, znode):
        desired[znode] = None
        for name in sorted(node, key=str):
            value = node[name]
            if name == data_name:
                if isinstance(value, dict):
                    raise ZkError("%s of %s must be a value, not a dict" % (data_name, znode), USAGE)
                desired[znode] = check_value_size(znode, leaf_bytes(value), "the value")
                continue
            try:
                child = paths.join(znode, paths.validate_name(str(name)))
            except paths.PathError as exc:
                raise ZkError(str(exc), USAGE) from None
            if isinstance(value, dict):
                walk(value, child)
            else:
                desired[child] = check_value_size(child, leaf_bytes(value), "the value")

    walk(tree, root)
    return desired


class Plan:
    """What to change: creates [(path, data)], updates [(path, old, new, version)],
    deletes [(path, old, version)] and kept [(path, reason)]."""

    def __init__(self):
        self.creates = []
        self.updates = []
        self.deletes = []
        self.kept = []

    @property
    def changed(self):
        return bool(self.creates or self.updates or self.deletes)


def plan(current, desired, root, prune=False):
    """Compare {path: Node} with {path: bytes|None} under *root*."""
    result = Plan()
    for path in sorted(desired, key=lambda p: (paths.depth(p), p)):
        data = desired[path]
        node = current.get(path)
        if node is None:
            result.creates.append((path, b"" if data is None else data))
        elif data is not None and node.data != data:
            if node.ephemeral:
                result.kept.append((path, "ephemeral znode owned by session 0x%x" % node.stat.ephemeralOwner))
            else:
                result.updates.append((path, node.data, data, node.stat.version))
    if prune:
        doomed = []
        for path in sorted(current, key=lambda p: (-paths.depth(p), p)):
            if path in desired or path == root:
                continue
            node = current[path]
            if node.ephemeral:
                result.kept.append((path, "ephemeral znode owned by session 0x%x" % node.stat.ephemeralOwner))
            else:
                doomed.append(path)
        # A folder that holds a znode we must keep cannot be deleted either.
        kept = [skip[0] for skip in result.kept]
        for path in doomed:
            blocker = next((k for k in kept if k.startswith(path + "/")), None)
            if blocker:
                result.kept.append((path, "holds %s, which is kept" % blocker))
            else:
                node = current[path]
                result.deletes.append((path, node.data, node.stat.version))
    return result
