#!/usr/bin/python
# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: drain
short_description: Drain or undrain a zkherd runner (zkherd drain and zkherd undrain)
version_added: 0.1.0
description:
  - Planned maintenance from Ansible. V(drained) sets the drain flag of the runner started with
    C(--id) O(id) on the C(--lock) or C(--register) O(path), as C(zkherd drain) does; under a lock
    that runner stops its child, releases the lock at once (the next in line takes over) and stays
    out of the line; a registration leaves discovery while the child keeps running.
    V(undrained) removes the flag (C(zkherd undrain)); the runner queues (or registers) again.
  - With O(wait=true) a drain waits until the runner answered that it holds nothing at O(path),
    or the lock's line has other nodes but none of O(id); an undrain waits until the runner took
    its answer back. See C(docs/operations.md) "Planned maintenance".
  - Idempotent, with check mode and diff. Changed only when the flag was made or deleted; a make
    whose reply was lost and that finds the flag on the retry knows its own flag by a token in its data.
  - The flags live under C(/zkherd/drain) and C(/zkherd/drained) (C(docs/security.md) "Drain flags");
    the credentials need create and delete rights there. Whoever may create a flag takes runners out, so
    give O(acl) (only the operators may write, the runners read) the first time, when the folders are made.
  - To drain a member of a farm, set a field of it with M(zkherd.ops.farm) (for example
    C(drained) V(true)), or drain the runner of its C(--register) path with this module.
options:
  path:
    description:
      - The C(--lock) or C(--register) path of the runner (absolute).
    type: str
    required: true
  id:
    description:
      - The runner's C(--id).
    type: str
    required: true
  state:
    description:
      - V(drained) sets the flag, V(undrained) removes it.
    type: str
    choices: [drained, undrained]
    default: drained
  wait:
    description:
      - Wait until the runner holds nothing at O(path) (V(drained)) or took its answer back
        (V(undrained)). Without it the task returns once the flag is set or removed.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait (O(wait=true)). At the end the task fails with C(error_kind=timeout);
        a drain flag stays set (undrain it, or run the task again).
    type: float
    default: 60
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
    details: Whether the runner is drained, before and after.
seealso:
  - module: zkherd.ops.farm
author:
  - zkherd contributors (@zkherd)
"""

EXAMPLES = r"""
- name: Take the lock holder of db1 out (the standby takes over)
  zkherd.ops.drain:
    hosts: zk1:2181,zk2:2181,zk3:2181
    path: /locks/nightly-backup
    id: db1
    timeout: 120

- name: Put it back in line
  zkherd.ops.drain:
    path: /locks/nightly-backup
    id: db1
    state: undrained

- name: Mark a farm member drained (a field of its JSON, seen by its host's configuration)
  zkherd.ops.farm:
    farm: /services/web
    member: "{{ ansible_default_ipv4.address }}"
    set:
      drained: true
"""

RETURN = r"""
flag:
  description: The drain flag's znode path.
  returned: always
  type: str
  sample: /zkherd/drain/%2Flocks%2Fnightly-backup/db1
drained:
  description: Whether the flag is set after the task (in check mode, would be).
  returned: success
  type: bool
answered:
  description: >-
    Why the runner holds nothing at O(path) (V(drained) with O(wait=true)): C(the runner answered)
    or C(no node of it in the lock's line); null when not waited for.
  returned: success
  type: str
  sample: the runner answered
seconds:
  description: How long the task took from setting or removing the flag.
  returned: success
  type: float
  sample: 0.412
error_kind:
  description: On failure, the kind of error (connect, auth, not_empty, timeout, usage, other).
  returned: failure
  type: str
  sample: timeout
"""

import time
import uuid

from ansible_collections.zkherd.ops.plugins.module_utils.common import acl as acls
from ansible_collections.zkherd.ops.plugins.module_utils.common import drainflags, paths
from ansible_collections.zkherd.ops.plugins.module_utils.common.connection import ZkError, to_kazoo_acls, translate
from ansible_collections.zkherd.ops.plugins.module_utils.common.errors import NOT_EMPTY, USAGE, UserError
from ansible_collections.zkherd.ops.plugins.module_utils.zk_module import ACL_OPTIONS, ZkModule

TIMEOUT = "timeout"


def check_id(ident):
    if not ident:
        raise UserError("id must not be empty: the --id of the runner", USAGE)
    return ident


def shown(flag):
    return "drained\n" if flag else "not drained\n"


def set_flag(client, path, ident, op_timeout, acl):
    """Make the flag: True if this task made it (its token in the data after a lost reply)."""
    token = uuid.uuid4().hex
    _stat, data = drainflags.retried(lambda get: drainflags.set_flag(client, path, ident, get, token, acl), op_timeout)
    return drainflags.flag_token(data) == token


def wait_drained(client, path, ident, deadline, op_timeout, timeout, result):
    state = drainflags.wait_drained(client, path, ident, deadline, op_timeout)
    if state == drainflags.UNDRAINED:
        raise ZkError("%s was undrained meanwhile at %s (someone removed the flag)" % (ident, path), TIMEOUT)
    if state is None:
        error = ZkError("no answer from the runner of %s at %s after %.1f s, and it may still hold something "
                        "there (an unknown id, a runner that is not running, one older than drain, or one that "
                        "cannot write its answer: see its log); the drain flag %s stays: undrain lifts it"
                        % (ident, path, timeout, result["flag"]), TIMEOUT)
        error.result = result
        raise error
    return state


def wait_undrained(client, path, ident, deadline):
    """Until the runner took its answer back (it queues or registers again), or the deadline."""
    node = drainflags.answer_path(path, ident)
    while client.exists(node) is not None:
        if time.monotonic() >= deadline:
            raise ZkError("the runner of %s at %s still answers drained after the timeout: it has not seen "
                          "the undrain yet (see its log); the flag is removed" % (ident, path), TIMEOUT)
        time.sleep(0.1)


def apply(module, client, path, ident):
    p = module.params
    flag = drainflags.flag_path(path, ident)
    result = dict(changed=False, flag=flag, answered=None, seconds=0.0)
    want = p["state"] == "drained"
    before = client.exists(flag) is not None
    result.update(drained=want)
    if module._diff and before != want:
        result["diff"] = dict(before_header=flag, after_header=flag, before=shown(before), after=shown(want))
    if module.check_mode:
        result["changed"] = before != want
        return result
    started = time.monotonic()
    deadline = started + p["timeout"]
    op_timeout = p["connect_timeout"]
    if want:
        acl = to_kazoo_acls(acls.parse(p["acl"], p["auth"])) if p["acl"] else None
        result["changed"] = not before and set_flag(client, path, ident, op_timeout, acl)
        if p["wait"]:
            result["answered"] = wait_drained(client, path, ident, deadline, op_timeout, p["timeout"], result)
    else:
        try:
            was = drainflags.retried(lambda get: drainflags.clear_flag(client, path, ident, get), op_timeout)
        except drainflags.FlagNotEmpty:
            raise ZkError("the drain flag %s has child nodes (not made by zkherd); the flag stays: delete them "
                          "first, then undrain again" % flag, NOT_EMPTY) from None
        result["changed"] = before or was  # seen before: a retry after a lost reply finds NoNode of our delete
        if p["wait"]:
            wait_undrained(client, path, ident, deadline)
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def main():
    zm = ZkModule(
        argument_spec=dict(
            path=dict(type="str", required=True),
            id=dict(type="str", required=True),
            state=dict(type="str", choices=["drained", "undrained"], default="drained"),
            wait=dict(type="bool", default=True),
            timeout=dict(type="float", default=60.0),
            acl=dict(type="list", elements="dict", options=ACL_OPTIONS),
        ),
        supports_check_mode=True,
    )
    module, p = zm.module, zm.params
    path = zm.guard(paths.validate, p["path"])
    ident = zm.guard(check_id, p["id"])
    with zm.session() as client:
        try:
            result = apply(module, client, path, ident)
        except UserError:
            raise
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise translate(exc, "drain %s at" % ident, path) from None
    module.exit_json(**result)


if __name__ == "__main__":
    main()
