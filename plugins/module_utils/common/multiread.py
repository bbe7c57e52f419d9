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
multi-read, and its reads are pipelined from then on. A probe lost with the connection decides
nothing: the next read probes again.

Sizes. The server builds an answer whole in its heap (and kazoo reads it whole, without pinging
meanwhile), so a request of a thousand znodes of a megabyte each would be a gigabyte: enough to
stop a server with an out-of-memory error. The values' sizes are not known before they are read,
so read_nodes sizes each request from what the read has seen so far: each level of the tree starts
with one request of FIRST_ZNODES znode, a request holds at most GROWTH times the znodes of the
largest answered in its level, and (znodes x the largest value seen, at least MIN_VALUE_GUESS)
stays under ANSWER_BYTES; once requests are that big, more are sent before the oldest is
answered while the same guess of their answers stays under IN_FLIGHT_BYTES. This is a guess,
not a bound: a level whose first few hundred values are small and whose next ones are all near
a megabyte still makes answers of many megabytes. A request's own bytes (its paths) stay under REQUEST_BYTES,
far from the server's 1 MB jute.maxbuffer. No Ansible imports.
"""

from __future__ import annotations

import struct

GET_DATA, GET_CHILDREN, ERROR = 4, 8, -1
MAX_OPS = 2000  # sub-ops a request: a thousand znodes (children + data each)
REQUEST_BYTES = 256 * 1024  # of a request (paths and headers); the server refuses one over 1 MB
ANSWER_BYTES = 1024 * 1024  # guessed bytes of an answer: no more than one plain read's (see the module doc)
IN_FLIGHT_BYTES = 4 * 1024 * 1024  # guessed bytes of the answers awaited at once
FIRST_ZNODES = 1  # the first request of a read: one value, as a plain read
GROWTH = 4  # a request holds at most this times the znodes of the one before
MIN_VALUE_GUESS = 256  # a small value still costs its stat and names in the answer
_OP_OVERHEAD = 2 * (12 + 4 + 1)  # two sub-ops: header, path length, watch flag (and the path twice)
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
        """The answers; a malformed answer is a MarshallingError (the caller reads pipelined instead)."""
        from kazoo.exceptions import MarshallingError

        try:
            return cls._answers(data, offset)
        except (struct.error, ValueError, UnicodeDecodeError) as exc:
            raise MarshallingError("a malformed multiRead answer: %s" % exc) from None

    @staticmethod
    def _answers(data, offset):
        from kazoo.exceptions import EXCEPTIONS, ZookeeperError
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
                known = code in EXCEPTIONS
                results.append(EXCEPTIONS[code]() if known else ZookeeperError("error code %d from the server" % code))
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
    except ConnectionLoss:  # lost with the connection: nothing is known yet, the next read asks again
        settle(client, get, probe_path)
        return False
    except (UnimplementedError, MarshallingError):
        known = False
        settle(client, get, probe_path)
    setattr(client, _ATTR, known)
    return known


def settle(client, get, path, attempts=5):
    """After a refused multi-read the server closes the connection: wait until a plain read passes
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


def read_nodes(client, level, get, sizes=None):
    """For every path of *level*: (path, names or exception, (data, stat) or exception), read with
    multiRead requests sized as the module doc says (*sizes*: a Sizes kept over the levels of one
    read), several awaited at once. The children of a znode are listed before its data is read, so
    that the data's stat (pzxid) tells whether the list changed after a given zxid."""
    sizes = sizes or Sizes(client)
    sizes.proven = 0  # a new level: its values may be bigger than the last level's
    pending, start = [], 0
    while start < len(level) or pending:
        while start < len(level) and (not pending or sizes.more()):
            part = sizes.next_part(level, start)
            ops = [op for path in part for op in ((GET_CHILDREN, path), (GET_DATA, path))]
            pending.append((part, submit(client, ops)))
            sizes.sent(len(part))
            start += len(part)
        part, result = pending.pop(0)
        answers = get(result)
        sizes.answered(len(part), answers)
        for index, path in enumerate(part):
            yield path, answers[2 * index], answers[2 * index + 1]


class Sizes:
    """How many znodes the next request of a read may hold (the module doc's rules)."""

    def __init__(self, client):
        self.largest = 0  # the largest value seen by this read
        self.proven = 0  # the most znodes of a request of this level answered so far
        self.awaited = []  # znodes of each request sent and not answered
        self.extra = len(getattr(client, "chroot", "") or "")

    def guess(self):
        return max(self.largest, MIN_VALUE_GUESS)

    def more(self):
        """Whether another request may be sent before the oldest is answered: not before a first
        answer (nothing is known of the values yet), then while the guessed answers fit."""
        if not self.proven or self.proven * GROWTH < self._cap():
            return False  # still growing: the next size waits for the answer that allows it
        return sum(self.awaited) * self.guess() < IN_FLIGHT_BYTES

    def _cap(self):
        return max(1, min(MAX_OPS // 2, ANSWER_BYTES // self.guess()))

    def next_part(self, level, start):
        most = min(self._cap(), max(FIRST_ZNODES, self.proven * GROWTH))
        part, size = [], 0
        for path in level[start:start + most]:
            size += _OP_OVERHEAD + 2 * (len(path.encode("utf-8")) + self.extra)
            if part and size > REQUEST_BYTES:
                break
            part.append(path)
        return part

    def sent(self, count):
        self.awaited.append(count)

    def answered(self, count, answers):
        self.awaited.remove(count)
        self.proven = max(self.proven, count)
        for answer in answers[1::2]:
            if isinstance(answer, tuple):
                self.largest = max(self.largest, answer[1].dataLength)
