# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many reads in one request: ZooKeeper 3.6+'s multiRead (OpCode 22), which kazoo 2.11 has no API
for. The request is framed like kazoo's Transaction (a MultiHeader before every sub-op, a done
header at the end) and submitted the same way (client._call), so it shares the connection's
order and timeouts with every other request.

Sub-ops: getChildren (8, names only) and getData (4, data and stat); each answers on its own, an
error (NoNode, NoAuth) in one does not fail the others. Watches are never asked for here: kazoo
registers a watcher only for its own request classes, so tree.read_tree keeps its pipelined reads
when a watch is wanted.

Support is found out once per client: the first multi-read is a probe of one getData. A server
before 3.6 answers an unknown request type with UNIMPLEMENTED (and drops the connection, which
kazoo re-opens in the same session); that, or a marshalling error, marks the client as without
multi-read, and its reads are pipelined from then on. No Ansible imports.
"""

from __future__ import annotations

import struct

GET_DATA, GET_CHILDREN, ERROR = 4, 8, -1
MAX_OPS = 2000  # sub-ops a request: a thousand znodes (children + data each), about 100 kB of paths
_ATTR = "_zkherd_multiread"  # on the client: True, False, or absent (not known yet)
_INT = struct.Struct("!i")
_HEADER = struct.Struct("!ibi")
_STAT = struct.Struct("!qqqqiiiqiiq")


class MultiRead:
    """A kazoo request: [(kind, path)] -> [(names) | (data, ZnodeStat) | KazooException]."""

    type = 22  # OpCode.multiRead; the probe test sets an unknown one to play an old server

    def __init__(self, operations):
        self.operations = operations

    def serialize(self):
        out = bytearray()
        for kind, path in self.operations:
            raw = path.encode("utf-8")
            out += _HEADER.pack(kind, 0, -1) + _INT.pack(len(raw)) + raw + b"\0"  # watch: false
        return bytes(out + _HEADER.pack(-1, 1, -1))

    @classmethod
    def deserialize(cls, data, offset):
        from kazoo.exceptions import EXCEPTIONS
        from kazoo.protocol.states import ZnodeStat

        results = []
        while True:
            kind, done, err = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size
            if done:
                return results
            if kind == GET_DATA:
                length = _INT.unpack_from(data, offset)[0]
                offset += _INT.size
                value = b"" if length < 0 else bytes(data[offset:offset + length])
                offset += max(length, 0)
                results.append((value, ZnodeStat._make(_STAT.unpack_from(data, offset))))
                offset += _STAT.size
            elif kind == GET_CHILDREN:
                count = _INT.unpack_from(data, offset)[0]
                offset += _INT.size
                names = []
                for _index in range(max(count, 0)):
                    length = _INT.unpack_from(data, offset)[0]
                    offset += _INT.size
                    names.append(bytes(data[offset:offset + length]).decode("utf-8"))
                    offset += length
                results.append(names)
            elif kind == ERROR:
                code = _INT.unpack_from(data, offset)[0]
                offset += _INT.size
                results.append(EXCEPTIONS[code]())
            else:
                raise ValueError("multiRead answer with an unexpected op type %d" % kind)


def _full(client, path):
    """The server's path of *path* under the client's chroot (what kazoo's own requests send)."""
    chroot = getattr(client, "chroot", "") or ""
    if not chroot:
        return path
    return (chroot + path).rstrip("/") or "/"


def submit(client, operations):
    """Send one multiRead of [(kind, path)]; an async result of its answers."""
    result = client.handler.async_result()
    client._call(MultiRead([(kind, _full(client, path)) for kind, path in operations]), result)  # noqa: SLF001
    return result


def supported(client, get, probe_path="/"):
    """Whether *client*'s server answers multiRead; found out once per client (see the module doc)."""
    known = getattr(client, _ATTR, None)
    if known is not None:
        return known
    from kazoo.exceptions import ConnectionLoss, MarshallingError, UnimplementedError

    try:
        answer = get(submit(client, [(GET_DATA, probe_path)]))
        known = len(answer) == 1
    except (UnimplementedError, MarshallingError, ConnectionLoss):
        known = False
        _settle(client, get, probe_path)
    setattr(client, _ATTR, known)
    return known


def _settle(client, get, path, attempts=5):
    """After a refused probe the server closes the connection: wait until a plain read passes
    again (kazoo queues it while it reconnects), so that the pipelined reads that follow do not
    meet the drop. A connection that stays lost is the caller's next read's to report."""
    from kazoo.exceptions import ConnectionLoss, NoNodeError

    for _attempt in range(attempts):
        try:
            get(client.exists_async(path))
            return
        except ConnectionLoss:
            continue
        except NoNodeError:
            return


def forget(client):
    """After a multi-read failed as unsupported (a mixed ensemble in an upgrade): pipelined from now."""
    setattr(client, _ATTR, False)


def read_nodes(client, level, get):
    """For every path of *level*: (path, names or exception, (data, stat) or exception), read with
    as few multiRead requests as MAX_OPS allows, all sent before any answer is awaited. The
    children of a znode are listed before its data is read, so that the data's stat (pzxid)
    tells whether the list changed after a given zxid."""
    per_request = MAX_OPS // 2
    pending = []
    for start in range(0, len(level), per_request):
        part = level[start:start + per_request]
        ops = [op for path in part for op in ((GET_CHILDREN, path), (GET_DATA, path))]
        pending.append((part, submit(client, ops)))
    for part, result in pending:
        answers = get(result)
        for index, path in enumerate(part):
            yield path, answers[2 * index], answers[2 * index + 1]
