# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: farm
short_description: The members of farms with their data, for templates
version_added: 0.1.0
description:
  - Returns one entry per member of each farm named in the terms, in order of farm then member
    name, each with the farm path, the member name and its data (the JSON object that
    C(zkherd farm join) keeps in the member znode).
  - One connection for all farms; each farm costs two round trips however many members it has
    (the list, then every member read with pipelined requests).
  - A member that is not a JSON object is left out with a warning; a farm that does not exist is an error.
  - Use it with C(query()) (or C(lookup(..., wantlist=true))) to get a list.
options:
  _terms:
    description: Absolute paths of farms.
    required: true
    type: list
    elements: str
extends_documentation_fragment:
  - zkherd.ops.farm
  - zkherd.ops.connection
  - zkherd.ops.connection.env
  - zkherd.ops.connection.vars
seealso:
  - module: zkherd.ops.farm_info
  - module: zkherd.ops.farm
  - plugin: zkherd.ops.farm
    plugin_type: inventory
author:
  - zkherd contributors (@zkherd)
"""

EXAMPLES = r"""
# An haproxy backend from a farm, in a template: one line of Jinja2 per server.
#   backend web
#   {% for m in query('zkherd.ops.farm', '/services/web', filter='enabled=1') %}
#       server {{ m.data.hostname }} {{ m.name }}:{{ m.data.port | default(80) }} check
#   {% endfor %}

- name: Hostnames of the enabled databases of two farms
  ansible.builtin.debug:
    msg: "{{ query('zkherd.ops.farm', '/services/db', '/services/db-eu', filter='enabled=1')
             | map(attribute='data.hostname') | list }}"

- name: A farm as a dict, member name to data
  ansible.builtin.set_fact:
    db_members: "{{ query('zkherd.ops.farm', '/services/db') | items2dict(key_name='name', value_name='data') }}"
"""

RETURN = r"""
_raw:
  description: One entry per member that matches O(filter).
  type: list
  elements: dict
  contains:
    farm:
      description: The farm path, as given.
      type: str
      sample: /services/db
    name:
      description: The member name, by default the IPv4 address of the host that joined.
      type: str
      sample: 1.2.3.4
    data:
      description: The member's data.
      type: dict
      sample: {"hostname": "db-01.example.com", "enabled": "1", "mysql": {"replication_delay": "0"}}
"""

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.zkherd.ops.plugins.module_utils.common import farm, paths
from ansible_collections.zkherd.ops.plugins.module_utils.common.errors import UserError
from ansible_collections.zkherd.ops.plugins.module_utils.shown import printable
from ansible_collections.zkherd.ops.plugins.plugin_utils.zk_plugin import plugin_session

display = Display()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        try:
            farms = [paths.validate(str(term), what="farm path") for term in terms]
            filter_terms = farm.parse_filter(self.get_option("filter"))
        except UserError as exc:
            raise AnsibleError("zkherd.ops.farm: %s" % exc.message) from None

        entries = []
        with plugin_session(self) as client:
            for farm_path in farms:
                members, problems = farm.read_members(client, farm_path)
                for problem in problems:
                    display.warning(printable("zkherd.ops.farm: skipping %s" % problem))
                entries.extend(dict(farm=farm_path, name=name, data=doc)
                               for name, doc in members.items() if farm.matches(doc, filter_terms))
        return entries
