# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Ansible side of a zkherd module: the shared connection argument spec (documented by
the zkherd.ops.connection doc fragment), and one way to connect and to fail."""

from __future__ import annotations

import contextlib
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from .common.connection import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HOSTS,
    DEFAULT_SESSION_TIMEOUT,
    Settings,
    close_client,
    open_client,
)
from .common.errors import UserError

try:
    import kazoo  # noqa: F401  pylint: disable=unused-import

    KAZOO_IMPORT_ERROR = None
except ImportError:
    KAZOO_IMPORT_ERROR = traceback.format_exc()


def connection_argument_spec():
    """Options every zkherd module takes (common.connection.OPTION_NAMES), documented in the
    zkherd.ops.connection fragment."""
    return dict(
        hosts=dict(type="str", default=DEFAULT_HOSTS, fallback=(env_fallback, ["ZKHERD_HOSTS"])),
        session_timeout=dict(type="float", default=DEFAULT_SESSION_TIMEOUT),
        connect_timeout=dict(type="float", default=DEFAULT_CONNECT_TIMEOUT),
        auth=dict(type="str", no_log=True, aliases=["auth_credential"], fallback=(env_fallback, ["ZKHERD_AUTH"])),
        tls=dict(type="bool", default=False),
        tls_ca=dict(type="path", fallback=(env_fallback, ["ZKHERD_TLS_CA"])),
        tls_cert=dict(type="path", fallback=(env_fallback, ["ZKHERD_TLS_CERT"])),
        tls_key=dict(type="path", no_log=False, fallback=(env_fallback, ["ZKHERD_TLS_KEY"])),
        tls_check_hostname=dict(type="bool", default=True),
        tls_system_ca=dict(type="bool", default=False, fallback=(env_fallback, ["ZKHERD_TLS_SYSTEM_CA"])),
    )


# Suboptions of an `acl` list option (zkherd.ops.znode, zkherd.ops.znode_tree); parsed by common.acl.
ACL_OPTIONS = dict(
    scheme=dict(type="str", required=True, choices=["world", "ip", "digest", "auth"]),
    id=dict(type="str"),
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    perms=dict(type="raw", default="all"),
)


class ZkModule:
    """An AnsibleModule with the connection options, and a session() that turns every
    UserError into fail_json with the message and an error_kind."""

    def __init__(self, argument_spec, **kwargs):
        spec = connection_argument_spec()
        spec.update(argument_spec)
        self.module = AnsibleModule(argument_spec=spec, **kwargs)
        if KAZOO_IMPORT_ERROR:
            self.module.fail_json(msg=missing_required_lib("kazoo"), exception=KAZOO_IMPORT_ERROR)

    @property
    def params(self):
        return self.module.params

    def fail(self, exc, **result):
        """fail_json with the error; a failed task still says what it did: the error's `result`
        (set by a module that wrote before failing), and changed when the error says something
        was (or may have been) written (common.txn.ApplyError.written)."""
        did = dict(getattr(exc, "result", None) or {})
        if getattr(exc, "written", False):
            did.setdefault("changed", True)
        did.update(result)
        self.module.fail_json(msg=exc.message, error_kind=exc.kind, **did)

    @contextlib.contextmanager
    def session(self):
        """A connected kazoo client; a UserError inside the block fails the task cleanly."""
        try:
            client = open_client(Settings.from_options(self.params))
        except UserError as exc:
            self.fail(exc)
        try:
            yield client
        except UserError as exc:
            close_client(client)
            self.fail(exc)
        finally:
            close_client(client)

    def guard(self, func, *args, **kwargs):
        """Call pure logic that may raise a user error before any connection is made."""
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            self.fail(exc)
