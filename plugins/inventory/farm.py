# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: farm
short_description: Farms in ZooKeeper as inventory groups, their members as hosts
version_added: 0.1.0
description:
  - Each farm of O(farms) becomes a group; each member of a farm (a znode holding a JSON object,
    as C(zkherd farm join) keeps it) becomes a host in that group. Each top-level field of the
    member becomes a host variable named O(vars_prefix) followed by the field (C(farm_enabled) for
    the field C(enabled)), and the whole member is C(zkherd_member_data).
  - Every host also gets C(zkherd_farm) (the farm path), C(zkherd_farms) (all the farms it is a
    member of), C(zkherd_member) (the member name) and C(zkherd_member_path), so tasks can change
    the member with M(zkherd.ops.farm). A host in several farms gets the C(zkherd_member) and
    C(zkherd_member_data) of the last one.
  - Farm data never steers Ansible - whoever can write a farm in ZooKeeper must not be able to run
    commands on the controller. A field is refused, with a warning that names the member and the
    field, when its variable name (after the prefix) starts with C(ansible_) (connection, become,
    interpreter... variables), is a name Ansible reserves (C(port), C(environment), C(vars)...) or
    sets itself (C(inventory_hostname), C(hostvars), C(groups)...), or starts with C(zkherd_). The
    field stays readable in C(zkherd_member_data). See O(trusted_vars) for the exception.
  - A member whose name (or O(hostname_field) value) is not a plain host name or IP address - an
    ssh option such as C(-oProxyCommand=...), spaces, quotes, shell characters - is left out with
    a warning.
  - Farm data says how to reach a host (C(ansible_host), O(trusted_vars)) only for a host that this
    source makes for one member. A host that an inventory source parsed before this one defines,
    or that members of different names claim, joins the farm's group with the C(farm_*) and
    C(zkherd_*) variables only, and keeps the connection its own source gave it (or its name); a
    warning says what was not set. A member naming C(localhost) (or C(127.0.0.1), C(::1)) that no
    other source defines is left out, so the implicit localhost stays the controller. Give farm
    sources after the others (in an inventory folder, names that sort last).
  - Names and values from farm data appear in warnings escaped (no terminal escape sequence or
    bidi override gets through) and cut after 100 characters.
  - Constructable - O(compose), O(groups) and O(keyed_groups) work on those variables.
  - The inventory file must be named C(zkherd_farm.yml) or end with C(.zkherd_farm.yml) (or C(.yaml)).
  - A member that is not a JSON object is left out with a warning; a farm that does not exist is an error.
  - Errors (ZooKeeper unreachable after O(connect_timeout), access denied, a farm that does not
    exist, a bad option) fail this inventory source with a message that says why. Ansible then
    warns and goes on without the source's hosts, unless C(inventory_unparsed_failed) (or
    E(ANSIBLE_INVENTORY_UNPARSED_FAILED)) makes a source that cannot be parsed fatal.
  - Member data is marked unsafe, so a field holding C({{ ... }}) is never templated.
  - With the inventory cache, what was read is kept per connection string (with its chroot), farms
    and user of O(auth); changing any of them reads ZooKeeper again.
options:
  plugin:
    description: Marks this file as one for this plugin.
    type: str
    required: true
    choices: [zkherd.ops.farm]
  farms:
    description:
      - Absolute paths of the farms. The group of a farm is O(group_prefix) followed by the last
        part of its path (V(/services/db) makes group C(db)), made safe for a group name.
    type: list
    elements: str
    required: true
  group_prefix:
    description: Put before the name of each farm's group.
    type: str
    default: ""
  vars_prefix:
    description:
      - Put before the name of each host variable made from a member field.
      - With V(""), fields become variables of their own name; refused names stay refused.
    type: str
    default: farm_
  trusted_vars:
    description:
      - Member fields of these exact names become host variables of the same name (without
        O(vars_prefix)), even names that are otherwise refused, such as V(ansible_host),
        V(ansible_port) or V(ansible_user). An C(ansible_host) must still be a host name or address.
      - They apply only to a host that this source makes for that member alone, never to a host of
        another inventory source or one that several members name.
      - Only for farms that no one can write who may not also run commands as you on the
        controller - a field such as C(ansible_ssh_common_args) can run any command.
      - C(zkherd_*) names and Ansible's magic variables can never be listed.
    type: list
    elements: str
    default: []
  hostname_field:
    description:
      - A dotted field whose value names the host, instead of the member name (by default the
        IPv4 address the member joined with). The member name then becomes C(ansible_host),
        unless an C(ansible_host) comes from the member through O(trusted_vars). Members without
        the field keep their name.
      - Only on a host that this source makes for that member alone. A value naming a host of
        another inventory source, or one that another member names too, never sets its
        C(ansible_host) (see the description).
    type: str
extends_documentation_fragment:
  - zkherd.ops.farm
  - zkherd.ops.connection
  - zkherd.ops.connection.env
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
seealso:
  - plugin: zkherd.ops.farm
    plugin_type: lookup
  - module: zkherd.ops.farm
author:
  - zkherd contributors (@zkherd)
"""

EXAMPLES = r"""
# inventory/prod.zkherd_farm.yml
plugin: zkherd.ops.farm
hosts: zk1:2181,zk2:2181,zk3:2181
farms:
  - /services/db
  - /services/web
hostname_field: hostname
compose:
  mysql_delay: farm_mysql.replication_delay | int
groups:
  lagging: (farm_mysql.replication_delay | default(0) | int) > 10
keyed_groups:
  - key: farm_enabled
    prefix: enabled
# ansible-inventory -i inventory/prod.zkherd_farm.yml --graph
#   @all:
#     |--@db:
#     |  |--db-01.example.com
#     |--@enabled_1:
#     ...
# Hosts get farm_hostname, farm_enabled, farm_mysql... and zkherd_member_data (the whole member).
# Add these to keep what was read for five minutes (ansible-inventory --flush-cache reads again):
#   cache: true
#   cache_plugin: ansible.builtin.jsonfile
#   cache_connection: /var/cache/ansible/zkherd
#   cache_timeout: 300

# Members that say how to reach them, from a farm only trusted writers can change (its ACL):
# plugin: zkherd.ops.farm
# farms: [/services/db]
# trusted_vars: [ansible_host, ansible_port]
"""

import hashlib
import json

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.zkherd.ops.plugins.module_utils.common import farm, paths
from ansible_collections.zkherd.ops.plugins.module_utils.common.errors import UserError
from ansible_collections.zkherd.ops.plugins.module_utils.shown import printable, shown, shown_repr
from ansible_collections.zkherd.ops.plugins.plugin_utils.farm_hostvars import (
    MEMBER_DATA_VAR,
    Claims,
    HostVarRules,
    host_name_problem,
)
from ansible_collections.zkherd.ops.plugins.plugin_utils.zk_plugin import (
    plugin_session,
    settings_from_plugin,
)


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "zkherd.ops.farm"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(
            ("zkherd_farm.yml", "zkherd_farm.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        try:
            farms = [paths.validate(str(f), what="farm path") for f in self.get_option("farms")]
            terms = farm.parse_filter(self.get_option("filter"))
            if self.get_option("hostname_field"):
                farm.check_field(self.get_option("hostname_field"))
            settings = settings_from_plugin(self)
            rules = HostVarRules(self.get_option("vars_prefix"), self.get_option("trusted_vars"))
        except UserError as exc:
            raise AnsibleParserError("zkherd.ops.farm: %s" % exc.message) from None
        except ValueError as exc:
            raise AnsibleParserError("zkherd.ops.farm: %s" % exc) from None

        claims = Claims(self.inventory.hosts)  # before this source adds any
        farm_data = self._cached_or_read(path, cache, settings, farms)
        chosen = [(farm_path, self._members(farm_path, farm_data[farm_path], terms)) for farm_path in farms]
        for _farm_path, members in chosen:
            for name, _data, host in members:
                claims.add(host, name)
        for farm_path, members in chosen:
            self._populate(farm_path, members, rules, claims)

    def _warn(self, message):
        self.display.warning(printable(message))

    def _cached_or_read(self, path, cache, settings, farms):
        """{farm path: {member name: data}}: from the cache if it has this source's cluster and
        farms (the key says which), else read from ZooKeeper (and cached, with the cache on)."""
        user = settings.auth.split(":", 1)[0] if settings.auth else ""
        source = json.dumps([settings.hosts, sorted(set(farms)), user])
        cache_key = "%s_%s" % (self.get_cache_key(path), hashlib.sha256(source.encode("utf-8")).hexdigest()[:16])
        if self.get_option("cache") and cache:
            try:
                cached = self._cache[cache_key]
            except KeyError:
                cached = None
            if isinstance(cached, dict) and all(isinstance(cached.get(f), dict) for f in farms):
                return cached
        farm_data = self._read_farms(farms)
        if self.get_option("cache"):
            self._cache[cache_key] = farm_data
        return farm_data

    def _read_farms(self, farms):
        """{farm path: {member name: data}}, plain JSON for the cache."""
        found = {}
        with plugin_session(self) as client:
            for farm_path in farms:
                members, problems = farm.read_members(client, farm_path)
                for problem in problems:
                    self._warn("zkherd.ops.farm: skipping %s" % problem)
                found[farm_path] = members
        return found

    def _host_name(self, name, data):
        """(host, None), or (None, why the member cannot be a host)."""
        host = name
        if self.get_option("hostname_field"):
            try:
                host = farm.text(farm.get_field(data, self.get_option("hostname_field")))
            except KeyError:
                pass
        problem = host_name_problem(host) or host_name_problem(name)
        return (None, problem) if problem else (host, None)

    def _members(self, farm_path, members, terms):
        """[(member name, data, host name)] of the members that pass the filter and name a host."""
        chosen = []
        for name, data in members.items():
            if not farm.matches(data, terms):
                continue
            host, problem = self._host_name(name, data)
            if problem:
                self._warn("%s: %s; the member is left out of the inventory" % (_where(farm_path, name), problem))
                continue
            chosen.append((name, data, host))
        return chosen

    def _populate(self, farm_path, members, rules, claims):
        group = self.inventory.add_group(self._sanitize_group_name(
            self.get_option("group_prefix") + farm_path.rstrip("/").rsplit("/", 1)[-1]))
        strict = self.get_option("strict")
        for name, data, host in members:
            where = _where(farm_path, name)
            problem = claims.left_out(host)
            if problem:
                self._warn("%s: %s" % (where, problem))
                continue
            variables, problems = rules.variables(data)
            for problem in problems:
                self._warn("%s: %s" % (where, problem))
            connection = {key: value for key, value in variables.items() if key in rules.trusted}
            if host != name and "ansible_host" not in connection:
                connection["ansible_host"] = name
            not_owned = claims.not_owned(host) if connection else None
            if not_owned:
                self._warn("%s: %s, so farm data does not say how Ansible reaches it: %s from this member %s not "
                           "set; the host joins group %s with the member's other variables" % (
                               where, not_owned, ", ".join("%s=%s" % (k, shown_repr(v)) for k, v in connection.items()),
                               "is" if len(connection) == 1 else "are", group))
                variables = {key: value for key, value in variables.items() if key not in connection}
            else:
                variables.update(connection)
            host = self.inventory.add_host(host, group=group)
            # Data from ZooKeeper is never templated: a member holding "{{ ... }}" stays text.
            for key, value in variables.items():
                self.inventory.set_variable(host, key, wrap_var(value))
            hostvars = self.inventory.get_host(host).get_vars()
            farms = list(hostvars.get("zkherd_farms", [])) + [farm_path]
            for key, value in (("zkherd_farm", farm_path), ("zkherd_farms", farms), ("zkherd_member", wrap_var(name)),
                               ("zkherd_member_path", paths.join(farm_path, name)),
                               (MEMBER_DATA_VAR, wrap_var(data))):
                self.inventory.set_variable(host, key, value)
            hostvars = self.inventory.get_host(host).get_vars()
            try:
                self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
                self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
                self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)
            except Exception as exc:  # only reached with strict: the expression's own error
                raise AnsibleError("zkherd.ops.farm: host %s: %s" % (host, exc)) from None


def _where(farm_path, name):
    return "zkherd.ops.farm: member %s" % paths.join(farm_path, shown(name))
