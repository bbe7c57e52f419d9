#!/usr/bin/python
# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: znode_tree
short_description: Make a ZooKeeper subtree equal to a local directory or a nested dict
version_added: 0.1.0
description:
  - Loads a whole tree of znodes in one task, from a directory (a folder is a znode, a file is a
    znode holding the file's bytes) or from a nested dict given in the task.
  - Reads the current subtree with pipelined requests, as one consistent snapshot (read again if
    anything under O(path) changed while it was read), then applies only the differences as
    multi-op transactions, each kept under ZooKeeper's request size limit. If one transaction
    fails, those already committed are undone, so a failure leaves the tree as it was.
  - Concurrent writers. Every update and delete is compare-and-set against the version read, and
    every transaction also sets the data of O(path) (same data) with the data version read, so
    the root's data version grows by one per transaction. Two runs on one tree at the same time
    cannot interleave their transactions; one of them fails with C(error_kind=version) and the
    tree is wholly the other's. The one that fails changes nothing if it read the tree before the
    other's first transaction; if it had already committed some of its own (and the other run
    then wrote on top of them), they are not undone, so as not to overwrite the other run. This
    holds between C(znode_tree) runs and recursive deletes by M(zkherd.ops.znode); another
    program that changes a znode the task writes also makes it fail, one that changes a znode
    the task only read does not.
  - Permissions. Because every transaction sets the data of O(path), the credentials need write
    permission on O(path) itself (as well as create and delete where the task creates and deletes),
    also when the task only changes znodes below it. Without it the task fails with
    C(error_kind=auth) and changes nothing. Watchers of the data of O(path) see one change (with
    the same data) per transaction.
  - A tree that changes while it is read is read again, up to 5 times. A tree that keeps changing
    (a writer that never pauses, members that come and go all the time) makes the task fail with
    C(error_kind=version), nothing changed - retry the task (C(retries) and C(until)), at a quieter
    moment, or load a smaller subtree.
  - A lost connection during a transaction leaves it unknown whether ZooKeeper applied it. The
    module waits for the connection to come back (up to O(connect_timeout) seconds, in the same
    session), reads the transaction's znodes and so finds out - applied, it goes on; not applied,
    it sends it again. If it cannot tell, the task fails with C(error_kind=connect) and the
    transaction's znodes in RV(uncertain); nothing is undone then.
  - A failed task still reports what the tree holds; RV(created), RV(updated) and RV(deleted) list
    what stayed written, and RV(changed) is true whenever something was written, also when it was
    undone afterwards.
  - Ephemeral znodes (registrations, locks, farm members) belong to other sessions and are never
    updated or pruned; they are listed in RV(kept).
  - Replaces Enclosure and a loop of C(community.general.znode) tasks.
options:
  path:
    description:
      - The root znode of the tree; created with its missing parents when it does not exist.
    type: str
    required: true
    aliases: [name]
  src:
    description:
      - A directory on the host that runs the task (use C(delegate_to=localhost) for a directory
        next to the playbook). Every folder becomes a znode, every file a znode holding its bytes.
      - Names matching O(exclude) are skipped; symlinks are followed as long as they stay inside
        O(src), one that leads out of it fails the task.
      - Exactly one of O(src) and O(tree) is required.
    type: path
  tree:
    description:
      - A nested dict. A dict value is a folder znode; any other value is a leaf znode. Text is
        stored as UTF-8, null as empty data, numbers, booleans and lists as JSON.
    type: dict
  data_name:
    description:
      - The file name (with O(src)) or key (with O(tree)) inside a folder that holds the data of
        the folder's own znode. A folder without it is created empty, and an existing folder
        znode keeps its data.
    type: str
    default: .znode
  exclude:
    description:
      - Shell patterns of file and folder names under O(src) to leave out (O(data_name) is never
        excluded).
    type: list
    elements: str
    default: [".*"]
  prune:
    description:
      - Delete znodes below O(path) that are not in the source (except ephemeral znodes, and the
        folders that hold them).
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
    details: The diff lists the created, updated and deleted znodes with their data.
seealso:
  - module: zkherd.ops.znode
  - module: zkherd.ops.znode_info
author:
  - zkherd contributors (@zkherd)
"""

EXAMPLES = r"""
- name: Load the config directory next to the playbook into /app/config
  zkherd.ops.znode_tree:
    hosts: zk1:2181,zk2:2181,zk3:2181
    path: /app/config
    src: "{{ playbook_dir }}/files/app-config"
    prune: true
  delegate_to: localhost

- name: A tree given in the task
  zkherd.ops.znode_tree:
    path: /app/features
    tree:
      .znode: "feature flags, one znode each"
      new_ui: "on"
      beta:
        max_users: 100
        regions: [eu, us]
"""

RETURN = r"""
path:
  description: The root znode.
  returned: always
  type: str
  sample: /app/config
changed:
  description:
    - Whether anything was written. On failure too - true when the task wrote a transaction, even
      if it was undone then, or may have (RV(uncertain)).
  returned: always
  type: bool
created:
  description:
    - Znodes created (or to create in check mode), parents first.
    - On failure, the znodes this task created that still exist (those of undone transactions are
      not listed).
  returned: always
  type: list
  elements: str
  sample: [/app/config, /app/config/db]
updated:
  description: Znodes whose data changed (on failure, as for RV(created)).
  returned: always
  type: list
  elements: str
deleted:
  description: Znodes deleted by O(prune), deepest first (on failure, as for RV(created)).
  returned: always
  type: list
  elements: str
uncertain:
  description:
    - On failure after a lost connection, the znodes of the transaction whose outcome could not be
      found out; each was created, updated or deleted as the source asked, or left alone - all of
      them alike, since a transaction is applied whole or not at all.
  returned: failure
  type: list
  elements: str
kept:
  description:
    - Znodes the source would change but that were left alone, with the reason (ephemeral znodes
      of other sessions, and the folders that hold them).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/app/config/lock/x0000000001", "reason": "ephemeral znode owned by session 0x100"}]
transactions:
  description: Number of multi-op transactions committed (0 in check mode or when nothing changed).
  returned: always
  type: int
  sample: 2
error_kind:
  description:
    - On failure, the kind of error. V(version) when another writer changed the tree while the task
      read or wrote it (the message says whether the task changed nothing, or what it left);
      V(connect) when the connection was lost and the outcome of a transaction is unknown.
  returned: failure
  type: str
  sample: version
"""

from ansible_collections.zkherd.ops.plugins.module_utils.common import acl as acls
from ansible_collections.zkherd.ops.plugins.module_utils.common import codec, paths, tree, treeload, txn
from ansible_collections.zkherd.ops.plugins.module_utils.common.connection import to_kazoo_acls
from ansible_collections.zkherd.ops.plugins.module_utils.zk_module import ACL_OPTIONS, ZkModule


def prepare(params):
    """Validate everything and build the desired tree before connecting."""
    root = paths.validate(params["path"])
    if params["src"] is not None:
        desired = tree.desired_from_dir(params["src"], root, params["data_name"], params["exclude"])
    else:
        desired = tree.desired_from_dict(params["tree"], root, params["data_name"])
    want_acl = acls.parse(params["acl"], params["auth"]) if params["acl"] is not None else None
    return root, desired, want_acl


def diff_lines(entries):
    return "".join("%s: %s\n" % (path, codec.preview(data).replace("\n", "\\n")) for path, data in sorted(entries))


def done_lists(ops):
    """created/updated/deleted of the result from ops that were committed."""
    return dict(created=[op.path for op in ops if op.kind == "create"],
                updated=[op.path for op in ops if op.kind == "set"],
                deleted=[op.path for op in ops if op.kind == "delete"])


def run(module, client, root, desired, want_acl):
    current, plan = treeload.plan_load(client, root, desired, prune=module.params["prune"])
    result = dict(
        changed=plan.changed,
        path=root,
        created=[create[0] for create in plan.creates],
        updated=[u[0] for u in plan.updates],
        deleted=[d[0] for d in plan.deletes],
        kept=[dict(path=p, reason=r) for p, r in plan.kept],
        transactions=0,
    )
    if plan.changed and not module.check_mode:
        create_acl = to_kazoo_acls(want_acl) if want_acl else None
        try:
            result["transactions"] = treeload.apply_load(client, root, plan, current, create_acl,
                                                         module.params["connect_timeout"], doer="znode_tree")
        except txn.ApplyError as exc:
            # what the tree holds now: what stayed committed, and what may have been
            exc.result = dict(result, changed=exc.written, uncertain=[op.path for op in exc.uncertain],
                              **done_lists(exc.done))
            del exc.result["transactions"]
            raise
    if module._diff:
        result["diff"] = dict(
            before_header=root, after_header=root,
            before=diff_lines([u[:2] for u in plan.updates] + [d[:2] for d in plan.deletes]),
            after=diff_lines(list(plan.creates) + [(u[0], u[2]) for u in plan.updates]),
        )
    return result


def main():
    zm = ZkModule(
        argument_spec=dict(
            path=dict(type="str", required=True, aliases=["name"]),
            src=dict(type="path"),
            tree=dict(type="dict"),
            data_name=dict(type="str", default=tree.DEFAULT_DATA_NAME),
            exclude=dict(type="list", elements="str", default=list(tree.DEFAULT_EXCLUDE)),
            prune=dict(type="bool", default=False),
            acl=dict(type="list", elements="dict", options=ACL_OPTIONS),
        ),
        mutually_exclusive=[("src", "tree")],
        required_one_of=[("src", "tree")],
        supports_check_mode=True,
    )
    root, desired, want_acl = zm.guard(prepare, zm.params)
    with zm.session() as client:
        result = run(zm.module, client, root, desired, want_acl)
    zm.module.exit_json(**result)


if __name__ == "__main__":
    main()
