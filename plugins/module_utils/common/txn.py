# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a list of znode operations as few multi-op transactions as ZooKeeper's request size
limit allows, and know at every moment which of them are in effect.

- Every write carries the version it was planned against (compare-and-set), so a concurrent
  change makes the transaction fail instead of being overwritten.
- A tree written in several transactions has a guard, its root: every transaction also sets the
  root's data with the data version it must have. So the transactions of two writers cannot
  interleave, and one that read the tree before another writer's transaction (or between two of
  them) fails as a whole, also where it writes nothing but relies on what it read.
- A failure undoes the committed transactions (compare-and-set and guarded as well), except when
  the guard moved: another writer has taken over and undoing would overwrite its changes.
- A lost reply is ambiguous; outcome.find_out tells whether the transaction was applied (it
  then counts as committed), was not (it is sent again), or cannot be told (ApplyError says so).

Shared by the Ansible plugins and the runner: no Ansible imports.
"""

from __future__ import annotations

from . import outcome
from .connection import ZkError, translate
from .errors import CONNECT, VERSION

# A multi request must stay under jute.maxbuffer (1 MiB by default) on every server.
REQUEST_BUDGET = 1000 * 1000 + 4096
MAX_OPS = 1000
_OP_OVERHEAD = 64  # header, version, flags and lengths of one op, generously
COMMIT_TIMEOUT = 60.0  # a reply slower than this is treated as lost: find out what happened
DEFAULT_WAIT = 30.0  # how long to wait for the connection to come back after a lost reply
_SENDS = 3  # a transaction found not applied after a lost reply is sent again, this often in all
_VERBS = {"create": "create", "set": "update", "delete": "delete"}


class Op:
    """create (data, acl), set (data, version; old data for undo), delete (version; old data
    and acl for undo). czxid: the creation zxid of the znode a set or delete was planned against."""

    __slots__ = ("kind", "path", "data", "version", "acl", "old", "czxid")

    def __init__(self, kind, path, data=b"", version=-1, acl=None, old=None, czxid=None):
        self.kind = kind
        self.path = path
        self.data = data
        self.version = version
        self.acl = acl
        self.old = old
        self.czxid = czxid

    def size(self):
        acl = sum(len(a.id.scheme) + len(a.id.id) + 12 for a in self.acl or ())
        return len(self.path.encode("utf-8")) + len(self.data or b"") + acl + _OP_OVERHEAD

    def undo(self):
        """The op that reverses this one once it is committed."""
        if self.kind == "create":
            return Op("delete", self.path, version=0)
        if self.kind == "set":
            version = self.version + 1 if self.version >= 0 else -1
            return Op("set", self.path, self.old, version=version, old=self.data, czxid=self.czxid)
        return Op("create", self.path, self.old or b"", acl=self.acl)


class Guard:
    """The root of a tree written in several transactions (see the module's docstring).
    *version* None: the first transaction creates the root."""

    def __init__(self, path, data=b"", version=None, czxid=None):
        self.path = path
        self.data = data or b""
        self.version = version
        self.czxid = czxid

    @classmethod
    def of(cls, path, nodes):
        """The guard of the tree under *path*, as read into {path: tree.Node}."""
        node = nodes.get(path)
        if node is None:
            return cls(path)
        return cls(path, node.data, node.stat.version, node.stat.czxid)

    def reserve(self, ops):
        """Room one guard op may need in a transaction."""
        data = max([len(self.data)] + [len(op.data or b"") for op in ops if op.path == self.path])
        return len(self.path.encode("utf-8")) + data + _OP_OVERHEAD

    def wrap(self, batch):
        """The ops to send for *batch*: its own, one of them (or an added set) on the root with
        the version the root must have."""
        sent, guarded = [], False
        for op in batch:
            if op.path == self.path:
                guarded = True
                if op.kind != "create":
                    op = Op(op.kind, op.path, op.data, version=self.version, czxid=self.czxid)
            sent.append(op)
        if not guarded:
            sent.append(Op("set", self.path, self.data, version=self.version, czxid=self.czxid))
        return sent

    def committed(self, sent, zxid):
        for op in sent:
            if op.path != self.path:
                continue
            if op.kind == "create":
                self.version, self.czxid, self.data = 0, zxid, op.data or b""
            elif op.kind == "set":
                self.version, self.data = self.version + 1, op.data or b""
            else:
                self.version = None


class ApplyError(ZkError):
    """apply() failed. done: the ops in effect (committed and not undone), in order; uncertain:
    the ops of a transaction that may or may not have been applied; written: whether anything
    was (or may have been) written, undone or not."""

    def __init__(self, message, kind, done=(), uncertain=(), written=False):
        super().__init__(message, kind)
        self.done = list(done)
        self.uncertain = list(uncertain)
        self.written = written


class _Refused(Exception):
    def __init__(self, message, kind, guard_moved=False):
        super().__init__(message)
        self.message, self.kind, self.guard_moved = message, kind, guard_moved


class _Unknown(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


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


def _batches(ops, guard):
    if guard is None:
        return chunks(ops)
    return chunks(ops, REQUEST_BUDGET - guard.reserve(ops), MAX_OPS - 1)


def apply(client, ops, guard=None, wait=DEFAULT_WAIT):
    """Commit *ops* (with *guard*, a Guard, when they may take several transactions); returns
    the number of transactions. Raises ApplyError saying what failed and what is left."""
    done, count, batch = [], 0, []
    try:
        for batch in _batches(ops, guard):
            _commit(client, batch, guard, wait)
            done.extend(batch)
            count += 1
    except _Unknown as exc:
        raise ApplyError("lost the connection to ZooKeeper while committing a transaction of %d operations "
                         "starting at %s, and cannot tell whether it was applied: %s; %s"
                         % (len(batch), batch[0].path, exc.reason, _before(done)),
                         CONNECT, done, batch, written=True) from None
    except _Refused as exc:
        if not done:
            raise ApplyError("%s; nothing was changed" % exc.message, exc.kind) from None
        if exc.guard_moved:
            raise ApplyError("%s; the %d operations this task had committed were not undone, so as not to "
                             "overwrite the other writer's changes: they remain, except where that writer has "
                             "changed them since" % (exc.message, len(done)), exc.kind, done, written=True) from None
        left, uncertain, why = _undo(client, done, guard, wait)
        if not left and not uncertain:
            raise ApplyError("%s; the %d operations already committed were undone" % (exc.message, len(done)),
                             exc.kind, written=True) from None
        raise ApplyError("%s; undoing the %d operations already committed failed (%s): %d of them remain%s"
                         % (exc.message, len(done), why, len(left),
                            ", and %d more may remain" % len(uncertain) if uncertain else ""),
                         exc.kind, left, uncertain, written=True) from None
    return count


def _before(done):
    if not done:
        return "nothing was committed before it"
    return "the %d operations committed before it remain" % len(done)


def _undo(client, done, guard, wait):
    """Undo *done*, last first: (ops left in effect, ops maybe left, why the undo stopped)."""
    undone, batch = 0, []
    try:
        for batch in _batches([op.undo() for op in reversed(done)], guard):
            _commit(client, batch, guard, wait)
            undone += len(batch)
    except _Refused as exc:
        return done[:len(done) - undone], [], exc.message
    except _Unknown as exc:
        end = len(done) - undone
        return done[:end - len(batch)], done[end - len(batch):end], "cannot tell whether it went through: " + exc.reason
    return [], [], ""


def _commit(client, batch, guard, wait):
    """Commit one transaction; raises _Refused (not applied, and why) or _Unknown."""
    from kazoo.exceptions import ConnectionLoss

    sent = guard.wrap(batch) if guard else batch
    for _attempt in range(_SENDS):
        zxid_before = getattr(client, "last_zxid", 0)
        try:
            results = _transaction(client, sent).commit_async().get(timeout=COMMIT_TIMEOUT)
        except Exception as exc:
            if not outcome.lost_connection(exc, client):
                raise _Refused(*_describe(None, exc, sent, guard)) from None
            state, reason = outcome.find_out(client, sent, zxid_before, wait)
            if state == outcome.UNKNOWN:
                raise _Unknown(reason) from None
            if state == outcome.NOT_APPLIED:
                continue  # connected again: send it again, and learn why if it is refused
            results = []
        refused = _refusal(sent, results)
        if refused:
            raise _Refused(*_describe(refused[0], refused[1], sent, guard))
        if guard:
            guard.committed(sent, getattr(client, "last_zxid", None) if results else None)
        return
    raise _Refused(*_describe(None, ConnectionLoss(), sent, guard))


def _transaction(client, ops):
    txn = client.transaction()
    for op in ops:
        if op.kind == "create":
            txn.create(op.path, op.data or b"", acl=op.acl)
        elif op.kind == "set":
            txn.set_data(op.path, op.data or b"", version=op.version)
        elif op.kind == "delete":
            txn.delete(op.path, version=op.version)
        else:
            raise ValueError("unknown op %r" % op.kind)
    return txn


def _refusal(sent, results):
    """(op, error) of the op that made the server refuse the transaction, or None."""
    from kazoo.exceptions import RolledBackError

    for op, result in zip(sent, results):
        if isinstance(result, Exception) and not isinstance(result, RolledBackError):
            return op, result
    if any(isinstance(result, Exception) for result in results):
        return sent[0], RolledBackError()
    return None


def _describe(op, exc, sent, guard):
    """(message, kind, guard moved) for a transaction the server refused because of *op*."""
    from kazoo import exceptions as ke

    conflicts = ((ke.BadVersionError, "changed it"), (ke.NodeExistsError, "created it"),
                 (ke.NoNodeError, "deleted it (or its parent)"), (ke.NotEmptyError, "gave it children"))
    what = next((text for cls, text in conflicts if isinstance(exc, cls)), None)
    if op is not None and what is not None:
        if guard is not None and op.path == guard.path:
            return ("another writer changed the tree under %s since this task read it (the root's data version "
                    "moved)" % guard.path, VERSION, True)
        return ("cannot %s %s: another writer %s since this task read it" % (_VERBS[op.kind], op.path, what),
                VERSION, False)
    if op is None:
        error = translate(exc, "commit a transaction of %d operations starting at" % len(sent), sent[0].path)
    else:
        error = translate(exc, _VERBS[op.kind], op.path)
    return error.message, error.kind, False


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


def plan_ops(plan, client, nodes, create_acl=None):
    """A tree.Plan of the tree read into *nodes* -> ops in a safe order: creates parents first,
    then updates, then deletes deepest first (the plan's own order)."""
    ops = [Op("create", path, data, acl=create_acl) for path, data in plan.creates]
    ops += [Op("set", path, new, version=version, old=old, czxid=nodes[path].stat.czxid)
            for path, old, new, version in plan.updates]
    if plan.deletes:
        acls = acls_for(client, [delete[0] for delete in plan.deletes])
        ops += [Op("delete", path, version=version, old=old, acl=acls[path], czxid=nodes[path].stat.czxid)
                for path, old, version in plan.deletes]
    return ops
