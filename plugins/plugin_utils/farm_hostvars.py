# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What farm data may become in an inventory (plugin zkherd.ops.farm): host names and host variables.

Farm members are written by whoever may write the farm in ZooKeeper; the inventory runs as the
operator. So a member never chooses how Ansible connects or behaves: no ansible_* variable (ssh
options, connection, become, interpreter...), no name Ansible reserves or sets itself, none of the
plugin's own zkherd_* variables, and host names that are names or addresses, not ssh options.
"""

from __future__ import annotations

import functools
import ipaddress
import re

from ansible.utils.vars import isidentifier
from ansible.vars.reserved import get_reserved_names

# Variables Ansible defines itself (besides ansible_* and the reserved play keywords).
MAGIC_VARIABLES = frozenset((
    "environment", "group_names", "groups", "hostvars", "inventory_dir", "inventory_file", "inventory_hostname",
    "inventory_hostname_short", "item", "omit", "play_hosts", "playbook_dir", "role_name", "role_names",
    "role_path", "role_uuid", "vars",
))
OWN_PREFIX = "zkherd_"  # zkherd_farm, zkherd_member, zkherd_member_data... set by the plugin only
MEMBER_DATA_VAR = "zkherd_member_data"

# A DNS name (underscores tolerated) that cannot be read as an option: no leading '-' or '.'.
_HOST_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$")


def host_name_problem(name):
    """None if *name* is a plain host name or IP address, else why not."""
    if not isinstance(name, str):
        return "%r is not a host name (not text)" % (name,)
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        pass
    if _HOST_NAME.match(name):
        return None
    return "%r is not a host name or address (letters, digits, '.', '-' and '_', not starting with '-' or '.')" % (
        name,)


def _refusal(name):
    """(why a variable called *name* may not come from farm data, whether trusted_vars may
    allow it), or (None, True)."""
    lowered = name.lower()
    if lowered.startswith("ansible_"):
        return "would set how Ansible connects or behaves", True
    if lowered.startswith(OWN_PREFIX):
        return "is a variable the plugin sets itself", False
    if name in MAGIC_VARIABLES:
        return "is one of Ansible's magic variables", False
    if name in _reserved():
        return "is a name Ansible reserves", True
    return None, True


@functools.cache
def _reserved():
    return frozenset(get_reserved_names())  # play keywords (port, become, vars...) and template globals


class HostVarRules:
    """Member fields -> host variables: FIELD becomes PREFIX+FIELD; a field named in *trusted*
    keeps its own name (the explicit opt-in), every other refused name is reported."""

    def __init__(self, prefix, trusted):
        self.prefix = prefix or ""
        self.trusted = frozenset(trusted or ())
        for name in sorted(self.trusted, key=str):
            if not isinstance(name, str) or not isidentifier(name):
                raise ValueError("trusted_vars: %r is not a variable name" % (name,))
            reason, can_trust = _refusal(name)
            if not can_trust:
                raise ValueError("trusted_vars: %s %s, it can never come from farm data" % (name, reason))

    def variables(self, data):
        """-> ({variable: value}, [problem...]) for one member's top-level fields."""
        found, problems = {}, []
        for field, value in data.items():
            readable = "it stays readable as %s[%r]" % (MEMBER_DATA_VAR, field)
            if field in self.trusted:
                reason = host_name_problem(value) if field == "ansible_host" else None
                if reason:
                    problems.append("field ansible_host refused: %s; %s" % (reason, readable))
                    continue
                found[field] = value
                continue
            name = self.prefix + field
            reason, can_trust = _refusal(name)
            if reason is None:
                found[name] = value
                continue
            shown = "field %s" % field if name == field else "field %s (variable %s)" % (field, name)
            advice = ("; list %s in trusted_vars only if whoever can write this farm may also run commands as you"
                      % field) if can_trust else ""
            problems.append("%s refused: %s %s; %s%s" % (shown, name, reason, readable, advice))
        return found, problems
