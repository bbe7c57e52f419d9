# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: znode
short_description: Read the values or children of ZooKeeper znodes
version_added: 0.1.0
description:
  - Returns the value of each znode named in the terms, decoded as raw text, JSON, YAML or base64,
    or with O(children=true) the sorted names of its children.
  - All terms are read with one connection and pipelined requests, so hundreds of znodes cost
    about one round trip.
  - A missing znode is an error, unless O(default) is given, which is then returned for it.
options:
  _terms:
    description: Absolute znode paths.
    required: true
    type: list
    elements: str
  value_type:
    description:
      - How to decode the data. V(raw) is UTF-8 text, V(base64) any bytes; with V(json) and V(yaml)
        an empty znode is null. Data that does not decode is an error naming the znode.
      - YAML that expands, through aliases or merge keys, to more than 4,000,000 nodes and
        characters (a "billion laughs") is an error, not a value that exhausts the controller's memory.
    type: str
    choices: [raw, json, yaml, base64]
    default: raw
  children:
    description: Return the sorted child names of each znode instead of its value.
    type: bool
    default: false
  default:
    description:
      - Returned for a znode that does not exist, instead of failing.
    type: raw
extends_documentation_fragment:
  - zkherd.ops.connection
  - zkherd.ops.connection.env
  - zkherd.ops.connection.vars
seealso:
  - module: zkherd.ops.znode_info
  - module: zkherd.ops.znode
author:
  - zkherd contributors (@zkherd)
"""

EXAMPLES = r"""
- name: One value
  ansible.builtin.debug:
    msg: "log level is {{ lookup('zkherd.ops.znode', '/app/config/log_level', hosts='zk1:2181') }}"

- name: Several JSON values in one call (one connection), as a list
  ansible.builtin.set_fact:
    dbs: "{{ query('zkherd.ops.znode', '/app/db/primary', '/app/db/replica', value_type='json') }}"

- name: Optional setting with a default
  ansible.builtin.set_fact:
    pool_size: "{{ lookup('zkherd.ops.znode', '/app/config/pool_size', default='10') }}"

- name: Who is registered under a service?
  ansible.builtin.debug:
    msg: "{{ query('zkherd.ops.znode', '/services/myservice', children=true) | first }}"

- name: Connection settings from variables, e.g. in group_vars
  vars:
    zkherd_hosts: zk1:2181,zk2:2181,zk3:2181/prod
    zkherd_auth: "reader:{{ vault_zk_reader_password }}"
  ansible.builtin.debug:
    msg: "{{ lookup('zkherd.ops.znode', '/app/config/feature_x') }}"
"""

RETURN = r"""
_raw:
  description:
    - One entry per term, in order - the decoded value, or with O(children=true) the list of child names.
  type: list
  elements: raw
"""

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

from ansible_collections.zkherd.ops.plugins.module_utils.common import codec, paths
from ansible_collections.zkherd.ops.plugins.module_utils.common.connection import translate
from ansible_collections.zkherd.ops.plugins.plugin_utils.zk_plugin import plugin_session

_MISSING = object()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        value_type = self.get_option("value_type")
        children = self.get_option("children")
        default = kwargs.get("default", _MISSING)  # 'default: null' is a valid default
        try:
            znodes = [paths.validate(str(term)) for term in terms]
        except paths.PathError as exc:
            raise AnsibleError("zkherd.ops.znode: %s" % exc) from None

        with plugin_session(self) as client:  # connecting first also reports a missing kazoo
            from kazoo.exceptions import NoNodeError

            read = client.get_children_async if children else client.get_async
            pending = [(path, read(path)) for path in znodes]  # pipelined: one round trip for all
            values = []
            for path, result in pending:
                try:
                    answer = result.get()
                except NoNodeError:
                    if default is _MISSING:
                        raise AnsibleError("zkherd.ops.znode: znode %s does not exist "
                                           "(give default=... to use a value instead)" % path) from None
                    values.append(default)
                    continue
                except Exception as exc:
                    raise translate(exc, "read", path) from None
                values.append(sorted(answer) if children
                              else codec.decode(answer[0], value_type, "data of %s" % path))
        return values
