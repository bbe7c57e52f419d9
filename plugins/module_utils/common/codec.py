# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Znode data <-> values: raw text, JSON, YAML or base64 for binary data.

JSON and YAML compare structurally, so a different key order or spacing is not a change.
Shared by the Ansible plugins and the runner: no Ansible imports.
"""

from __future__ import annotations

import base64
import binascii
import json

from .errors import UserError

VALUE_TYPES = ("raw", "json", "yaml", "base64")

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


def _parse_yaml(text, where):
    yaml = _yaml()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CodecError("%s is not valid YAML: %s" % (where, str(exc).replace("\n", " "))) from None
    except YAML_VALUE_ERRORS as exc:
        raise CodecError("%s is not valid YAML: %s" % (where, exc)) from None
    except RecursionError:
        raise CodecError("%s is not usable YAML: nested too deeply" % where) from None


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
        return _parse_yaml(text, where)
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
            return value.encode("utf-8"), _parse_yaml(value, where)
        return _yaml().safe_dump(value, sort_keys=True, default_flow_style=False).encode("utf-8"), value
    raise CodecError("unknown value_type %r (choose from %s)" % (value_type, ", ".join(VALUE_TYPES)))


def same(current, desired_bytes, desired_value, value_type):
    """Whether the stored bytes already hold the desired value."""
    current = current or b""
    if current == desired_bytes:
        return True
    if value_type not in ("json", "yaml"):
        return False
    try:
        return decode(current, value_type) == desired_value
    except CodecError:
        return False  # malformed data in ZooKeeper is replaced by the valid desired value


def preview(data, limit=200):
    """A short, printable description of znode data for diffs and logs."""
    data = data or b""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "<binary, %d bytes>" % len(data)
    if len(text) > limit:
        text = text[:limit] + "... (%d bytes)" % len(data)
    return text


def pretty(data, value_type, limit=200):
    """Like preview(), but JSON and YAML data is shown laid out with sorted keys, so that a diff
    of two versions shows what changed, not how it was written."""
    if value_type in ("json", "yaml"):
        try:
            value = decode(data, value_type)
        except CodecError:
            return preview(data, limit)
        if value_type == "json":
            data = json.dumps(value, indent=2, sort_keys=True).encode("utf-8")
        else:
            data = _yaml().safe_dump(value, sort_keys=True, default_flow_style=False).encode("utf-8")
    return preview(data, limit)
