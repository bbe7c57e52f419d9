#!/usr/bin/python
# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: znode
short_description: Create, update and delete a ZooKeeper znode, its value and its ACL
version_added: 0.1.0
description:
  - Makes one znode present with a value and an ACL, or absent (with its subtree if asked).
  - Idempotent. Values of type V(json) and V(yaml) compare structurally, so a different key order
    or layout of the same data is no change; they compare with their types, so V(true), V(1) and
    V(1.0) are three different values (storing V(true) over V(1) is a change). Binary values go
    through O(value_type=base64).
  - Writes are compare-and-set against the version read at the start of the task, so a concurrent
    change by someone else makes the task fail instead of being overwritten silently; O(version)
    pins the version the znode must have.
  - Missing parents are created in the same transaction as the znode (O(makepath)); a recursive delete
    runs as multi-op transactions that are undone if a later one fails, each also checking the
    version of O(path) (as M(zkherd.ops.znode_tree) does), so that it cannot interleave with
    another writer's transactions on the same tree.
  - A transaction whose reply is lost with the connection is read back once the connection is
    back, to find out whether ZooKeeper applied it, before anything is sent again or undone.
  - A value and an ACL cannot be changed in one transaction; if the value was written and the ACL
    change is then refused, the task fails with RV(changed=true) and says so. So does a znode
    made with an ACL that does not let these credentials read it back (a rerun of such a task
    fails with C(error_kind=auth), so give the credentials read permission in O(acl)).
  - A faster, idempotent replacement for C(community.general.znode), which keeps its O(path) alias
    O(name), its O(value) and O(state) options.
options:
  path:
    description:
      - Absolute path of the znode, relative to the chroot of O(hosts) if it has one.
    type: str
    required: true
    aliases: [name]
  state:
    description:
      - V(present) creates the znode or updates its value and ACL; V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  value:
    description:
      - The value the znode must hold. When omitted, an existing znode keeps its value and a new one is empty.
      - With O(value_type=raw) a string (numbers and booleans are written as text).
      - With O(value_type=json) or O(value_type=yaml) a dict, list or scalar, or a string holding JSON
        or YAML. A string is validated and stored as written; structured data is serialized with
        sorted keys.
      - To store JSON C(null), give the string V(null) with O(value_type=json); an omitted or null
        O(value) means "no value". An empty znode holds no document, so V(null) over it is a change.
      - With O(value_type=base64) the base64 encoding of the bytes to store.
    type: raw
  value_type:
    description:
      - How O(value) is encoded, how it is compared with the stored data, and how RV(value) is returned.
      - Data is untrusted input. YAML (in ZooKeeper or in O(value)) that expands, through aliases or
        merge keys, to more than 4,000,000 nodes and characters is not usable (a "billion laughs"
        of a few hundred bytes would need gigabytes). In O(value) it fails the task
        (C(error_kind=usage)); stored in the znode it counts as data that cannot be decoded.
    type: str
    choices: [raw, json, yaml, base64]
    default: raw
  makepath:
    description:
      - Create missing parent znodes (empty, with the same ACL) together with the znode, in one transaction.
      - When V(false), a missing parent is an error.
    type: bool
    default: true
  version:
    description:
      - Compare-and-set. When the task has to write (update or delete), the znode must currently
        have this data version, or the task fails with C(error_kind=version) and nothing is written.
        A znode that already is as asked is left alone without a check, so reruns stay idempotent.
        A missing znode with O(state=present) is then an error.
    type: int
  acl:
    description:
      - The exact ACL the znode must have. Omitted, a new znode is open to everyone
        (C(world:anyone), all permissions) and an existing znode keeps its ACL.
    type: list
    elements: dict
    suboptions:
      scheme:
        description:
          - V(world) (everyone), V(ip) (a client address or CIDR network), V(digest) (a user), or
            V(auth) - ZooKeeper's C(auth) scheme, the task's own credentials - which stands for the
            digest user of O(auth) (needed, else C(error_kind=usage)) and is compared and returned as
            that C(digest) entry, so reruns stay idempotent.
        type: str
        required: true
        choices: [world, ip, digest, auth]
      id:
        description:
          - For V(ip) the address or network. For V(digest) an already hashed id
            C(user:HASH), HASH being the base64 of the SHA-1 of C(user:password), instead of
            O(acl[].username) and O(acl[].password).
            For V(world) only C(anyone), the default.
        type: str
      username:
        description: For V(digest), the user name.
        type: str
      password:
        description: For V(digest), the password; hashed before it is sent, never logged.
        type: str
      perms:
        description:
          - Permissions, as a list of V(read), V(write), V(create), V(delete), V(admin), V(all)
            or a string of letters such as V(rwcda).
        type: raw
        default: all
  recursive:
    description:
      - With O(state=absent), delete the znode with all its descendants. Without it a znode that
        has children is not deleted and the task fails with C(error_kind=not_empty).
      - The subtree is read as one snapshot, read again when it changed meanwhile; one that keeps
        changing through 5 reads fails the task with C(error_kind=version), nothing deleted.
      - A subtree deleted in several transactions (more than 1,000 znodes or 1 MB) also sets the
        data of O(path) (unchanged) in every transaction but the last, to keep other writers out,
        so the credentials then need write permission on O(path) as well as delete permission.
    type: bool
    default: false
extends_documentation_fragment:
  - zkherd.ops.connection
  - zkherd.ops.connection.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - JSON and YAML data is shown laid out with sorted keys; other data as it is, with diff's line
        C(\ No newline at end of file) where it applies; binary and long values with their SHA-256.
      - A recursive delete lists the descendants it deletes.
seealso:
  - module: zkherd.ops.znode_info
  - module: zkherd.ops.znode_tree
  - plugin: zkherd.ops.znode
    plugin_type: lookup
author:
  - zkherd contributors (@zkherd)
"""

EXAMPLES = r"""
- name: Store a setting as text
  zkherd.ops.znode:
    hosts: zk1:2181,zk2:2181,zk3:2181
    path: /app/config/log_level
    value: info

- name: Store structured config; reruns compare the data, not the text
  zkherd.ops.znode:
    path: /app/config/db
    value_type: json
    value:
      host: db1.example.com
      port: 5432

- name: Change a value only if nobody changed it since version 4 (compare-and-set)
  zkherd.ops.znode:
    path: /app/leader_epoch
    value: "5"
    version: 4

- name: A znode only the deploy user can change, readable from the app network
  zkherd.ops.znode:
    path: /app/secrets
    value: "{{ app_secret }}"
    auth: "deploy:{{ deploy_password }}"
    acl:
      - scheme: digest
        username: deploy
        password: "{{ deploy_password }}"
        perms: all
      - scheme: ip
        id: 10.1.0.0/16
        perms: read

- name: Store a binary file
  zkherd.ops.znode:
    path: /app/keystore
    value_type: base64
    value: "{{ lookup('ansible.builtin.file', 'keystore.p12') | b64encode }}"

- name: Delete a subtree
  zkherd.ops.znode:
    path: /app/old
    state: absent
    recursive: true

- name: Connection options for every zkherd task of a play
  hosts: localhost
  module_defaults:
    group/zkherd.ops.zookeeper:
      hosts: zk1:2181,zk2:2181,zk3:2181/prod
  tasks:
    - zkherd.ops.znode:
        path: /feature_flags/new_ui
        value: "on"
"""

RETURN = r"""
path:
  description: The znode path.
  returned: always
  type: str
  sample: /app/config/db
exists:
  description: Whether the znode exists after the task (in check mode, would exist).
  returned: always
  type: bool
value:
  description:
    - The znode's value after the task, decoded as O(value_type); null when the znode is absent
      or its data cannot be decoded that way (including YAML that expands beyond the bound of
      O(value_type)).
  returned: always
  type: raw
  sample: {"host": "db1.example.com", "port": 5432}
stat:
  description:
    - The znode's stat after the task; null when it is absent, or after a create in check mode.
  returned: always
  type: dict
  contains:
    version:
      description: Data version, grows by one with every change of the data.
      type: int
    cversion:
      description: Child version.
      type: int
    aversion:
      description: ACL version.
      type: int
    czxid:
      description: Transaction id that created the znode.
      type: int
    mzxid:
      description: Transaction id of the last data change.
      type: int
    pzxid:
      description: Transaction id of the last change of the children.
      type: int
    ctime:
      description: Creation time, milliseconds since the epoch.
      type: int
    mtime:
      description: Last modification time, milliseconds since the epoch.
      type: int
    ephemeral_owner:
      description: Session id of the owner of an ephemeral znode, 0 for a persistent one.
      type: int
    data_length:
      description: Length of the data in bytes.
      type: int
    num_children:
      description: Number of children.
      type: int
acl:
  description: The ACL after the task.
  returned: when the znode exists
  type: list
  elements: dict
  sample: [{"scheme": "world", "id": "anyone", "perms": ["read", "write", "create", "delete", "admin"]}]
  contains:
    scheme:
      description: world, ip, digest, or another scheme the server knows.
      type: str
    id:
      description: The id within the scheme (for digest, user:hash).
      type: str
    perms:
      description: Permission names.
      type: list
      elements: str
created_parents:
  description: Parent znodes that were (or in check mode would be) created.
  returned: always
  type: list
  elements: str
deleted:
  description:
    - Znodes that were (or would be) deleted, deepest first. On a failed recursive delete, those
      that stay deleted.
  returned: always
  type: list
  elements: str
changed:
  description:
    - Whether anything was written; on failure too (a value written before the ACL change was
      refused, a znode created but not readable, transactions undone or maybe applied).
  returned: always
  type: bool
uncertain:
  description:
    - On a recursive delete that failed after a lost connection, the znodes of the transaction
      whose outcome could not be found out (all deleted, or none).
  returned: failure
  type: list
  elements: str
error_kind:
  description: On failure, the kind of error, see the notes.
  returned: failure
  type: str
  sample: version
"""

from ansible_collections.zkherd.ops.plugins.module_utils.common import acl as acls
from ansible_collections.zkherd.ops.plugins.module_utils.common import codec, outcome, paths, tree, txn, znodes
from ansible_collections.zkherd.ops.plugins.module_utils.common.connection import (
    ZkError,
    stat_dict,
    to_kazoo_acls,
    translate,
)
from ansible_collections.zkherd.ops.plugins.module_utils.common.errors import (
    AUTH,
    NO_NODE,
    USAGE,
)
from ansible_collections.zkherd.ops.plugins.module_utils.zk_module import ACL_OPTIONS, ZkModule


def diff_text(node, value_type, show_acl):
    if node is None:
        return ""
    data, triples = node[0], node[2]
    text = codec.diff_text(data, value_type)
    if show_acl:
        text += "".join("# acl %s:%s:%s\n" % (s, i, "".join(n[0] for n in acls.perm_names(p))) for s, i, p in triples)
    return text


def subtree_text(path, deleted):
    """What a recursive delete takes with the znode, for the diff."""
    return "".join("# descendant %s\n" % q for q in sorted(deleted) if q != path)


def ensure_present(module, client, path, desired, want_acl, before):
    p = module.params
    result = dict(created_parents=[], deleted=[])
    if before is None:
        if p["version"] not in (None, -1):
            raise ZkError("znode %s does not exist, so it cannot be at version %d" % (path, p["version"]), NO_NODE)
        try:
            parents = znodes.missing_parents(client, path, p["makepath"])
        except ZkError as exc:
            if exc.kind == NO_NODE:  # not an access denied or a lost connection while checking
                exc.message += " (set makepath=true to create it)"
            raise
        result["created_parents"] = parents
        result["changed"] = True
        if not module.check_mode:
            znodes.create(client, path, desired[0] if desired else b"",
                          parents, to_kazoo_acls(want_acl) if want_acl else None, p["connect_timeout"])
        return result
    data, stat, current_acl = before
    data_changes = desired is not None and not codec.same(data, desired[0], desired[1], p["value_type"])
    acl_changes = want_acl is not None and not acls.same(current_acl, want_acl)
    result["changed"] = data_changes or acl_changes
    if result["changed"]:
        znodes.check_version(path, p["version"], stat)  # only a write needs the pinned version: reruns stay ok
    if module.check_mode:
        return result
    if data_changes:
        znodes.set_value(client, path, desired[0], before, p["connect_timeout"])
    if acl_changes:
        set_acl(client, path, want_acl, stat.aversion, data_changes, result)
    return result


def set_acl(client, path, want_acl, aversion, data_written, result):
    """The second write of an update (an ACL cannot be part of a transaction): if it fails, the
    error still says that the value was written."""
    try:
        client.set_acls(path, to_kazoo_acls(want_acl), version=aversion)
    except Exception as exc:
        error = translate(exc, "set the ACL of", path)
        unknown = outcome.lost_connection(exc, client)
        if not (data_written or unknown):
            raise error from None
        acl_state = "it is not known whether its ACL was changed" if unknown else "its ACL was not changed"
        value_state = "the value of %s was written" % path if data_written else "the value of %s was left alone" % path
        failure = ZkError("%s, but %s: %s" % (value_state, acl_state, error.message), error.kind)
        failure.result = dict(result, changed=True)
        raise failure from None


def ensure_absent(module, client, path, before):
    p = module.params
    result = dict(created_parents=[], deleted=[], changed=False)
    if before is None:
        return result
    znodes.check_version(path, p["version"], before[1])
    nodes, doomed = znodes.subtree(client, path, before, p["recursive"], how="set recursive=true to delete")
    result.update(changed=True, deleted=doomed)
    if not module.check_mode:
        try:
            znodes.delete(client, path, before, nodes, doomed, p["connect_timeout"])
        except txn.ApplyError as exc:
            exc.result = dict(result, changed=exc.written, uncertain=[op.path for op in exc.uncertain],
                              deleted=[op.path for op in exc.done if op.kind == "delete"])
            raise
    return result


def read_back(client, path, before):
    """The znode after a write; if it cannot be read, the error still says what was written."""
    try:
        return znodes.read(client, path)
    except ZkError as exc:
        hint = ""
        if exc.kind == AUTH:
            hint = (" (the ACL of the znode does not let these credentials read it, so a rerun of this task "
                    "will fail the same way: give them read permission in acl)")
        failure = ZkError("%s was %s, but reading it back failed%s: %s"
                          % (path, "created" if before is None else "updated", hint, exc.message), exc.kind)
        failure.result = dict(changed=True, path=path, exists=True, value=None, stat=None)
        raise failure from None


def prepare(params):
    """Validate the input before connecting: (path, desired (bytes, structure) or None, ACL triples or None)."""
    path = paths.validate(params["path"])
    if path == "/" and params["state"] == "absent":
        raise ZkError("refusing to delete the root znode /", USAGE)
    desired = None
    if params["value"] is not None and params["state"] == "present":
        desired = codec.encode(params["value"], params["value_type"])
        tree.check_value_size(path, desired[0], "the value")
    want_acl = acls.parse(params["acl"], params["auth"]) if params["acl"] is not None else None
    return path, desired, want_acl


def predict(before, desired, want_acl):
    """The znode a check-mode run would leave behind with state=present."""
    data, stat, triples = before or (b"", None, acls.WORLD_ALL)
    return (desired[0] if desired else data, stat, want_acl if want_acl is not None else triples)


def run(module, client, path, desired, want_acl):
    p = module.params
    before = znodes.read(client, path)
    if p["state"] == "present":
        result = ensure_present(module, client, path, desired, want_acl, before)
    else:
        result = ensure_absent(module, client, path, before)

    if not result["changed"]:
        after = before
    elif module.check_mode:
        after = predict(before, desired, want_acl) if p["state"] == "present" else None
    else:
        after = read_back(client, path, before)
    result.update(path=path, exists=after is not None, value=None, stat=None)
    if after is not None:
        try:
            result["value"] = codec.decode(after[0], p["value_type"], "data of %s" % path)
        except codec.CodecError:
            pass  # documented: null when the data cannot be decoded as value_type
        result["stat"] = stat_dict(after[1]) if after[1] is not None else None
        result["acl"] = acls.report(after[2])
    if module._diff:
        show_acl = want_acl is not None
        before_text = diff_text(before, p["value_type"], show_acl) + subtree_text(path, result["deleted"])
        result["diff"] = dict(before_header=path, after_header=path, before=before_text,
                              after=diff_text(after, p["value_type"], show_acl))
    return result


def main():
    zm = ZkModule(
        argument_spec=dict(
            path=dict(type="str", required=True, aliases=["name"]),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            value=dict(type="raw"),
            value_type=dict(type="str", default="raw", choices=list(codec.VALUE_TYPES)),
            makepath=dict(type="bool", default=True),
            version=dict(type="int"),
            acl=dict(type="list", elements="dict", options=ACL_OPTIONS),
            recursive=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    path, desired, want_acl = zm.guard(prepare, zm.params)
    with zm.session() as client:
        result = run(zm.module, client, path, desired, want_acl)
    zm.module.exit_json(**result)


if __name__ == "__main__":
    main()
