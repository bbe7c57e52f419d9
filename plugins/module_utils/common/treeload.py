# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load a desired tree (tree.desired_from_dir / desired_from_dict) into ZooKeeper: read the
current subtree as one snapshot, plan the differences, apply them as guarded transactions in
chunks (txn). The znode_tree module and `zkherd tree load` are this, with their own reporting.
No Ansible imports.
"""

from __future__ import annotations

from . import tree, txn
from .errors import AUTH


def plan_load(client, root, desired, prune=False):
    """(current {path: tree.Node}, tree.Plan): what makes the subtree at *root* equal *desired*,
    missing ancestors of *root* included in the creates."""
    current = tree.read_tree(client, root)
    plan = tree.plan(current, desired, root, prune=prune)
    if root not in current:
        plan.creates[:0] = [(parent, b"") for parent in tree.missing_ancestors(client, root)]
    return current, plan


def apply_load(client, root, plan, current, create_acl, wait, doer="a tree load"):
    """Commit *plan*; the number of transactions. Raises txn.ApplyError (what stays written).
    *doer*: what the user ran, for the hint of an access denied (znode_tree, `zkherd tree load`)."""
    ops = txn.plan_ops(plan, client, current, create_acl)
    try:
        return txn.apply(client, ops, txn.Guard.of(root, current), wait=wait)
    except txn.ApplyError as exc:
        if exc.kind == AUTH:  # the guard's write on the root is the surprising one
            exc.message += (" (every transaction of %s also sets the data of %s, unchanged, to keep "
                            "other writers out: the credentials need write permission on it, also to create "
                            "or delete below it)" % (doer, root))
        raise
