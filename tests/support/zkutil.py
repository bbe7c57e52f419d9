"""kazoo helpers for tests: polling, session expiry, znode bookkeeping."""

import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import KazooState
from kazoo.security import make_digest_acl_credential

T = TypeVar("T")

# Digest "user:password" of the superuser the conftest servers accept; a
# client with auth_data=[("digest", SUPER_CREDENTIAL)] bypasses all ACLs.
SUPER_CREDENTIAL = "super:zkherd-test"


def superuser_props(credential: str = SUPER_CREDENTIAL) -> dict[str, str]:
    """ZooKeeperServer jvm_props that make `credential` a superuser."""
    user, password = credential.split(":", 1)
    return {"zookeeper.DigestAuthenticationProvider.superDigest": make_digest_acl_credential(user, password)}


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | Callable[[], str] | None = None,
) -> T:
    """Poll predicate until it returns something truthy and return that. *message* (or a function
    that makes it, for messages that show the state at the time of failure) says what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            what = (message() if callable(message) else message) or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last result: {result!r})")
        time.sleep(interval)


class StateLog:
    """Records a kazoo client's state changes so short-lived states are not missed."""

    def __init__(self, client: KazooClient):
        self.states: list[str] = []
        self._cond = threading.Condition()
        self._client = client
        client.add_listener(self._record)

    def _record(self, state: str) -> None:
        with self._cond:
            self.states.append(state)
            self._cond.notify_all()

    def wait_for(self, state: str, timeout: float = 10.0) -> None:
        """Wait until `state` has been seen (since recording began or the last clear())."""
        with self._cond:
            if not self._cond.wait_for(lambda: state in self.states, timeout):
                raise AssertionError(f"client never became {state} within {timeout}s; saw {self.states}")

    def clear(self) -> None:
        with self._cond:
            self.states.clear()

    def close(self) -> None:
        self._client.remove_listener(self._record)


def expire_session(client: KazooClient, hosts: str | None = None, timeout: float = 10.0) -> None:
    """Make the server expire client's session and wait until client sees LOST.

    A second connection joins the same session (same id and password) and
    closes it, which ends the session on the server; the server also drops
    the first connection, whose reconnect is then answered with "expired".
    hosts: where the twin connects, default the client's own hosts (pass
    the real server when the client goes through a fault proxy).
    """
    session = client.client_id
    if session is None:
        raise ValueError("client has no session to expire")
    states = StateLog(client)
    try:
        twin = KazooClient(
            hosts=hosts or ",".join(f"{host}:{port}" for host, port in client.hosts),
            client_id=session,
            connection_retry={"max_tries": 0},
        )
        try:
            twin.start(timeout=timeout)
            twin.stop()
        finally:
            twin.close()
        states.wait_for(KazooState.LOST, timeout)
    finally:
        states.close()


def list_tree(client: KazooClient, path: str = "/") -> list[str]:
    """Sorted paths of all znodes below path (not path itself), minus /zookeeper."""
    found = []
    stack = [path]
    while stack:
        parent = stack.pop()
        try:
            children = client.get_children(parent)
        except NoNodeError:  # vanished meanwhile, e.g. an ephemeral node
            continue
        for name in children:
            child = f"{parent.rstrip('/')}/{name}"
            if child != "/zookeeper":
                found.append(child)
                stack.append(child)
    return sorted(found)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def leftover_znodes(
    client: KazooClient, before: Iterable[str], ignore: Iterable[str] = ()
) -> list[str]:
    """Znodes that exist now but not in `before` (a list_tree snapshot).

    Paths at or under any `ignore` prefix are left out.
    """
    known = set(before)
    ignore = list(ignore)
    return [
        path
        for path in list_tree(client)
        if path not in known and not any(_under(path, prefix) for prefix in ignore)
    ]


def remove_znodes(client: KazooClient, paths: Iterable[str]) -> None:
    """Delete paths recursively, topmost first; already-gone ones are fine."""
    for path in sorted(paths, key=lambda p: p.count("/")):
        client.delete(path, recursive=True)
