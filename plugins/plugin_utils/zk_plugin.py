# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller side of zkherd plugins (lookups, inventory): connection options from
get_option() -> a client, and user errors -> AnsibleError."""

from __future__ import annotations

import contextlib

from ansible.errors import AnsibleError

from ansible_collections.zkherd.ops.plugins.module_utils.common.connection import OPTION_NAMES, Settings, connected
from ansible_collections.zkherd.ops.plugins.module_utils.common.errors import UserError


def settings_from_plugin(plugin):
    """The options of the zkherd.ops.connection fragment, as the plugin resolved them
    (task keywords, then variables, then environment, then defaults)."""
    return Settings.from_options({name: plugin.get_option(name) for name in OPTION_NAMES})


@contextlib.contextmanager
def plugin_session(plugin):
    """One connected client for one run() of a plugin; user errors become AnsibleError."""
    try:
        with connected(settings_from_plugin(plugin)) as client:
            yield client
    except UserError as exc:
        raise AnsibleError("zkherd: %s" % exc.message) from None
