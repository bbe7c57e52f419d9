#!/usr/bin/python
# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: farm_info
short_description: List the members of a farm with their data (zkfarmer's ls)
version_added: 0.1.0
description:
  - Reads every member of the farm O(farm) (each child znode holding a JSON object, as
    C(zkherd farm join) keeps it) with pipelined requests, one round trip for the whole farm.
  - O(filter) keeps the members that match, with zkfarmer's filter expressions.
  - A member that is not a JSON object is not an error; it is named in RV(problems) and in a
    warning, and left out.
options:
  farm:
    description:
      - Absolute path of the farm (the parent znode of its members).
    type: str
    required: true
extends_documentation_fragment:
  - zkherd.ops.farm
  - zkherd.ops.connection
  - zkherd.ops.connection.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads only.
  diff_mode:
    support: none
seealso:
  - module: zkherd.ops.farm
  - plugin: zkherd.ops.farm
    plugin_type: lookup
  - plugin: zkherd.ops.farm
    plugin_type: inventory
author:
  - zkherd contributors (@zkherd)
"""

EXAMPLES = r"""
- name: The enabled databases with little replication delay
  zkherd.ops.farm_info:
    hosts: zk1:2181
    farm: /services/db
    filter: enabled=1,mysql.replication_delay<10
  register: db

- name: Show them
  ansible.builtin.debug:
    msg: "{{ item.key }} is {{ item.value.hostname }}"
  loop: "{{ db.members | dict2items }}"
"""

RETURN = r"""
farm:
  description: The farm path.
  returned: always
  type: str
  sample: /services/db
members:
  description: The members that match O(filter), by name, with their data.
  returned: success
  type: dict
  sample: {"1.2.3.4": {"hostname": "db-01.example.com", "enabled": "1", "mysql": {"replication_delay": "0"}}}
problems:
  description: Members left out because their data is not a JSON object.
  returned: success
  type: list
  elements: str
  sample: ["member /services/db/1.2.3.9 does not hold valid JSON: Expecting value: line 1 column 1 (char 0)"]
error_kind:
  description: On failure, the kind of error; a farm that does not exist is C(no_node).
  returned: failure
  type: str
  sample: no_node
"""

from ansible_collections.zkherd.ops.plugins.module_utils.common import farm, paths
from ansible_collections.zkherd.ops.plugins.module_utils.shown import printable
from ansible_collections.zkherd.ops.plugins.module_utils.zk_module import ZkModule


def main():
    zm = ZkModule(
        argument_spec=dict(
            farm=dict(type="str", required=True),
            filter=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    farm_path = zm.guard(paths.validate, zm.params["farm"], what="farm path")
    terms = zm.guard(farm.parse_filter, zm.params["filter"])
    with zm.session() as client:
        members, problems = farm.read_members(client, farm_path)
    for problem in problems:
        zm.module.warn(printable(problem))
    chosen = {name: doc for name, doc in members.items() if farm.matches(doc, terms)}
    zm.module.exit_json(changed=False, farm=farm_path, members=chosen, problems=problems)


if __name__ == "__main__":
    main()
