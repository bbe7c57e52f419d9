# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller side of zkherd plugins (lookups, inventory): connection options from
get_option() -> a client, and ZooKeeper errors -> AnsibleError."""

from __future__ import annotations

import contextlib

from ansible.errors import AnsibleError

from ansible_collections.zkherd.ops.plugins.module_utils.common.connection import (
    Settings,
    connected,
)
from ansible_collections.zkherd.ops.plugins.module_utils.zk_module import USER_ERRORS, connection_argument_spec


def settings_from_plugin(plugin):
    """The options of the zkherd.ops.connection fragment, as the plugin resolved them
    (task keywords, then variables, then environment, then defaults)."""
    return Settings.from_options({name: plugin.get_option(name) for name in connection_argument_spec()})


@contextlib.contextmanager
def plugin_session(plugin):
    """One connected client for one run() of a plugin; user errors become AnsibleError."""
    try:
        with connected(settings_from_plugin(plugin)) as client:
            yield client
    except USER_ERRORS as exc:
        raise AnsibleError("zkherd: %s" % getattr(exc, "message", exc)) from None
