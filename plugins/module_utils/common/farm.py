# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Farms as zkfarmer defined them: each member of a farm is a znode holding a JSON object; fields
are reached with dotted paths (mysql.replication_delay); a DJB directory (folder = dict, file = key
holding its content, trailing newline trimmed) is a member's local form; filters select members
(enabled=1,!maint,delay<10).

The one farm codec of zkherd, shared by the runner (`zkherd farm ...`) and the Ansible plugins:
no Ansible imports.
"""

from __future__ import annotations

import copy
import json
import os
import re
import stat

from . import codec, paths, tree, txn
from .connection import ZkError, translate
from .errors import NO_NODE, USAGE, VERSION, UserError

# Compare-and-set attempts before a write that keeps losing the race is reported.
RETRIES = 5

# Deepest nesting of a member (dicts and lists), a field path and a DJB directory: more is refused
# with a FarmError instead of exhausting Python's stack in the codec, copies or directory walks.
MAX_DEPTH = 100


class FarmError(UserError):
    """A member that is not a JSON object, a bad dotted path or filter."""

    kind = USAGE


def decode_member(data, where="member"):
    """Znode data -> dict; anything but a JSON object is an error (zkfarmer read it as {})."""
    try:
        doc = json.loads((data or b"").decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FarmError("%s does not hold valid JSON: %s" % (where, exc)) from None
    except RecursionError:
        raise FarmError("%s holds JSON nested too deeply" % where) from None
    if not isinstance(doc, dict):
        raise FarmError("%s holds JSON, but not an object (a %s)" % (where, type(doc).__name__))
    if too_deep(doc):
        raise FarmError("%s holds JSON nested deeper than %d levels" % (where, MAX_DEPTH))
    problem = _LONE_SURROGATE.search(data or b"") and json_problem(doc)  # walked only when one may be there
    if problem:
        raise FarmError("%s holds %s" % (where, problem))
    return doc


# JSON's escape of a UTF-16 surrogate: valid JSON, but alone (not in a pair) it decodes to text that
# encodes as no UTF-8 - no file, file name, stdout or Ansible result can carry it.
_LONE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def json_problem(doc):
    """What in *doc* JSON text cannot carry as UTF-8, naming the dotted field: a key that is not text,
    a value that is not JSON (a YAML date, a set), text holding a lone surrogate; None if nothing.
    Each item carries a link to its parent's (key, link), not its dotted name: a name per item made
    a member of long keys and many fields take gigabytes (a 900 KB member: 18 GB)."""
    pending = [(doc, None)]
    while pending:
        value, link = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    return "a field name that is not text (a %s %s): quote it" % (type(key).__name__, _below(link))
                if not _utf8(key):
                    return "a field name that is not UTF-8 text (a lone surrogate) %s" % _below(link)
                pending.append((item, (key, link)))
        elif isinstance(value, list):
            pending.extend((item, link) for item in value)
        elif isinstance(value, str):
            if not _utf8(value):
                return "text that is not UTF-8 (a lone surrogate) in the field %s" % _field(link)
        elif isinstance(value, int) and value.bit_length() > 14000:  # YAML's 0xfff...: str() refuses 4,300 digits
            return "an integer too long for JSON text in the field %s: quote it" % _field(link)
        elif value is not None and not isinstance(value, (bool, int, float)):
            return "a %s in the field %s, which JSON cannot hold: quote it" % (type(value).__name__, _field(link))
    return None


def _below(link):
    return "below " + _field(link) if link is not None else "at the top level"


def _field(link):
    """The dotted name of a json_problem link, at most 200 characters of it (a key may be 1 MB long)."""
    names = []
    while link is not None:
        names.append(link[0])
        link = link[1]
    name = ".".join(reversed(names)) or "the top"
    name = name if len(name) <= 200 else name[:200] + "..."
    # names come from ZooKeeper: no escape sequence or forged line reaches a terminal or a log
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def _writable(doc, node):
    """*doc* if every reader can read it back (json_problem), else FarmError: nothing is written.
    A value from argv that is not UTF-8 (surrogateescape) would be stored as JSON's "\\udcff"."""
    problem = json_problem(doc)
    if problem:
        raise FarmError("member %s would hold %s; nothing written" % (node, problem))
    return doc


def too_deep(doc):
    """Whether dicts and lists in *doc* nest deeper than MAX_DEPTH (walked without recursion)."""
    pending = [(doc, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                return True
            pending.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return False


def encode_member(doc):
    return json.dumps(doc).encode("utf-8")  # the member's own key order, as it joined


def _keys(dotted):
    keys = str(dotted).split(".")
    if not dotted or any(not key for key in keys):
        raise FarmError("bad field path %r: dotted names like mysql.replication_delay" % (dotted,))
    if len(keys) > MAX_DEPTH:
        raise FarmError("bad field path %.40r...: more than %d names" % (dotted, MAX_DEPTH))
    return keys


def check_field(dotted):
    """*dotted* if it is a valid field path, else FarmError."""
    _keys(dotted)
    return dotted


def _path(doc, dotted, make=False):
    """The keys *dotted* names in *doc*, or None when it names nothing there. A key may hold ".": a DJB
    file nginx.conf is the field nginx.conf. So each name is taken as a key of its own first (the path
    as it always read), and runs of names joined by "." are tried only where that leads nowhere. With
    *make* (set_field), a path that names nothing goes below the deepest dict its first names reach
    (the first found), one name per level from there."""
    names = _keys(dotted)
    keys, deepest = _find(doc, names)
    if keys is not None or not make:
        return keys
    return deepest[1] + names[deepest[0]:]


def _find(doc, names):
    """(keys that *names* name from *doc* or None, (position, keys) of the deepest dict reached): a
    depth first search, joined runs of names only where single names lead nowhere, each (dict,
    position) tried once."""
    dead, deepest = set(), [(0, [])]

    def find(node, i, keys):
        if i == len(names):
            return keys
        if not isinstance(node, dict) or (id(node), i) in dead:
            return None
        if i > deepest[0][0]:
            deepest[0] = (i, keys)
        for j in range(i + 1, len(names) + 1):
            key = ".".join(names[i:j])
            if key in node:
                found = find(node[key], j, keys + [key])
                if found is not None:
                    return found
        dead.add((id(node), i))
        return None

    return find(doc, 0, []), deepest[0]


def _walk(doc, keys):
    for key in keys:
        doc = doc[key]
    return doc


def get_field(doc, dotted):
    """The value at a dotted path; KeyError if it is not there."""
    keys = _path(doc, dotted)
    if keys is None:
        raise KeyError(dotted)
    return _walk(doc, keys)


def set_field(doc, dotted, value):
    """A copy of *doc* with the dotted path set (missing dicts are made)."""
    doc = copy.deepcopy(doc)
    keys = _path(doc, dotted, make=True)
    node = doc
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            if key in node:
                raise FarmError("cannot set %s: %s is a value, not a dict" % (dotted, key))
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value
    if too_deep(doc):  # what decode_member would refuse is never made
        raise FarmError("cannot set %s: the member would nest deeper than %d levels" % (dotted, MAX_DEPTH))
    return doc


def unset_field(doc, dotted):
    """A copy of *doc* without the dotted path; KeyError if it is not there."""
    keys = _path(doc, dotted)
    if keys is None:
        raise KeyError(dotted)
    doc = copy.deepcopy(doc)
    node = doc
    for key in keys[:-1]:
        node = node[key]
    del node[keys[-1]]
    return doc


def text(value):
    """A field as the command line shows it: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


_FILTER = re.compile(r"^(!?)([^=!<>]+?)(?:(=|!=|<=|>=|<|>)(.*))?$")


def parse_filter(expression):
    """'enabled=1,!maint,delay<10' -> [(negate, dotted, op, value)]; all must hold."""
    terms = []
    for raw in (expression or "").split(","):
        raw = raw.strip()
        if not raw:
            continue
        match = _FILTER.match(raw)
        if not match or (match.group(1) and match.group(3)):
            raise FarmError("bad filter %r: use field=value, field!=value, field<N (<=, >, >=), field or !field"
                            % raw)
        negate, field, op, value = match.groups()
        field = check_field(field.strip())  # 'a. =1' is the field 'a.' (refused), not 'a'
        if op in ("<", ">", "<=", ">="):
            try:
                value = float(value)
            except ValueError:
                raise FarmError("bad filter %r: %s compares with a number" % (raw, op)) from None
        terms.append((bool(negate), field, op, value))
    return terms


def _truthy(value):
    return value not in (None, False, 0, "", "0", "false", "False", [], {})


def matches(doc, terms):
    for negate, field, op, wanted in terms:
        try:
            value = get_field(doc, field)
        except KeyError:
            value, present = None, False
        else:
            present = True
        if op is None:
            ok = present and _truthy(value)
            ok = not ok if negate else ok
        elif op in ("=", "!="):
            ok = present and text(value) == wanted
            ok = not ok if op == "!=" else ok
        else:
            try:
                number = float(value)
            except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond any float
                return False
            ok = {"<": number < wanted, ">": number > wanted, "<=": number <= wanted, ">=": number >= wanted}[op]
        if not ok:
            return False
    return True


def read_dir(path, depth=1):
    """A DJB directory -> dict: folders are dicts, files keys with their text (one trailing
    newline trimmed, as zkfarmer did). Hidden entries are left out. A name or content that is
    not UTF-8, folders nested deeper than MAX_DEPTH, files holding more than tree.MAX_FILE_BYTES
    together (a sparse file of terabytes is refused by its size, not read), a read that fails, a
    file that is no longer a regular file when opened, or a symlink inside (it would read - and a
    write from ZooKeeper would land - somewhere else) is a FarmError. PATH is opened as given;
    everything below it relative to its folder's descriptor without following a link, so that one
    swapped in meanwhile is refused too."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise FarmError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    try:
        return _read_dir_fd(fd, path, depth, [tree.MAX_FILE_BYTES])
    finally:
        os.close(fd)


_BELOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO must not block the read


def _read_dir_fd(fd, path, depth, budget):
    """*budget*: [bytes the files may still hold], shared by the whole directory."""
    if depth > MAX_DEPTH:
        raise FarmError("%s: folders nested deeper than %d levels" % (path, MAX_DEPTH))
    doc = {}
    try:
        with os.scandir(fd) as entries:
            entries = sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        raise FarmError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    for entry in entries:
        name, where = entry.name, os.path.join(path, entry.name)
        if name.startswith("."):
            continue
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes, kept by Python as lone surrogates
            raise FarmError("%r in %s: the name is not UTF-8" % (name, path)) from None
        folder = entry.is_dir(follow_symlinks=False)
        if not (folder or entry.is_file(follow_symlinks=False) or entry.is_symlink()):
            continue  # a FIFO, a socket...: not a field
        try:
            handle = os.open(name, _BELOW | (os.O_DIRECTORY if folder else 0), dir_fd=fd)
        except OSError as exc:  # a symlink (also one swapped in since the listing), vanished, unreadable
            if entry.is_symlink() or _is_link(fd, name):
                raise FarmError("%s is a symlink: a DJB directory is read and written without following "
                                "symlinks (replace it by a file or a folder)" % where) from None
            raise FarmError("cannot read %s: %s" % (where, exc.strerror or exc)) from None
        try:
            if folder:
                doc[name] = _read_dir_fd(handle, where, depth + 1, budget)
                continue
            raw = _read_bounded(handle, where, budget)
        except OSError as exc:
            raise FarmError("cannot read %s: %s" % (where, exc.strerror or exc)) from None
        finally:
            os.close(handle)
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FarmError("%s is not UTF-8 text" % where) from None
        doc[name] = value[:-1] if value.endswith("\n") else value
    return doc


def _read_bounded(handle, where, budget):
    """The bytes of the regular file *handle*, taken from *budget*; FarmError if they do not fit."""
    st = os.fstat(handle)
    if not stat.S_ISREG(st.st_mode):
        raise FarmError("%s is not a regular file" % where)
    raw = tree.read_up_to(handle, budget[0] + 1) if st.st_size <= budget[0] else b""  # it may grow meanwhile
    if st.st_size > budget[0] or len(raw) > budget[0]:
        raise FarmError("%s is bigger than %d bytes (with the other files of the directory), more than zkherd "
                        "reads of a member; refusing to read it" % (where, tree.MAX_FILE_BYTES))
    budget[0] -= len(raw)
    return raw


def _is_link(fd, name):
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def check_dir_names(doc, where="member"):
    """*doc* if every key can be a file or folder name of a DJB directory, else FarmError: a key
    that is empty, starts with '.' (hidden, '.', '..') or holds '/' or NUL would be left out when
    read back, or land outside the directory."""
    pending = [doc]
    while pending:
        for key, value in pending.pop().items():
            name = str(key)
            if not name or name.startswith(".") or "/" in name or "\0" in name or not _utf8(name):
                raise FarmError("%s has a field named %r, which cannot be a file in a DJB directory (a name must "
                                "not be empty, start with '.', hold '/' or be other than UTF-8): nothing written"
                                % (where, name))
            if isinstance(value, dict):
                pending.append(value)
    return doc


def _utf8(text):
    """Whether *text* encodes as UTF-8 (JSON's "\\udc80" does not: as a file name it would be a byte the
    directory's next read refuses)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def ls_line(name, doc, fields):
    """One line of `farm ls --fields`, in zkfarmer's layout: name, then field=value pairs."""
    pairs = []
    for field in fields:
        try:
            pairs.append("%s=%s" % (field, text(get_field(doc, field))))
        except KeyError:
            pairs.append("%s=" % field)
    return "%-16s %s" % (name, ", ".join(pairs))


def read_members(client, farm_path):
    """Every member of a farm with pipelined reads (one round trip): ({name: doc}, [problems]).
    A member that is not a JSON object is named in problems and left out; one that leaves
    while we read is simply not there."""
    from kazoo.exceptions import NoNodeError

    try:
        names = sorted(client.get_children(farm_path))
    except Exception as exc:
        raise translate(exc, "list the farm", farm_path) from None
    pending = [(name, paths.join(farm_path, name)) for name in names]
    pending = [(name, node, client.get_async(node)) for name, node in pending]
    members, problems = {}, []
    for name, node, result in pending:
        try:
            data = result.get()[0]
        except NoNodeError:
            continue
        except Exception as exc:
            raise translate(exc, "read", node) from None
        try:
            members[name] = decode_member(data, "member %s" % node)
        except FarmError as exc:
            problems.append(exc.message)
    return members, problems


def create_with_parents(client, node, data, acl=None):
    """*node* and its missing parents (with the same ACL) in one transaction: all or nothing,
    also when the ACL does not let us create the member under a parent we just made."""
    ops = [txn.Op("create", parent, acl=acl) for parent in tree.missing_ancestors(client, node)]
    txn.apply(client, ops + [txn.Op("create", node, data, acl=acl)])


def update_member(client, node, change, dry_run=False, create=False, acl=None):
    """Compare-and-set of one member: read it, new = change(doc), write with the version read.
    A write that raced another writer reads again and applies the change on top of theirs, at
    most RETRIES times, then fails with kind 'version' (zkfarmer retried with the stale version
    and gave up silently). With *create*, a missing member is made from change({}), persistent,
    with missing parents and the kazoo *acl* (None: the client's default). Returns (before, after);
    before is None for a member that was made."""
    from kazoo.exceptions import BadVersionError, NoNodeError

    for _attempt in range(RETRIES):
        try:
            data, stat = client.get(node)
        except NoNodeError:
            if not create:
                raise ZkError("member %s does not exist" % node, NO_NODE) from None
            new = _writable(change({}), node)
            if dry_run:
                return None, new
            try:
                create_with_parents(client, node, encode_member(new), acl)
                return None, new
            except txn.ApplyError as exc:
                if exc.kind == VERSION and not exc.written:
                    continue  # joined meanwhile (or a parent was made): update it instead
                raise
        except Exception as exc:
            raise translate(exc, "read", node) from None
        doc = decode_member(data, "member %s" % node)
        new = _writable(change(doc), node)
        if codec.equal(new, doc) or dry_run:  # typed: setting true over 1 is a change
            return doc, new
        try:
            client.set(node, encode_member(new), version=stat.version)
            return doc, new
        except (BadVersionError, NoNodeError):
            continue  # someone wrote (or the member left) in between: read again
        except Exception as exc:
            raise translate(exc, "update", node) from None
    raise ZkError("%s changed %d times while we tried to update it; nothing written" % (node, RETRIES), VERSION)
