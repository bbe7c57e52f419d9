# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection settings -> a started KazooClient, and ZooKeeper errors -> clear messages.

The one place where modules, lookups, the inventory plugin and the runner turn their options
(hosts with chroot, session timeout, digest auth, TLS) into a client. No Ansible imports;
kazoo is imported lazily so that importing this file never fails where kazoo is missing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time

from . import paths
from . import tls as tls_module
from .errors import AUTH, CONNECT, EXISTS, NO_NODE, NOT_EMPTY, OTHER, USAGE, VERSION, UserError

DEFAULT_HOSTS = "127.0.0.1:2181"
DEFAULT_SESSION_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 10.0
# The longest wait between two attempts to reach ZooKeeper. kazoo's own default backs off up to an
# hour, so after a long outage a client came back up to an outage-length late (issue 13).
DEFAULT_RECONNECT_MAX_DELAY = 1.0
RECONNECT_JITTER = 0.2
# The first wait for a connection's handshakes (TCP, TLS, then ZooKeeper's Connect reply), as a share of
# the session timeout, at least HANDSHAKE_MIN_WAIT s. kazoo waits the whole session timeout (divided by
# the hosts for the reply): 10 s. A server that is starting can take a connection and never answer it
# (ZooKeeper 3.8.0: "ZooKeeperServer not running", then an exception before the close), and a session
# the server restored expired meanwhile. A working server answers in milliseconds; one that is slow (a
# session is a quorum write, with an fsync) is still reached: each wait that ran out doubles the next,
# up to kazoo's own (_HandshakeWait).
HANDSHAKE_WAIT_SHARE = 0.1
HANDSHAKE_MIN_WAIT = 1.0

# The connection options of every module, lookup and plugin (zkherd.ops.connection fragment).
OPTION_NAMES = ("hosts", "session_timeout", "connect_timeout", "auth", "tls", "tls_ca", "tls_cert", "tls_key",
                "tls_check_hostname", "tls_system_ca")


class ZkError(UserError):
    """A ZooKeeper failure, or bad connection settings."""

    kind = OTHER


class Settings:
    """Validated connection settings. Build with from_options()."""

    def __init__(self, hosts=DEFAULT_HOSTS, session_timeout=DEFAULT_SESSION_TIMEOUT,
                 connect_timeout=DEFAULT_CONNECT_TIMEOUT, auth=None, tls=False, tls_ca=None,
                 tls_cert=None, tls_key=None, tls_check_hostname=True, tls_system_ca=False, default_acl=None,
                 reconnect_max_delay=DEFAULT_RECONNECT_MAX_DELAY):
        self.hosts = hosts
        self.session_timeout = session_timeout
        self.connect_timeout = connect_timeout
        self.reconnect_max_delay = reconnect_max_delay
        self.auth = auth
        self.tls = tls
        self.tls_ca = tls_ca
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.tls_check_hostname = tls_check_hostname
        # The server certificate must be signed by tls_ca; by a CA of the system store only if
        # this is set (common.tls: kazoo alone would always trust the system store).
        self.tls_system_ca = tls_system_ca
        # ACL triples (common.acl) of every znode created without an explicit ACL (the runner's
        # --acl); None: ZooKeeper's open default. Applied by the client itself (make_client), so
        # no create call has to remember it.
        self.default_acl = default_acl

    def __repr__(self):  # never shows the credentials
        return "Settings(hosts=%r, tls=%r, auth=%s)" % (self.hosts, self.tls, "***" if self.auth else None)

    @classmethod
    def from_options(cls, options):
        """Options as modules, lookups and the runner name them; None means 'not given'."""
        def opt(name, default=None):
            value = options.get(name)
            return default if value is None or value == "" else value

        hosts = validate_hosts(opt("hosts", DEFAULT_HOSTS))
        session_timeout = _positive(opt("session_timeout", DEFAULT_SESSION_TIMEOUT), "session_timeout")
        connect_timeout = _positive(opt("connect_timeout", DEFAULT_CONNECT_TIMEOUT), "connect_timeout")
        reconnect_max_delay = _positive(opt("reconnect_max_delay", DEFAULT_RECONNECT_MAX_DELAY), "reconnect_max_delay")
        auth = opt("auth")
        if auth is not None:
            auth = str(auth)
            user = auth.split(":", 1)[0]
            if ":" not in auth or not user:
                raise ZkError("auth must be 'user:password' for the digest scheme", USAGE)
            try:
                auth.encode("utf-8")  # else kazoo's connection thread dies on it, the session unauthenticated
            except UnicodeEncodeError:
                raise ZkError("auth must be UTF-8 text", USAGE) from None
        tls_files = {name: opt(name) for name in ("tls_ca", "tls_cert", "tls_key")}
        tls_files = {name: None if path is None else str(path) for name, path in tls_files.items()}  # never an fd
        for name, path in tls_files.items():
            if path is not None and not os.path.isfile(path):
                raise ZkError("%s %r: no such file" % (name, path), USAGE)
        if bool(tls_files["tls_cert"]) != bool(tls_files["tls_key"]):
            raise ZkError("tls_cert and tls_key go together: give both or neither", USAGE)
        tls_system_ca = bool(opt("tls_system_ca", False))
        tls = bool(opt("tls", False)) or tls_system_ca or any(tls_files.values())
        if tls and not (tls_files["tls_ca"] or tls_system_ca):
            raise ZkError("TLS needs the CA that signs the server's certificate: give tls_ca (--tls-ca), or "
                          "tls_system_ca (--tls-system-ca) to trust the system's CA store", USAGE)
        settings = cls(hosts=hosts, session_timeout=session_timeout, connect_timeout=connect_timeout,
                       auth=auth, tls=tls, tls_check_hostname=bool(opt("tls_check_hostname", True)),
                       tls_system_ca=tls_system_ca, reconnect_max_delay=reconnect_max_delay, **tls_files)
        problem = tls and tls_module.file_problem(settings)
        if problem:
            raise ZkError(problem, USAGE)
        return settings


def _positive(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ZkError("%s must be a number of seconds, got %r" % (name, value), USAGE) from None
    if not 0 < value < float("inf"):  # NaN and infinity too
        raise ZkError("%s must be positive, got %r" % (name, value), USAGE)
    return value


def validate_hosts(hosts):
    """'h1:2181,h2:2181/chroot' (or a list of host:port) -> the kazoo connection string."""
    if isinstance(hosts, (list, tuple)):
        hosts = ",".join(str(h).strip() for h in hosts)
    hosts = str(hosts).strip()
    servers, slash, chroot = hosts.partition("/")
    if slash:
        try:
            paths.validate(slash + chroot, what="chroot")
        except paths.PathError as exc:
            raise ZkError(str(exc), USAGE) from None
    if not servers or any(not s.strip() for s in servers.split(",")):
        raise ZkError("hosts %r: expected host:port[,host:port...][/chroot]" % hosts, USAGE)
    for server in servers.split(","):
        host, colon, port = server.strip().rpartition(":")
        if colon and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):  # not '²' or '١'
            raise ZkError("hosts %r: bad port in %r" % (hosts, server), USAGE)
    return hosts


class _LastMessage(logging.Handler):
    """Keeps kazoo's last specific warning while connecting, to say *why* a connection failed
    (refused, TLS verification, auth), not only that it did."""

    GENERIC = ("Transition to", "Failed connecting to Zookeeper within")

    def __init__(self):
        super().__init__(logging.WARNING)
        self.message = None

    def emit(self, record):
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message = "%s: %s" % (message, record.exc_info[1])
            elif message.startswith(self.GENERIC):
                return
            self.message = message
        except Exception:  # a log record must never break the connection
            pass


def make_client(settings, logger=None):
    """An unstarted KazooClient for these settings (digest auth is re-sent on every reconnect;
    settings.default_acl becomes the ACL of every znode it creates without one of its own)."""
    try:
        from kazoo.client import KazooClient
    except ImportError:
        raise ZkError("the Python library kazoo is required (pip install kazoo)", USAGE) from None
    if logger is None:
        logger = logging.getLogger("zkherd.kazoo")
        logger.propagate = False
        logger.addHandler(logging.NullHandler())
    kwargs = {}
    if settings.tls:
        kwargs = dict(use_ssl=True, handler=tls_module.PinnedTLSHandler(settings))  # our SSL context, not kazoo's
    if settings.default_acl:
        kwargs["default_acl"] = to_kazoo_acls(settings.default_acl)  # create, makepath, transactions
    client = KazooClient(hosts=settings.hosts, timeout=settings.session_timeout, logger=logger,
                         connection_retry=connection_retry(settings.reconnect_max_delay),
                         auth_data=[("digest", settings.auth)] if settings.auth else None, **kwargs)
    _HandshakeWait(client, max(HANDSHAKE_MIN_WAIT, settings.session_timeout * HANDSHAKE_WAIT_SHARE))
    return client


class _HandshakeWait:
    """Bounds kazoo's waits while it connects: the TCP connect and TLS handshake (its handler's
    create_connection) and the reply to the Connect request (ConnectionHandler._invoke without an xid:
    auth replies have one; it follows the create of the same address in kazoo's connection thread).
    Per address, each starts at *first* s and doubles after a wait of its own that ran out, up to
    kazoo's: only a server that keeps being slow gets longer waits, whatever the other hosts do. Any
    other end of that address's attempt - an answer, a refusal, a dropped connection (a server down,
    or starting) - puts its waits back at *first*."""

    def __init__(self, client, first):
        self.first, self.waits, self.address = first, {}, None
        connection, handler = getattr(client, "_connection", None), getattr(client, "handler", None)
        self.invoke = getattr(connection, "_invoke", None)
        self.create = getattr(handler, "create_connection", None)
        self.timeouts = (getattr(handler, "timeout_exception", TimeoutError), TimeoutError, socket.timeout)
        if self.invoke is None or self.create is None:  # a kazoo without them: its own waits
            return
        connection._invoke, handler.create_connection = self._invoke, self._create

    def _bounded(self, which, call, timeout):
        key = (self.address, which)
        wait = self.waits.get(key, self.first)
        try:
            answer = call(wait if timeout is None else min(timeout, wait))
        except self.timeouts:
            self.waits[key] = min(wait * 2, max(timeout or 0, self.first))
            raise
        except BaseException:
            self.waits.pop((self.address, "create"), None)
            self.waits.pop((self.address, "connect"), None)
            raise
        self.waits.pop(key, None)
        return answer

    def _create(self, *args, **kwargs):
        timeout = kwargs.pop("timeout", None)
        self.address = str(kwargs.get("address", args[0] if args else None))
        return self._bounded("create", lambda wait: self.create(*args, timeout=wait, **kwargs), timeout)

    def _invoke(self, timeout, request, *args, **kwargs):
        if (args[0] if args else kwargs.get("xid")) is not None:
            return self.invoke(timeout, request, *args, **kwargs)
        return self._bounded("connect", lambda wait: self.invoke(wait, request, *args, **kwargs), timeout)


def connection_retry(max_delay):
    """kazoo's connection retry: try forever, backing off from 0.1 s to at most *max_delay* s between
    attempts (jitter included: kazoo multiplies each delay by up to 1 + max_jitter)."""
    cap = max_delay / (1.0 + RECONNECT_JITTER)
    return dict(max_tries=-1, delay=min(0.1, cap), backoff=2, max_jitter=RECONNECT_JITTER, max_delay=cap)


def open_client(settings, logger=None, waiting=None):
    """Connect and return a started KazooClient; raises ZkError(CONNECT) with the reason.

    *waiting(reason, seconds_left)*, if given, is called about every 2 s while the server does
    not answer, so that a long-running program can say what it is waiting for.
    """
    client = make_client(settings, logger)
    last = _LastMessage()
    client.logger.addHandler(last)
    deadline = time.monotonic() + settings.connect_timeout
    try:
        started = client.start_async()
        while not started.wait(min(2.0, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                break
            if waiting:
                waiting(last.message, deadline - time.monotonic())
        if not client.connected:
            close_client(client)
            reason = (" (last error: %s)" % last.message) if last.message else ""
            raise ZkError("cannot connect to ZooKeeper at %s within %g s%s"
                          % (settings.hosts, settings.connect_timeout, reason), CONNECT)
    except ZkError:
        raise
    except BaseException:  # a signal's exception while waiting: no client left connecting behind
        close_client(client)
        raise
    finally:
        client.logger.removeHandler(last)
    return client


def close_client(client):
    with contextlib.suppress(Exception):
        client.stop()
    with contextlib.suppress(Exception):
        client.close()


@contextlib.contextmanager
def connected(settings, logger=None):
    client = open_client(settings, logger)
    try:
        yield client
    finally:
        close_client(client)


def translate(exc, action, path):
    """A kazoo exception -> ZkError with a message naming the action and the path."""
    from kazoo import exceptions as ke

    if isinstance(exc, ZkError):
        return exc
    where = "%s %s" % (action, path)
    table = (
        (ke.NoAuthError, AUTH, "access denied: not authorized to %s: the ACL of the znode (or of its parent) "
                               "does not allow it with these credentials (check the digest credentials given - "
                               "auth, --auth-file or ZKHERD_AUTH - and the znode's ACL)"),
        (ke.AuthFailedError, AUTH, "authentication failed while trying to %s"),
        (ke.NoNodeError, NO_NODE, "cannot %s: the znode or its parent does not exist"),
        (ke.NodeExistsError, EXISTS, "cannot %s: the znode already exists"),
        (ke.BadVersionError, VERSION, "cannot %s: its version changed (compare-and-set failed)"),
        (ke.NotEmptyError, NOT_EMPTY, "cannot %s: the znode has children"),
        (ke.NoChildrenForEphemeralsError, USAGE, "cannot %s: an ephemeral znode cannot have children"),
        (ke.BadArgumentsError, USAGE, "cannot %s: ZooKeeper refused the arguments"),
        (ke.InvalidACLError, USAGE, "cannot %s: ZooKeeper refused the ACL"),
        (ke.ConnectionLoss, CONNECT, "lost the connection to ZooKeeper while trying to %s "
                                     "(a request over the server's size limit also ends this way)"),
        (ke.SessionExpiredError, CONNECT, "the ZooKeeper session expired while trying to %s"),
    )
    for cls, kind, template in table:
        if isinstance(exc, cls):
            return ZkError(template % where, kind)
    return ZkError("cannot %s: %s: %s" % (where, type(exc).__name__, exc), OTHER)


def to_kazoo_acls(triples):
    from kazoo.security import ACL, Id

    return [ACL(perms, Id(scheme, ident)) for scheme, ident, perms in triples]


def from_kazoo_acls(acls):
    return sorted((a.id.scheme, a.id.id, a.perms) for a in acls)


STAT_FIELDS = (("version", "version"), ("cversion", "cversion"), ("aversion", "aversion"),
               ("czxid", "czxid"), ("mzxid", "mzxid"), ("pzxid", "pzxid"), ("ctime", "ctime"),
               ("mtime", "mtime"), ("ephemeralOwner", "ephemeral_owner"),
               ("dataLength", "data_length"), ("numChildren", "num_children"))


def stat_dict(stat):
    """A kazoo ZnodeStat -> the documented snake_case dict (times in ms since the epoch)."""
    return {name: getattr(stat, attr) for attr, name in STAT_FIELDS}
