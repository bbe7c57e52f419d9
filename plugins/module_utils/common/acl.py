# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ACL entries: user specs <-> (scheme, id, perms) triples, and digest ids.

Shared by the Ansible plugins and the runner: no Ansible imports. Kazoo's ACL objects are
built only at the edge (connection.to_kazoo_acls) so that this stays pure logic.
"""

from __future__ import annotations

import base64
import hashlib

from .errors import UserError

PERMS = (("read", 1), ("write", 2), ("create", 4), ("delete", 8), ("admin", 16))
ALL_PERMS = 31
_LETTERS = {"r": 1, "w": 2, "c": 4, "d": 8, "a": 16}
SCHEMES = ("world", "ip", "digest")
WORLD_ALL = [("world", "anyone", ALL_PERMS)]  # ZooKeeper's OPEN_ACL_UNSAFE, kazoo's default


class AclError(UserError, ValueError):
    """An ACL entry that cannot be understood."""


def digest_id(username, password):
    """The id ZooKeeper's digest scheme stores: user:base64(sha1(user:password))."""
    raw = hashlib.sha1(("%s:%s" % (username, password)).encode("utf-8")).digest()
    return "%s:%s" % (username, base64.b64encode(raw).decode("ascii"))


def parse_perms(perms):
    """'rwcda', 'all', ['read', 'write'] or an int -> the permission bit mask."""
    if perms is None:
        return ALL_PERMS
    if isinstance(perms, int) and not isinstance(perms, bool):
        if 0 <= perms <= ALL_PERMS:
            return perms
        raise AclError("ACL perms %d out of range 0..31" % perms)
    if isinstance(perms, str):
        if perms.lower() == "all":
            return ALL_PERMS
        if "," not in perms and perms and all(ch in _LETTERS for ch in perms.lower()):
            return sum({_LETTERS[ch] for ch in perms.lower()})
        perms = [p.strip() for p in perms.split(",") if p.strip()]
    names = dict(PERMS)
    mask = 0
    for name in perms:
        key = str(name).lower()
        if key == "all":
            mask |= ALL_PERMS
        elif key in names:
            mask |= names[key]
        else:
            raise AclError("unknown ACL permission %r (use read, write, create, delete, admin, all or letters rwcda)"
                           % (name,))
    return mask


def perm_names(mask):
    return [name for name, bit in PERMS if mask & bit]


def parse_entry(entry):
    """One user ACL spec (dict) -> (scheme, id, perms)."""
    if not isinstance(entry, dict):
        raise AclError("an ACL entry must be a dict with scheme, id/username/password and perms, got %r"
                       % (entry,))
    scheme = str(entry.get("scheme") or "").lower()
    perms = parse_perms(entry.get("perms"))
    ident = entry.get("id")
    if scheme == "world":
        ident = ident or "anyone"
        if ident != "anyone":
            raise AclError("the world scheme only has the id 'anyone', got %r" % (ident,))
    elif scheme == "ip":
        if not ident:
            raise AclError("an ip ACL needs an id: an address or a CIDR network, e.g. 10.0.0.0/8")
    elif scheme == "digest":
        username, password = entry.get("username"), entry.get("password")
        if username is not None or password is not None:
            if ident:
                raise AclError("a digest ACL takes either username/password or a hashed id, not both")
            if not username or password is None or ":" in username:
                raise AclError("a digest ACL needs a username (without ':') and a password")
            ident = digest_id(username, password)
        elif not ident or ":" not in ident:
            raise AclError("a digest ACL needs username and password, or an id of the form user:base64-sha1")
    else:
        raise AclError("unknown ACL scheme %r (use %s)" % (entry.get("scheme"), ", ".join(SCHEMES)))
    return (scheme, str(ident), perms)


def parse(entries):
    """A list of user ACL specs -> a sorted list of unique triples."""
    if not entries:
        raise AclError("an ACL list must not be empty (ZooKeeper refuses a node nobody may access)")
    return sorted(set(parse_entry(e) for e in entries))


def same(current, desired):
    return sorted(set(current)) == sorted(set(desired))


def report(triples):
    """Triples -> the documented return shape."""
    return [{"scheme": s, "id": i, "perms": perm_names(p)} for s, i, p in sorted(triples)]
