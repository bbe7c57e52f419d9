#!/usr/bin/python
# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: farm
short_description: Set and unset fields of a farm member (zkfarmer's set and unset)
version_added: 0.1.0
description:
  - A farm member is the znode O(farm)/O(member) holding a JSON object, as C(zkherd farm join)
    keeps it (see C(docs/farm.md)). This module changes fields of that object by dotted path
    (C(mysql.replication_delay)), the way C(zkherd farm set) and C(zkherd farm unset) do; the
    host that joined the member sees the change in its local configuration.
  - Idempotent, with check mode and diff. The write is compare-and-set on the member's version;
    a write that raced another writer is read again and the change applied on top, at most 5
    times, then the task fails with C(error_kind=version) rather than overwrite someone silently.
  - Other fields, and the key order of the member, are kept.
  - To list the members of a farm use M(zkherd.ops.farm_info), the P(zkherd.ops.farm#lookup)
    lookup or the P(zkherd.ops.farm#inventory) inventory plugin.
options:
  farm:
    description:
      - Absolute path of the farm (the parent znode of its members).
    type: str
    required: true
  member:
    description:
      - Name of the member, by default the IPv4 address it joined with.
      - A valid znode name; an empty name is refused (C(error_kind=usage)) since it would be the farm itself.
    type: str
    required: true
  set:
    description:
      - Fields to set, by dotted path, with their values. Missing dicts on the way are made.
      - A path's names are taken one per level, and runs of them joined by C(.) where that leads nowhere,
        so V(nginx.conf) reaches the field of a DJB file C(nginx.conf) when no C(conf) is below C(nginx).
      - Values are stored as given and compared with their types. C(true), C(1), C(1.0) and C("1")
        are four values, so setting V(true) over C(1) is a change, and RV(member) is what
        ZooKeeper holds. Members joined from a DJB directory hold strings, so quote numbers
        (V("1")) to keep their type.
    type: dict
    default: {}
  unset:
    description:
      - Dotted paths of fields to remove. A field that is not there is no change.
    type: list
    elements: str
    default: []
  create:
    description:
      - Make the member (a persistent znode, with missing parents) when it does not exist,
        holding the fields of O(set), with the ACL O(acl). Without it, a missing member fails the
        task with C(error_kind=no_node), since members are normally the ephemeral znodes of a
        running join.
      - The member and its missing parents are made in one transaction; if the ACL does not let
        the member be made under a new parent, nothing is made.
    type: bool
    default: false
extends_documentation_fragment:
  - zkherd.ops.connection
  - zkherd.ops.connection.acl
  - zkherd.ops.connection.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The member's JSON before and after.
seealso:
  - module: zkherd.ops.farm_info
  - plugin: zkherd.ops.farm
    plugin_type: lookup
  - plugin: zkherd.ops.farm
    plugin_type: inventory
author:
  - zkherd contributors (@zkherd)
"""

EXAMPLES = r"""
- name: Take a database out of rotation (zkfarmer set /services/db/1.2.3.4 enabled 0)
  zkherd.ops.farm:
    hosts: zk1:2181,zk2:2181,zk3:2181
    farm: /services/db
    member: 1.2.3.4
    set:
      enabled: "0"
      maint.reason: kernel upgrade

- name: Put it back
  zkherd.ops.farm:
    farm: /services/db
    member: 1.2.3.4
    set:
      enabled: "1"
    unset: [maint]

- name: Every host of a farm from the zkherd.ops.farm inventory, from the controller
  zkherd.ops.farm:
    farm: "{{ zkherd_farm }}"
    member: "{{ zkherd_member }}"
    set:
      weight: "{{ weight | string }}"
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: The member's znode path.
  returned: always
  type: str
  sample: /services/db/1.2.3.4
member:
  description: The member's data after the task (in check mode, what it would be).
  returned: success
  type: dict
  sample: {"hostname": "db-01.example.com", "enabled": "1", "mysql": {"replication_delay": "0"}}
created:
  description: Whether the member was made (O(create=true)).
  returned: success
  type: bool
error_kind:
  description: On failure, the kind of error (connect, auth, no_node, version, usage, other).
  returned: failure
  type: str
  sample: version
"""

import json

from ansible_collections.zkherd.ops.plugins.module_utils.common import acl as acls
from ansible_collections.zkherd.ops.plugins.module_utils.common import codec, farm, paths
from ansible_collections.zkherd.ops.plugins.module_utils.common.connection import to_kazoo_acls
from ansible_collections.zkherd.ops.plugins.module_utils.common.errors import UserError
from ansible_collections.zkherd.ops.plugins.module_utils.zk_module import ACL_OPTIONS, ZkModule


def changes(params):
    """The change to apply to a member's dict, checked before any connection is made."""
    to_set, to_unset = params["set"], params["unset"]
    for dotted in list(to_set) + to_unset:
        farm.check_field(dotted)
    both = sorted(set(to_set) & set(to_unset))
    if both:
        raise UserError("fields both set and unset: %s" % ", ".join(both))

    def apply(doc):
        for dotted, value in to_set.items():
            doc = farm.set_field(doc, dotted, value)
        for dotted in to_unset:
            try:
                doc = farm.unset_field(doc, dotted)
            except KeyError:
                pass  # already gone: no change
        return doc

    return apply


def pretty(doc):
    return "" if doc is None else json.dumps(doc, indent=2) + "\n"


def main():
    zm = ZkModule(
        argument_spec=dict(
            farm=dict(type="str", required=True),
            member=dict(type="str", required=True),
            set=dict(type="dict", default={}),
            unset=dict(type="list", elements="str", default=[]),
            create=dict(type="bool", default=False),
            acl=dict(type="list", elements="dict", options=ACL_OPTIONS),
        ),
        supports_check_mode=True,
    )
    module, p = zm.module, zm.params
    farm_path = zm.guard(paths.validate, p["farm"], what="farm path")
    node = paths.join(farm_path, zm.guard(paths.validate_name, p["member"]))
    apply = zm.guard(changes, p)
    acl = to_kazoo_acls(zm.guard(acls.parse, p["acl"], p["auth"])) if p["acl"] else None
    with zm.session() as client:
        before, after = farm.update_member(client, node, apply, dry_run=module.check_mode, create=p["create"],
                                           acl=acl)
    result = dict(changed=not codec.equal(before, after), path=node, member=after, created=before is None)
    if module._diff and result["changed"]:
        result["diff"] = dict(before_header=node, after_header=node, before=pretty(before), after=pretty(after))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
