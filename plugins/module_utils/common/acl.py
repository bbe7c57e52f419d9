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
    if not isinstance(perms, (list, tuple)):
        raise AclError("ACL perms %r: use letters rwcda, all, a list of names or a number 0..31" % (perms,))
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
    elif scheme == "auth":
        if ident or entry.get("username") is not None or entry.get("password") is not None:
            raise AclError("the auth scheme takes no id, username or password: it stands for the credentials "
                           "the connection authenticates with")
        ident = ""
    elif scheme == "digest":
        username, password = entry.get("username"), entry.get("password")
        if username is not None or password is not None:
            if ident:
                raise AclError("a digest ACL takes either username/password or a hashed id, not both")
            if not isinstance(username, str) or not username or password is None or ":" in username:
                raise AclError("a digest ACL needs a username (without ':') and a password")
            ident = digest_id(username, password)
        elif not ident or ":" not in str(ident):
            raise AclError("a digest ACL needs username and password, or an id of the form user:base64-sha1")
    else:
        raise AclError("unknown ACL scheme %r (use %s or auth)" % (entry.get("scheme"), ", ".join(SCHEMES)))
    return (scheme, str(ident), perms)


def parse(entries, credentials=None):
    """A list of user ACL specs (the modules' `acl`) -> a sorted list of unique triples. An entry of
    the `auth` scheme becomes the digest identity of *credentials* (the task's `auth`), which is
    what ZooKeeper stores for it: so the ACL compares with what the server reports, and reruns
    stay idempotent."""
    if not entries:
        raise AclError("an ACL list must not be empty (ZooKeeper refuses a node nobody may access)")
    if not isinstance(entries, (list, tuple)):
        raise AclError("ACLs must be a list of entries, got %r" % (entries,))
    return sorted(set(own_identity(parse_entry(e), credentials) for e in entries))


def own_identity(triple, credentials):
    """An `auth` triple -> the digest triple of *credentials* ('user:password'); others unchanged."""
    scheme, _ident, perms = triple
    if scheme != "auth":
        return triple
    if not credentials or ":" not in str(credentials):
        raise AclError("an ACL entry of the auth scheme stands for the credentials of the connection: give "
                       "auth (user:password) too")
    user, _colon, password = str(credentials).partition(":")
    return ("digest", digest_id(user, password), perms)


def parse_spec(text):
    """'SCHEME:ID:PERMS' (the runner's --acl, zkCli's notation) -> (scheme, id, perms).

    world:anyone:r, ip:10.0.0.0/8:rwcda, digest:USER:BASE64-SHA1:rwcda (the id as ZooKeeper stores
    it, never a password), and auth::rwcda: ZooKeeper's "auth" scheme, which the server replaces by
    the digest identity of the session that creates the znode (the client's own credentials).
    """
    scheme, colon, rest = str(text).partition(":")
    ident, colon2, perms = rest.rpartition(":")
    if not colon or not colon2:
        raise AclError("ACL %r: expected SCHEME:ID:PERMS, e.g. world:anyone:r, auth::rwcda or "
                       "digest:USER:BASE64-SHA1:rwcda" % (text,))
    scheme = scheme.lower()
    if scheme not in SCHEMES + ("auth",):
        raise AclError("ACL %r: unknown scheme %r (use world, ip, digest or auth)" % (text, scheme))
    if scheme == "auth":
        if ident:
            raise AclError("ACL %r: the auth scheme takes no id (auth::PERMS)" % (text,))
        return ("auth", "", parse_perms(perms))
    triple = parse_entry({"scheme": scheme, "id": ident, "perms": perms})
    if scheme == "digest":
        digest = ident.split(":", 1)[1]
        try:
            ok = len(base64.b64decode(digest.encode("ascii"), validate=True)) == 20
        except (ValueError, UnicodeEncodeError):
            ok = False
        if not ok:
            raise AclError("ACL %r: a digest id is USER:BASE64(SHA1(USER:PASSWORD)), 28 characters after the "
                           "user, never the password itself (or use auth::PERMS for the client's own "
                           "credentials)" % ("digest:%s:***" % ident.split(":", 1)[0],))
    return triple


def parse_specs(items):
    """A list of 'SCHEME:ID:PERMS' strings or entry dicts (or one string) -> sorted unique
    triples, or None when there are none (ZooKeeper's default: open to the world)."""
    if items is None or items == "":
        return None
    if isinstance(items, (str, dict)):
        items = [items]
    if not isinstance(items, (list, tuple)):
        raise AclError("ACLs must be a list of SCHEME:ID:PERMS strings, got %r" % (items,))
    triples = sorted(set(parse_entry(i) if isinstance(i, dict) else parse_spec(i) for i in items))
    return triples or None


def same(current, desired):
    return sorted(set(current)) == sorted(set(desired))


def report(triples):
    """Triples -> the documented return shape."""
    return [{"scheme": s, "id": i, "perms": perm_names(p)} for s, i, p in sorted(triples)]
