# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: farm
short_description: Farms in ZooKeeper as inventory groups, their members as hosts
version_added: 0.1.0
description:
  - Each farm of O(farms) becomes a group; each member of a farm (a znode holding a JSON object,
    as C(zkherd farm join) keeps it) becomes a host in that group, with the member's top-level
    fields as host variables (prefixed with O(vars_prefix)).
  - Every host also gets C(zkherd_farm) (the farm path), C(zkherd_farms) (all the farms it is a
    member of), C(zkherd_member) (the member name) and C(zkherd_member_path), so tasks can change
    the member with M(zkherd.ops.farm).
  - Constructable - O(compose), O(groups) and O(keyed_groups) work on those variables.
  - The inventory file must be named C(zkherd_farm.yml) or end with C(.zkherd_farm.yml) (or C(.yaml)).
  - A member that is not a JSON object is left out with a warning; a farm that does not exist is an error.
  - Member data is marked unsafe, so a field holding C({{ ... }}) is never templated.
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
    description: Put before the name of each host variable made from a member field.
    type: str
    default: ""
  hostname_field:
    description:
      - A dotted field whose value names the host, instead of the member name (by default the
        IPv4 address the member joined with). The member name then becomes C(ansible_host),
        unless the member has an C(ansible_host) field. Members without the field keep their name.
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
  mysql_delay: mysql.replication_delay | int
groups:
  lagging: (mysql.replication_delay | default(0) | int) > 10
keyed_groups:
  - key: enabled
    prefix: enabled
# ansible-inventory -i inventory/prod.zkherd_farm.yml --graph
#   @all:
#     |--@db:
#     |  |--db-01.example.com
#     |--@enabled_1:
#     ...
# Add these to keep what was read for five minutes (ansible-inventory --flush-cache reads again):
#   cache: true
#   cache_plugin: ansible.builtin.jsonfile
#   cache_connection: /var/cache/ansible/zkherd
#   cache_timeout: 300
"""

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.zkherd.ops.plugins.module_utils.common import farm, paths
from ansible_collections.zkherd.ops.plugins.module_utils.common.errors import UserError
from ansible_collections.zkherd.ops.plugins.plugin_utils.zk_plugin import plugin_session


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
        except UserError as exc:
            raise AnsibleParserError("zkherd.ops.farm: %s" % exc.message) from None

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        farm_data = None
        if use_cache:
            try:
                farm_data = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if farm_data is None:
            farm_data = self._read_farms(farms)
        if update_cache:
            self._cache[cache_key] = farm_data
        for farm_path in farms:
            self._populate(farm_path, farm_data[farm_path], terms)

    def _read_farms(self, farms):
        """{farm path: {member name: data}}, plain JSON for the cache."""
        found = {}
        with plugin_session(self) as client:
            for farm_path in farms:
                members, problems = farm.read_members(client, farm_path)
                for problem in problems:
                    self.display.warning("zkherd.ops.farm: skipping %s" % problem)
                found[farm_path] = members
        return found

    def _populate(self, farm_path, members, terms):
        group = self.inventory.add_group(self._sanitize_group_name(
            self.get_option("group_prefix") + farm_path.rstrip("/").rsplit("/", 1)[-1]))
        prefix, hostname_field = self.get_option("vars_prefix"), self.get_option("hostname_field")
        strict = self.get_option("strict")
        for name, data in members.items():
            if not farm.matches(data, terms):
                continue
            host = name
            if hostname_field:
                try:
                    host = farm.text(farm.get_field(data, hostname_field))
                except KeyError:
                    pass
            host = self.inventory.add_host(host, group=group)
            # Data from ZooKeeper is never templated: a member holding "{{ ... }}" stays text.
            for key, value in data.items():
                self.inventory.set_variable(host, prefix + key, wrap_var(value))
            if host != name and "ansible_host" not in data:
                self.inventory.set_variable(host, "ansible_host", wrap_var(name))
            hostvars = self.inventory.get_host(host).get_vars()
            farms = list(hostvars.get("zkherd_farms", [])) + [farm_path]
            for key, value in (("zkherd_farm", farm_path), ("zkherd_farms", farms), ("zkherd_member", wrap_var(name)),
                               ("zkherd_member_path", paths.join(farm_path, name))):
                self.inventory.set_variable(host, key, value)
            hostvars = self.inventory.get_host(host).get_vars()
            try:
                self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
                self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
                self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)
            except Exception as exc:  # only reached with strict: the expression's own error
                raise AnsibleError("zkherd.ops.farm: host %s: %s" % (host, exc)) from None
