# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one base of every error whose message is written for the user.

Modules turn it into fail_json (with error_kind), plugins into AnsibleError, the runner into a
log line and an exit code chosen by kind. Shared by the plugins and the runner: no Ansible imports.
"""

from __future__ import annotations

# What went wrong, for programs: the runner maps kinds to exit codes, modules return error_kind.
CONNECT, AUTH, NO_NODE, EXISTS, VERSION, NOT_EMPTY, USAGE, OTHER = (
    "connect", "auth", "no_node", "exists", "version", "not_empty", "usage", "other")


class UserError(Exception):
    """A failure with a message meant for the user and a kind meant for programs."""

    kind = USAGE

    def __init__(self, message, kind=None):
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind
