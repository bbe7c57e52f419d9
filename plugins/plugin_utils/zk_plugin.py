# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller side of zkherd plugins (lookups, inventory): connection options from
get_option() -> a client, and user errors -> AnsibleError."""

from __future__ import annotations

import contextlib
import os
import time

from ansible.errors import AnsibleError

from ansible_collections.zkherd.ops.plugins.module_utils.common.connection import (
    OPTION_NAMES,
    Settings,
    close_client,
    open_client,
)
from ansible_collections.zkherd.ops.plugins.module_utils.common.errors import CONNECT, UserError

# A connection that failed is remembered for the same servers and options, in this process only
# (Ansible runs each task of each host in a worker process of its own), for FAILURE_MEMORY seconds
# after the failure: three lookups in one template (or in one task's arguments) wait for
# connect_timeout once, not three times (issue 17), while a later try (the next task, a retry after
# a pause) connects again.
FAILURE_MEMORY = 1.0
_failed = {}  # key -> (time.monotonic() of the failure, message)

LOOKUP_HINT = ("module_defaults do not reach lookups (nor does a play's or task's environment: lookups "
               "run on the controller); give the lookup hosts=..., or set the variable zkherd_hosts "
               "(zkherd_auth, zkherd_tls_*...), or ZKHERD_HOSTS in the controller's environment")


def settings_from_plugin(plugin):
    """The options of the zkherd.ops.connection fragment, as the plugin resolved them
    (task keywords, then variables, then environment, then defaults)."""
    return Settings.from_options({name: plugin.get_option(name) for name in OPTION_NAMES})


def _failure_key(settings):
    return (os.getpid(), settings.hosts, settings.connect_timeout, settings.tls, settings.tls_ca,
            settings.tls_cert, settings.tls_key, settings.tls_check_hostname, settings.tls_system_ca)


def _hosts_is_default(plugin):
    try:
        value, origin = plugin.get_option_and_origin("hosts")
    except Exception:  # an ansible-core without origins, or a plugin that never set its options
        return False
    return origin == "default" or not value


def _connect(plugin, settings):
    """open_client(), failing at once for servers that failed to connect moments ago."""
    key = _failure_key(settings)
    now = time.monotonic()
    for old in [k for k, (when, _msg) in _failed.items() if now - when > FAILURE_MEMORY]:
        del _failed[old]
    if key in _failed:
        when, message = _failed[key]
        raise AnsibleError("zkherd: %s (failed %.1f s ago; not tried again within %g s)"
                           % (message, now - when, FAILURE_MEMORY))
    try:
        return open_client(settings)
    except UserError as exc:
        message = exc.message
        if getattr(exc, "kind", None) == CONNECT:
            if getattr(plugin, "plugin_type", None) == "lookup" and _hosts_is_default(plugin):
                message = "%s. %s is the default hosts: %s" % (message, settings.hosts, LOOKUP_HINT)
            _failed[key] = (time.monotonic(), message)
        raise AnsibleError("zkherd: %s" % message) from None


@contextlib.contextmanager
def plugin_session(plugin):
    """One connected client for one run() of a plugin; user errors become AnsibleError. A failure
    to connect is remembered (see FAILURE_MEMORY), so the next run() for the same servers fails at once."""
    try:
        client = _connect(plugin, settings_from_plugin(plugin))
    except UserError as exc:
        raise AnsibleError("zkherd: %s" % exc.message) from None
    try:
        yield client
    except UserError as exc:
        raise AnsibleError("zkherd: %s" % exc.message) from None
    finally:
        close_client(client)
