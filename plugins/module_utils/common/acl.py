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
    if not isinstance(entry, dict):  # not shown: it may hold a password
        raise AclError("an ACL entry must be a dict with scheme, id/username/password and perms, got a %s"
                       % type(entry).__name__)
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
        elif not is_digest_id(ident):  # not shown: a password given as the id must not be repeated
            raise AclError("a digest ACL needs username and password, or an id of the form user:base64-sha1 "
                           "(USER:BASE64(SHA1(USER:PASSWORD)), 28 characters after the user, never the password)")
    else:
        raise AclError("unknown ACL scheme %s (use %s or auth)" % (_word(entry.get("scheme")), ", ".join(SCHEMES)))
    return (scheme, str(ident), perms)


def parse(entries, credentials=None):
    """A list of user ACL specs (the modules' `acl`) -> a sorted list of unique triples. An entry of
    the `auth` scheme becomes the digest identity of *credentials* (the task's `auth`), which is
    what ZooKeeper stores for it: so the ACL compares with what the server reports, and reruns
    stay idempotent."""
    if not entries:
        raise AclError("an ACL list must not be empty (ZooKeeper refuses a node nobody may access)")
    if not isinstance(entries, (list, tuple)):
        raise AclError("ACLs must be a list of entries, got a %s" % type(entries).__name__)
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


def is_digest_id(ident):
    """USER:BASE64(SHA1(USER:PASSWORD)), as ZooKeeper stores a digest identity."""
    user, colon, digest = str(ident or "").partition(":")
    try:
        return bool(user and colon) and len(base64.b64decode(digest.encode("ascii"), validate=True)) == 20
    except (ValueError, UnicodeEncodeError):
        return False


def _word(value):
    """*value* quoted if it is a short plain word (a scheme, say), else a placeholder: messages
    never repeat what may be a password typed in the wrong place."""
    text = str(value)
    return repr(text) if text.isascii() and text.isalnum() and len(text) <= 20 else "(not shown)"


def shown_spec(text):
    """A 'SCHEME:ID:PERMS' spec as an error message may show it: world, ip and auth entries whole,
    a digest entry as digest:USER:*** (its user only when a hash or password follows it), any other
    as its scheme only - a password may have been typed anywhere in it."""
    scheme, colon, rest = text.partition(":")
    if scheme.lower() in ("world", "ip", "auth"):
        return repr(text)
    if not colon or _word(scheme) == "(not shown)":
        return "(not shown)"
    user, colon2, secret = rest.partition(":")
    if scheme.lower() == "digest" and colon2 and ":" in secret and _word(user) != "(not shown)":
        return "'digest:%s:***'" % user
    return "'%s:***'" % scheme


_FORM = ("expected SCHEME:ID:PERMS, e.g. world:anyone:r, ip:10.0.0.0/8:r, auth::rwcda or "
         "digest:USER:BASE64-SHA1:rwcda (PERMS: letters of rwcda, or all)")


def parse_spec(text):
    """'SCHEME:ID:PERMS' (the runner's --acl, zkCli's notation) -> (scheme, id, perms).

    world:anyone:r, ip:10.0.0.0/8:rwcda, digest:USER:BASE64-SHA1:rwcda (the id as ZooKeeper stores
    it, never a password), and auth::rwcda: ZooKeeper's "auth" scheme, which the server replaces by
    the digest identity of the session that creates the znode (the client's own credentials).
    Errors show the spec only as shown_spec() does.
    """
    text = str(text)
    shown = shown_spec(text)
    scheme, colon, rest = text.partition(":")
    ident, colon2, perms = rest.rpartition(":")
    if not colon or not colon2:
        raise AclError("ACL %s: %s" % (shown, _FORM))
    scheme = scheme.lower()
    if scheme not in SCHEMES + ("auth",):
        raise AclError("ACL %s: unknown scheme (use world, ip, digest or auth)" % shown)
    if scheme == "auth":
        if ident:
            raise AclError("ACL %s: the auth scheme takes no id (auth::PERMS)" % (shown,))
        return ("auth", "", parse_perms(perms))
    if scheme == "digest":
        # Checked first: with a colon too few (digest:USER:PASSWORD) the password stands where
        # PERMS should be, and a perms error would repeat it.
        if not is_digest_id(ident):
            raise AclError("ACL %s: a digest id is USER:BASE64(SHA1(USER:PASSWORD)), 28 characters after the "
                           "user, never the password itself (or use auth::PERMS for the client's own "
                           "credentials)" % shown)
        try:
            perms = parse_perms(perms)
        except AclError:
            raise AclError("ACL %s: %s" % (shown, _FORM)) from None
    return parse_entry({"scheme": scheme, "id": ident, "perms": perms})


def parse_specs(items):
    """A list of 'SCHEME:ID:PERMS' strings or entry dicts (or one string) -> sorted unique
    triples, or None when there are none (ZooKeeper's default: open to the world)."""
    if items is None or items == "":
        return None
    if isinstance(items, (str, dict)):
        items = [items]
    if not isinstance(items, (list, tuple)):
        raise AclError("ACLs must be a list of SCHEME:ID:PERMS strings, got a %s" % type(items).__name__)
    for item in items:
        if not isinstance(item, (str, dict)):
            raise AclError("an ACL entry must be a SCHEME:ID:PERMS string or a mapping, got a %s"
                           % type(item).__name__)
    triples = sorted(set(parse_entry(i) if isinstance(i, dict) else parse_spec(i) for i in items))
    return triples or None


def same(current, desired):
    return sorted(set(current)) == sorted(set(desired))


def report(triples):
    """Triples -> the documented return shape."""
    return [{"scheme": s, "id": i, "perms": perm_names(p)} for s, i, p in sorted(triples)]
