# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Znode data <-> values: raw text, JSON, YAML or base64 for binary data.

JSON and YAML compare structurally (equal()), so a different key order or spacing is not a change,
while true, 1 and 1.0 are three different values. Data is untrusted: YAML may not expand (through
aliases) beyond MAX_EXPANDED. Shared by the Ansible plugins and the runner: no Ansible imports.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json

from .errors import UserError

VALUE_TYPES = ("raw", "json", "yaml", "base64")

# The most a YAML document may expand to, in nodes plus characters of its scalars, every alias
# counted as often as it is used. An alias repeats what it names: 342 bytes of "billion laughs"
# expand to 387 million strings (2.8 GB when serialized). A znode holds at most 1 MB, which is
# under 2 million of these units without aliases: 4 million leaves room for honest anchors.
MAX_EXPANDED = 4 * 1000 * 1000

# What PyYAML's safe_load lets escape, besides YAMLError, for malformed tagged or implicit scalars
# (!!int 0x, !!bool x, !!timestamp x, 2001-02-30): for the caller they all mean "not valid YAML".
YAML_VALUE_ERRORS = (ArithmeticError, AttributeError, LookupError, TypeError, ValueError)


class CodecError(UserError, ValueError):
    """Data that cannot be decoded, or a value that cannot be encoded, as the asked type."""


def _parse_json(text, where):
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CodecError("%s is not valid JSON: %s" % (where, exc)) from None
    except RecursionError:
        raise CodecError("%s is not usable JSON: nested too deeply" % where) from None


def _yaml():
    # imported when needed: a managed host without PyYAML can still use raw, json and base64
    import yaml

    return yaml


class _TooBig(Exception):
    pass


def _children(node):
    """The nodes inside a YAML node: a sequence's items, a mapping's keys and values."""
    if isinstance(node.value, str):
        return ()
    return [child for item in node.value for child in (item if isinstance(item, tuple) else (item,))]


def expanded_size(root, limit=MAX_EXPANDED):
    """The size of a composed YAML node graph with every alias (and merge key) expanded: one per
    node plus the characters of each scalar. Each node is measured once (post-order, without
    recursion) and an alias adds its node's size again, so a bomb costs its own few nodes, not
    what it expands to; an alias inside what it names is endless: over *limit*."""
    sizes = {}  # id(node) -> expanded size; None while the node is being measured
    pending = [(root, False)]
    while pending:
        node, measured_children = pending.pop()
        if measured_children:
            size = 1 + (len(node.value) if isinstance(node.value, str) else 0)
            size += sum(sizes[id(child)] for child in _children(node))
            if size > limit:
                return size
            sizes[id(node)] = size
            continue
        if id(node) in sizes:
            continue  # an alias of a node measured already
        sizes[id(node)] = None
        pending.append((node, True))
        for child in _children(node):
            if id(child) not in sizes:
                pending.append((child, False))
            elif sizes[id(child)] is None:  # one of the nodes we are inside of: a cycle
                return limit + 1
    return sizes[id(root)]


@functools.lru_cache(maxsize=None)  # noqa: UP033 (functools.cache is Python 3.9+; managed hosts may have 3.8)
def _loader():
    """PyYAML's SafeLoader that measures the document before it builds it (made on first use)."""
    class BoundedSafeLoader(_yaml().SafeLoader):
        def get_single_node(self):
            node = super().get_single_node()
            if node is not None and expanded_size(node) > MAX_EXPANDED:
                raise _TooBig()
            return node

    return BoundedSafeLoader


def load_yaml(text, where):
    """YAML text (str or bytes) -> a value, with safe tags only and a bounded expansion (the one
    YAML loader of zkherd); CodecError naming *where* for anything that is not usable YAML."""
    yaml = _yaml()
    try:
        loader = _loader()(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except _TooBig:
        raise CodecError("%s is not usable YAML: it expands to more than %d nodes and characters (aliases that "
                         "repeat data, a \"billion laughs\")" % (where, MAX_EXPANDED)) from None
    except yaml.YAMLError as exc:
        raise CodecError("%s is not valid YAML: %s" % (where, yaml_problem(exc))) from None
    except YAML_VALUE_ERRORS:  # PyYAML lets these escape for `!!int 0x`, `2001-02-30`...; its text quotes the value
        raise CodecError("%s is not valid YAML: a value does not fit its tag (!!int, !!float, a date...)"
                         % where) from None
    except RecursionError:
        raise CodecError("%s is not usable YAML: nested too deeply" % where) from None


def yaml_problem(exc):
    """What is wrong and where, without PyYAML's quote of the line: it may hold a password."""
    mark = getattr(exc, "problem_mark", None)
    problem = " ".join(str(part) for part in (getattr(exc, "context", None), getattr(exc, "problem", None)) if part)
    if mark is None:
        return problem or type(exc).__name__
    return "%s (line %d, column %d)" % (problem or "syntax error", mark.line + 1, mark.column + 1)


def _text(data, where):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CodecError("%s is binary (not UTF-8 text); read it with value_type=base64" % where) from None


def decode(data, value_type, where="znode data"):
    """Bytes from ZooKeeper -> a value of *value_type*."""
    data = data or b""
    if value_type == "base64":
        return base64.b64encode(data).decode("ascii")
    text = _text(data, where)
    if value_type == "raw":
        return text
    if value_type in ("json", "yaml") and not text.strip():
        return None  # an empty znode (a folder) holds no document: null, as YAML itself says
    if value_type == "json":
        return _parse_json(text, where)
    if value_type == "yaml":
        return load_yaml(text, where)
    raise CodecError("unknown value_type %r (choose from %s)" % (value_type, ", ".join(VALUE_TYPES)))


def encode(value, value_type, where="value"):
    """A value from the user -> (bytes to store, structured value or None for raw/base64).

    A string given for json/yaml is validated and stored as written (its formatting kept);
    a dict, list or scalar is serialized with sorted keys so that reruns are stable.
    """
    try:
        return _encode(value, value_type, where)
    except UnicodeEncodeError:
        raise CodecError("%s holds text that is not valid Unicode (a lone surrogate)" % where) from None
    except (TypeError, ValueError, RecursionError) as exc:
        if isinstance(exc, CodecError):
            raise
        raise CodecError("%s cannot be stored as %s: %s" % (where, value_type, exc)) from None


def _encode(value, value_type, where):
    if value_type == "base64":
        try:
            return base64.b64decode(str(value), validate=True), None
        except (binascii.Error, ValueError) as exc:
            raise CodecError("%s is not valid base64: %s" % (where, exc)) from None
    if value_type == "raw":
        if isinstance(value, (dict, list)):
            raise CodecError("%s is a %s; use value_type=json or yaml to store structured data"
                             % (where, type(value).__name__))
        if isinstance(value, bool):
            value = "true" if value else "false"
        return str(value).encode("utf-8"), None
    if value_type == "json":
        if isinstance(value, str):
            return value.encode("utf-8"), _parse_json(value, where)
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8"), value
    if value_type == "yaml":
        if isinstance(value, str):
            return value.encode("utf-8"), load_yaml(value, where)
        return _yaml().safe_dump(value, sort_keys=True, default_flow_style=False).encode("utf-8"), value
    raise CodecError("unknown value_type %r (choose from %s)" % (value_type, ", ".join(VALUE_TYPES)))


def _kind(value):
    """The JSON/YAML type of a decoded value: bool before int, since Python's True == 1."""
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str), ("dict", dict),
                        ("list", (list, tuple))):
        if isinstance(value, types):
            return kind
    return "null" if value is None else type(value).__name__


def equal(a, b):
    """Whether two decoded JSON/YAML values are the same data, types included: true, 1 and 1.0 are
    three values (Python's == says they are one), dict key order does not matter, list order does.
    Floats are the same when they print the same (NaN is NaN; 0.0 is not -0.0). The one comparison
    of values in zkherd: modules, farm members, `farm join`'s merge."""
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        kind = _kind(x)
        if kind != _kind(y):
            return False
        if kind == "dict":
            if len(x) != len(y):
                return False
            theirs = {(_kind(k), k): v for k, v in y.items()}
            for key, value in x.items():
                typed = (_kind(key), key)
                if typed not in theirs:
                    return False
                pending.append((value, theirs[typed]))
        elif kind == "list":
            if len(x) != len(y):
                return False
            pending.extend(zip(x, y))
        elif kind == "float":
            if repr(x) != repr(y):
                return False
        elif x != y:
            return False
    return True


def same(current, desired_bytes, desired_value, value_type):
    """Whether the stored bytes already hold the desired value (for json and yaml: equal())."""
    current = current or b""
    if current == desired_bytes:
        return True
    if value_type not in ("json", "yaml") or not current.strip():
        return False  # an empty znode holds no document, not even `null`
    try:
        return equal(decode(current, value_type), desired_value)
    except CodecError:
        return False  # malformed data in ZooKeeper is replaced by the valid desired value


def digest(data):
    return hashlib.sha256(data).hexdigest()


def _shown(data, limit):
    """(printable text, whether it is all of *data*)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "<binary, %d bytes, sha256 %s>" % (len(data), digest(data)), False
    if len(text) > limit:
        return text[:limit] + "... (%d bytes, sha256 %s)" % (len(data), digest(data)), False
    return text, True


def preview(data, limit=200):
    """A short, printable description of znode data for diffs and logs. Binary or cut data names
    its SHA-256, so that two different values never look the same."""
    return _shown(data or b"", limit)[0]


def diff_text(data, value_type, limit=20000):
    """Znode data as a diff shows it. JSON and YAML are laid out with sorted keys, so that a diff
    shows what changed, not how it was written; other data is shown as it is (binary and cut data
    with a digest), with diff's own line when it does not end with a newline ("a\n" -> "a")."""
    data = data or b""
    if value_type in ("json", "yaml") and data.strip():
        try:
            value = decode(data, value_type)
        except CodecError:
            pass  # shown as it is
        else:
            if value_type == "json":
                data = (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8")
            else:
                data = _yaml().safe_dump(value, sort_keys=True, default_flow_style=False).encode("utf-8")
    text, complete = _shown(data, limit)
    if not text.endswith("\n") and text:
        text += "\n\\ No newline at end of file\n" if complete else "\n"
    return text
