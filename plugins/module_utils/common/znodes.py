# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Single znodes: read with ACL, compare-and-set writes, creates with parents and (recursive)
deletes, each as ZooKeeper transactions (txn). Shared by the znode module and the runner's
`zkherd get|set|rm`: no Ansible imports.
"""

from __future__ import annotations

from . import paths, tree, txn
from .connection import ZkError, from_kazoo_acls, translate
from .errors import AUTH, NO_NODE, NOT_EMPTY, VERSION


def read(client, path):
    """(data, stat, acl triples) or None when the znode does not exist."""
    from kazoo.exceptions import NoNodeError

    data_result, acl_result = client.get_async(path), client.get_acls_async(path)  # one round trip
    try:
        data, stat = data_result.get()
        acl = acl_result.get()[0]
    except NoNodeError:
        return None
    except Exception as exc:
        raise translate(exc, "read", path) from None
    return data or b"", stat, from_kazoo_acls(acl)


def check_version(path, expected, stat):
    """A write pinned to *expected* (None or -1: any version) of a znode at *stat*."""
    if expected is not None and expected != -1 and stat.version != expected:
        raise ZkError("znode %s is at version %d, not the expected %d; nothing was changed"
                      % (path, stat.version, expected), VERSION)


def create(client, path, data, parents, create_acl, wait):
    """*path* with *data* and its missing *parents*, in one transaction: all or nothing."""
    ops = [txn.Op("create", parent, acl=create_acl) for parent in parents]
    ops.append(txn.Op("create", path, data, acl=create_acl))
    txn.apply(client, ops, wait=wait)


def missing_parents(client, path, makepath):
    """The ancestors a create of *path* must make; without *makepath* a missing one is an error."""
    parents = tree.missing_ancestors(client, path)
    if parents and not makepath:
        raise ZkError("cannot create %s: parent %s does not exist" % (path, parents[0]), NO_NODE)
    return parents


def set_value(client, path, data, before, wait):
    """Compare-and-set of the data of a znode read as *before* (data, stat, ...)."""
    old, stat = before[0], before[1]
    txn.apply(client, [txn.Op("set", path, data, version=stat.version, old=old, czxid=stat.czxid)], wait=wait)


def subtree(client, path, before, recursive, how="a recursive delete takes"):
    """{path: tree.Node} a delete of *path* (read as *before*) takes, and their paths deepest first.
    *how*: the caller's way to ask for a recursive delete, for the message."""
    stat = before[1]
    if stat.numChildren and not recursive:
        raise ZkError("znode %s has children (%d); %s it with its subtree" % (path, stat.numChildren, how),
                      NOT_EMPTY)
    nodes = tree.read_tree(client, path) if stat.numChildren else {path: tree.Node(path, before[0], stat, [])}
    return nodes, sorted(nodes, key=lambda q: (-paths.depth(q), q))


def delete(client, path, before, nodes, doomed, wait):
    """Delete *doomed* (from subtree()), compare-and-set; several transactions are guarded by
    the root's version (txn.Guard). Raises txn.ApplyError saying what stays deleted."""
    stat = before[1]
    plan = tree.Plan()
    # the root's version is the one read (or pinned) at the start: compare-and-set
    plan.deletes = [(q, nodes[q].data, stat.version if q == path else nodes[q].stat.version) for q in doomed]
    guard = txn.Guard(path, before[0], stat.version, stat.czxid) if len(doomed) > 1 else None
    try:
        txn.apply(client, txn.plan_ops(plan, client, nodes), guard, wait=wait)
    except txn.ApplyError as exc:
        if exc.kind == AUTH and ("update %s:" % path) in exc.message:  # the guard's write on the root
            exc.message += (" (a subtree deleted in several transactions also sets the data of %s, unchanged, "
                            "in each one to keep other writers out: the credentials need write permission "
                            "on it)" % path)
        raise
