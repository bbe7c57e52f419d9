# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a list of znode operations as few multi-op transactions as ZooKeeper's request size
limit allows, and undo the committed ones if a later one fails, so that a failure leaves
the tree as it was. Every write carries the version it was planned against (compare-and-set),
so a concurrent change makes the transaction fail instead of being overwritten.

Shared by the Ansible plugins and the runner: no Ansible imports.
"""

from __future__ import annotations

from .connection import ZkError, translate

# A multi request must stay under jute.maxbuffer (1 MiB by default) on every server.
REQUEST_BUDGET = 1000 * 1000 + 4096
MAX_OPS = 1000
_OP_OVERHEAD = 64  # header, version, flags and lengths of one op, generously
_VERBS = {"create": "create", "set": "update", "delete": "delete"}


class Op:
    """create (data, acl), set (data, version; old data for undo), delete (version; old data
    and acl for undo)."""

    __slots__ = ("kind", "path", "data", "version", "acl", "old")

    def __init__(self, kind, path, data=b"", version=-1, acl=None, old=None):
        self.kind = kind
        self.path = path
        self.data = data
        self.version = version
        self.acl = acl
        self.old = old

    def size(self):
        acl = sum(len(a.id.scheme) + len(a.id.id) + 12 for a in self.acl or ())
        return len(self.path.encode("utf-8")) + len(self.data or b"") + acl + _OP_OVERHEAD

    def undo(self):
        """The op that reverses this one once it is committed."""
        if self.kind == "create":
            return Op("delete", self.path, version=0)
        if self.kind == "set":
            return Op("set", self.path, self.old, version=self.version + 1 if self.version >= 0 else -1)
        return Op("create", self.path, self.old or b"", acl=self.acl)


def chunks(ops, budget=REQUEST_BUDGET, max_ops=MAX_OPS):
    """Split *ops* in order into lists that each fit one request."""
    batch, used = [], 0
    for op in ops:
        size = op.size()
        if batch and (used + size > budget or len(batch) >= max_ops):
            yield batch
            batch, used = [], 0
        batch.append(op)
        used += size
    if batch:
        yield batch


def _commit(client, batch):
    from kazoo.exceptions import RolledBackError

    txn = client.transaction()
    for op in batch:
        if op.kind == "create":
            txn.create(op.path, op.data or b"", acl=op.acl)
        elif op.kind == "set":
            txn.set_data(op.path, op.data or b"", version=op.version)
        elif op.kind == "delete":
            txn.delete(op.path, version=op.version)
        else:
            raise ValueError("unknown op %r" % op.kind)
    try:
        results = txn.commit()
    except Exception as exc:
        raise translate(exc, "commit a transaction of %d operations starting at" % len(batch),
                        batch[0].path) from None
    for op, result in zip(batch, results):
        if isinstance(result, Exception) and not isinstance(result, RolledBackError):
            raise translate(result, _VERBS[op.kind], op.path)
    if any(isinstance(r, Exception) for r in results):
        raise ZkError("a transaction starting at %s was rolled back" % batch[0].path)


def apply(client, ops):
    """Commit *ops*; returns the number of transactions. On failure, committed transactions
    are undone and ZkError says what failed and whether the undo worked."""
    done = []
    count = 0
    for batch in chunks(ops):
        try:
            _commit(client, batch)
        except ZkError as exc:
            if not done:
                raise
            undo = [op.undo() for op in reversed(done)]
            try:
                for back in chunks(undo):
                    _commit(client, back)
            except ZkError as undo_exc:
                raise ZkError("%s; undoing the %d operations already committed also failed (%s): "
                              "the tree is partly changed" % (exc.message, len(done), undo_exc.message),
                              exc.kind) from None
            raise ZkError("%s; the %d operations already committed were undone" % (exc.message, len(done)),
                          exc.kind) from None
        done.extend(batch)
        count += 1
    return count


def acls_for(client, paths_):
    """ACLs of many znodes in one round trip (to re-create deleted nodes on undo)."""
    pending = [(p, client.get_acls_async(p)) for p in paths_]
    result = {}
    for path, res in pending:
        try:
            result[path] = res.get()[0]
        except Exception as exc:
            raise translate(exc, "read the ACL of", path) from None
    return result


def plan_ops(plan, client, create_acl=None):
    """A tree.Plan -> ops in a safe order: creates parents first, then updates, then deletes
    deepest first (the plan's own order)."""
    ops = [Op("create", path, data, acl=create_acl) for path, data in plan.creates]
    ops += [Op("set", path, new, version=version, old=old) for path, old, new, version in plan.updates]
    if plan.deletes:
        acls = acls_for(client, [delete[0] for delete in plan.deletes])
        ops += [Op("delete", path, version=version, old=old, acl=acls[path])
                for path, old, version in plan.deletes]
    return ops
