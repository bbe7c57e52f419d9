#!/usr/bin/python
# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: znode_info
short_description: Read a ZooKeeper znode, its children or a whole subtree
version_added: 0.1.0
description:
  - Returns one znode's value (decoded as asked), stat and ACL, optionally the names of its
    children, or every znode of its subtree with value and stat.
  - A subtree is read level by level with pipelined requests, a few round trips for thousands of znodes.
  - A missing znode is not an error, RV(exists) says so.
options:
  path:
    description:
      - Absolute path of the znode, relative to the chroot of O(hosts) if it has one.
    type: str
    required: true
    aliases: [name]
  value_type:
    description:
      - How to decode the data into RV(value). V(raw) is UTF-8 text, V(base64) any bytes.
        Data that does not decode is an error (C(error_kind=usage)) naming the znode.
      - With V(json) and V(yaml), an empty znode decodes to null.
      - YAML that expands, through aliases or merge keys, to more than 4,000,000 nodes and
        characters (a "billion laughs") does not decode. It is an error naming the znode, instead
        of gigabytes of task result.
    type: str
    choices: [raw, json, yaml, base64]
    default: raw
  children:
    description:
      - Also return the names of the znode's children in RV(children).
    type: bool
    default: false
  recursive:
    description:
      - Also return every znode below O(path) in RV(tree), as one snapshot - the subtree is read
        again when it changed while it was read.
      - A subtree that keeps changing through 5 reads (a writer that never pauses) fails the task
        with C(error_kind=version); retry it (C(retries) and C(until)) or read a smaller subtree.
    type: bool
    default: false
  acl:
    description:
      - Also read the znode's ACL into RV(acl).
    type: bool
    default: true
extends_documentation_fragment:
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
  - module: zkherd.ops.znode
  - plugin: zkherd.ops.znode
    plugin_type: lookup
author:
  - zkherd contributors (@zkherd)
"""

EXAMPLES = r"""
- name: Read a JSON config znode
  zkherd.ops.znode_info:
    hosts: zk1:2181
    path: /app/config/db
    value_type: json
  register: db

- name: Use it
  ansible.builtin.debug:
    msg: "database at {{ db.value.host }}, version {{ db.stat.version }}"
  when: db.exists

- name: Who is registered for discovery?
  zkherd.ops.znode_info:
    path: /services/myservice
    children: true
  register: registered

- name: Dump a config tree
  zkherd.ops.znode_info:
    path: /app/config
    recursive: true
  register: config
"""

RETURN = r"""
path:
  description: The znode path.
  returned: always
  type: str
  sample: /app/config/db
exists:
  description: Whether the znode exists.
  returned: always
  type: bool
value:
  description: The znode's data decoded as O(value_type); null when the znode does not exist.
  returned: always
  type: raw
  sample: {"host": "db1.example.com", "port": 5432}
stat:
  description: The znode's stat, as documented for M(zkherd.ops.znode); null when it does not exist.
  returned: always
  type: dict
  sample: {"version": 3, "cversion": 0, "aversion": 0, "czxid": 4, "mzxid": 9, "pzxid": 4,
           "ctime": 1795240518969, "mtime": 1795240529100, "ephemeral_owner": 0,
           "data_length": 42, "num_children": 0}
acl:
  description: The znode's ACL entries, each with scheme, id and perms (names).
  returned: when O(acl=true) and the znode exists
  type: list
  elements: dict
  sample: [{"scheme": "world", "id": "anyone", "perms": ["read", "write", "create", "delete", "admin"]}]
children:
  description: Names of the children, sorted.
  returned: when O(children=true) or O(recursive=true), and the znode exists
  type: list
  elements: str
  sample: [member0000000001, member0000000002]
tree:
  description:
    - Every znode below O(path) (not O(path) itself), by absolute path, each with its
      decoded C(value) and its C(stat).
  returned: when O(recursive=true) and the znode exists
  type: dict
  sample: {"/app/config/db": {"value": "db1", "stat": {"version": 0}}}
error_kind:
  description: On failure, the kind of error.
  returned: failure
  type: str
  sample: connect
"""

from ansible_collections.zkherd.ops.plugins.module_utils.common import acl as acls
from ansible_collections.zkherd.ops.plugins.module_utils.common import codec, paths, tree
from ansible_collections.zkherd.ops.plugins.module_utils.common.connection import (
    from_kazoo_acls,
    stat_dict,
    translate,
)
from ansible_collections.zkherd.ops.plugins.module_utils.zk_module import ZkModule


def run(params, client, path):
    from kazoo.exceptions import NoNodeError

    value_type = params["value_type"]
    result = dict(changed=False, path=path, exists=False, value=None, stat=None)
    if params["recursive"]:
        nodes = tree.read_tree(client, path)
        root = nodes.get(path)
    else:
        nodes = {}
        try:
            data, stat = client.get(path)
            children = sorted(client.get_children(path)) if params["children"] else []
            root = tree.Node(path, data, stat, children)
        except NoNodeError:
            root = None
        except Exception as exc:
            raise translate(exc, "read", path) from None
    if root is None:
        return result
    result.update(exists=True, stat=stat_dict(root.stat),
                  value=codec.decode(root.data, value_type, "data of %s" % path))
    if params["acl"]:
        try:
            result["acl"] = acls.report(from_kazoo_acls(client.get_acls(path)[0]))
        except Exception as exc:
            raise translate(exc, "read the ACL of", path) from None
    if params["children"] or params["recursive"]:
        result["children"] = root.children
    if params["recursive"]:
        result["tree"] = {
            p: dict(value=codec.decode(node.data, value_type, "data of %s" % p), stat=stat_dict(node.stat))
            for p, node in sorted(nodes.items()) if p != path
        }
    return result


def main():
    zm = ZkModule(
        argument_spec=dict(
            path=dict(type="str", required=True, aliases=["name"]),
            value_type=dict(type="str", default="raw", choices=list(codec.VALUE_TYPES)),
            children=dict(type="bool", default=False),
            recursive=dict(type="bool", default=False),
            acl=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    path = zm.guard(paths.validate, zm.params["path"])
    with zm.session() as client:
        result = run(zm.params, client, path)
    zm.module.exit_json(**result)


if __name__ == "__main__":
    main()
