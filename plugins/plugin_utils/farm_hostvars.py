# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What farm data may become in an inventory (plugin zkherd.ops.farm): host names and host variables.

Farm members are written by whoever may write the farm in ZooKeeper; the inventory runs as the
operator. So a member never chooses how Ansible connects or behaves: no ansible_* variable (ssh
options, connection, become, interpreter...), no name Ansible reserves or sets itself, none of the
plugin's own zkherd_* variables, and host names that are names or addresses, not ssh options.
Nor does a member choose how Ansible reaches a host that the farm does not alone define: see
Claims. Names from farm data reach warnings only through module_utils/shown.py.
"""

from __future__ import annotations

import functools
import ipaddress
import re

from ansible import constants as C
from ansible.utils.vars import isidentifier
from ansible.vars.reserved import get_reserved_names

from ansible_collections.zkherd.ops.plugins.module_utils.shown import shown, shown_repr

# Variables Ansible defines itself (besides ansible_* and the reserved play keywords).
MAGIC_VARIABLES = frozenset((
    "environment", "group_names", "groups", "hostvars", "inventory_dir", "inventory_file", "inventory_hostname",
    "inventory_hostname_short", "item", "omit", "play_hosts", "playbook_dir", "role_name", "role_names",
    "role_path", "role_uuid", "vars",
))
OWN_PREFIX = "zkherd_"  # zkherd_farm, zkherd_member, zkherd_member_data... set by the plugin only
MEMBER_DATA_VAR = "zkherd_member_data"
# Ansible's names of the controller: with none of them in the inventory, `hosts: localhost` and
# `delegate_to: localhost` use the implicit localhost (a local connection).
CONTROLLER_NAMES = frozenset(C.LOCALHOST)

# A DNS name (underscores tolerated) that cannot be read as an option: no leading '-' or '.'.
_HOST_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$")


def host_name_problem(name):
    """None if *name* is a plain host name or IP address, else why not."""
    if not isinstance(name, str):
        return "%s is not a host name (not text)" % shown_repr(name)
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        pass
    if _HOST_NAME.match(name):
        return None
    return "%s is not a host name or address (letters, digits, '.', '-' and '_', not starting with '-' or '.')" % (
        shown_repr(name))


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
            readable = "it stays readable as %s[%s]" % (MEMBER_DATA_VAR, shown_repr(field))
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
            which = "field %s" % shown(field)
            if name != field:
                which += " (variable %s)" % shown(name)
            advice = ("; list %s in trusted_vars only if whoever can write this farm may also run commands as you"
                      % shown(field)) if can_trust else ""
            problems.append("%s refused: %s %s; %s%s" % (which, shown(name), reason, readable, advice))
        return found, problems


class Claims:
    """Which hosts a member may say how to reach (ansible_host, trusted_vars): only a host that this
    inventory source makes, for one member. A host that another source parsed before defines, or
    that members of different names claim, keeps the connection its own source gave it (or its
    name), whatever order the farm lists them in; the controller's own names are never made."""

    MAX_LISTED = 5

    def __init__(self, existing_hosts):
        self.existing = frozenset(existing_hosts)
        self.members = {}

    def add(self, host, member):
        self.members.setdefault(host, set()).add(member)

    def left_out(self, host):
        """Why a member naming *host* must not become a host at all, or None."""
        if host in CONTROLLER_NAMES and host not in self.existing:
            return ("names %s, the controller itself: Ansible's implicit localhost is never replaced by farm data; "
                    "the member is left out of the inventory" % shown(host))
        return None

    def not_owned(self, host):
        """Why farm data must not set how Ansible reaches *host*, or None."""
        if host in self.existing:
            return "names %s, a host that another inventory source defines" % shown(host)
        names = sorted(self.members.get(host, ()))
        if len(names) > 1:
            listed = [shown(n) for n in names[:self.MAX_LISTED]]
            if len(names) > self.MAX_LISTED:
                listed.append("%d more" % (len(names) - self.MAX_LISTED))
            return "names %s, which members %s and %s %s name" % (
                shown(host), ", ".join(listed[:-1]), listed[-1], "both" if len(names) == 2 else "all")
        return None
