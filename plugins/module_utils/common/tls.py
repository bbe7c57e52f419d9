# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLS to ZooKeeper that trusts exactly the CAs the user named.

Kazoo's own TLS (kazoo/handlers/utils.py: create_tcp_connection) always loads the system's CA
store next to the given CA, so a certificate from any CA installed on the host - or named by
SSL_CERT_FILE - passed even with tls_ca set. This handler builds the SSL context itself: the
tls_ca file only, plus the system store only with tls_system_ca. No Ansible imports.
"""

from __future__ import annotations

import errno
import socket
import ssl

try:
    from kazoo.handlers.threading import SequentialThreadingHandler
except ImportError:  # make_client says that kazoo is missing
    SequentialThreadingHandler = object


class _EncryptedKey(OSError):
    """An OSError, as a file that cannot be read is: kazoo's connection loop drops the attempt
    and tries again (a key renewed with a passphrase, then fixed, must not end the client)."""

    def __init__(self, key=None):
        super().__init__(errno.EACCES, "TLS key %s is encrypted: give a key without a passphrase" % (key or ""))


def _no_passphrase():
    raise _EncryptedKey()  # never let OpenSSL ask on the terminal


def make_context(settings):
    """The client SSL context of *settings*; ssl.SSLError/OSError for unusable files."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED; no CA loaded yet
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = bool(settings.tls_check_hostname)
    if settings.tls_system_ca:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if settings.tls_ca:
        context.load_verify_locations(cafile=settings.tls_ca)
    if settings.tls_cert:
        try:
            context.load_cert_chain(settings.tls_cert, settings.tls_key, password=_no_passphrase)
        except _EncryptedKey:
            raise _EncryptedKey(settings.tls_key or settings.tls_cert) from None
    return context


def file_problem(settings):
    """Load the TLS files once: None, or why they cannot be used (a usage error now, not a retry
    loop later)."""
    try:
        make_context(settings)
    except _EncryptedKey:
        return "tls_key %s is encrypted: give a key without a passphrase" % settings.tls_key
    except ssl.SSLError as exc:
        files = ", ".join("%s %s" % (name, getattr(settings, name)) for name in ("tls_ca", "tls_cert", "tls_key")
                          if getattr(settings, name))
        return "cannot use the TLS files (%s): %s" % (files or "the system's CA store", exc.reason or exc)
    except OSError as exc:
        return "cannot read a TLS file: %s: %s" % (exc.filename, exc.strerror)
    return None


class PinnedTLSHandler(SequentialThreadingHandler):
    """Kazoo's threading handler whose connections use our SSL context. Built anew for every
    connection, as kazoo does, so renewed certificate files are picked up on reconnect."""

    def __init__(self, settings):
        super().__init__()
        self.tls_settings = settings

    def create_connection(self, address, hostname=None, timeout=None, **_kazoo_tls_options):
        context = make_context(self.tls_settings)
        family = socket.getaddrinfo(address[0], address[1], 0, socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM | getattr(socket, "SOCK_CLOEXEC", 0))
        conn = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(timeout)
            conn = context.wrap_socket(sock, server_hostname=hostname or address[0])
            conn.connect(address)  # the handshake, verified against our context
            return conn
        except BaseException:
            (conn or sock).close()  # wrap_socket took over the descriptor
            raise
