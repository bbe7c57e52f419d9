"""`zkherd tree load|dump|diff`: the znode_tree module's reading, planning and transactions
(common.tree, common.treeload, common.txn), printed for a terminal.

Exit codes: commands/tree.py's EXIT_CODES."""

from __future__ import annotations

import sys

from zkherd.common import codec, paths, tree, treeload
from zkherd.common.connection import ZkError, to_kazoo_acls
from zkherd.common.errors import NO_NODE
from zkherd.core import exits
from zkherd.znodes import fail, run
from zkherd.znodes.dumpdir import dump

DIFFERENT = 1


def main(values, settings, out=None):
    out = out or sys.stdout
    cmd = values["tree_cmd"]
    try:
        root = paths.validate(values["znode"])
        desired = tree.desired_from_dir(values["local_dir"], root) if cmd in ("load", "diff") else None
    except ZkError as exc:  # PathError is one too
        return fail(exc.message, exits.USAGE_ERROR)
    if cmd == "load":
        create_acl = to_kazoo_acls(settings.default_acl) if settings.default_acl else None
        return run(settings, lambda client: load(client, root, desired, values, create_acl,
                                                 settings.connect_timeout, out))
    if cmd == "diff":
        return run(settings, lambda client: diff(client, root, desired, out))
    return run(settings, lambda client: dump_tree(client, root, values, out))


def load(client, root, desired, values, create_acl, wait, out):
    current, plan = treeload.plan_load(client, root, desired, prune=values["prune"])
    lines = (["create %s" % path for path, _data in plan.creates]
             + ["update %s" % update[0] for update in plan.updates]
             + ["delete %s" % delete[0] for delete in plan.deletes]
             + ["keep %s (%s)" % kept for kept in plan.kept])
    out.write("".join(line + "\n" for line in lines))
    summary = "%d created, %d updated, %d deleted, %d kept" % (
        len(plan.creates), len(plan.updates), len(plan.deletes), len(plan.kept))
    if values["dry_run"]:
        out.write("%s (dry run: nothing was changed)\n" % summary.replace(" created", " to create")
                  .replace(" updated", " to update").replace(" deleted", " to delete"))
        return 0
    count = 0
    if plan.changed:
        count = treeload.apply_load(client, root, plan, current, create_acl, wait, doer="`zkherd tree load`")
    out.write("%s, in %d transaction%s\n" % (summary, count, "" if count == 1 else "s"))
    return 0


def diff(client, root, desired, out):
    """What `tree load --prune` would change (its own plan), then what it would keep as it is
    (ephemeral znodes and the folders that hold them): the exit says whether anything changes."""
    current = tree.read_tree(client, root)
    plan = tree.plan(current, desired, root, prune=True)
    lines = sorted([(path, "+ %s" % path) for path, _data in plan.creates]
                   + [(path, "- %s" % path) for path, _data, _version in plan.deletes]
                   + [(path, "~ %s\n  - %s\n  + %s" % (path, _shown(old), _shown(new)))
                      for path, old, new, _version in plan.updates])
    kept = ["= %s (kept: %s)" % pair for pair in sorted(plan.kept)]
    out.write("".join(line + "\n" for _path, line in lines) + "".join(line + "\n" for line in kept))
    return DIFFERENT if plan.changed else 0


def _shown(data):
    return codec.preview(data, limit=120).replace("\n", "\\n")


def dump_tree(client, root, values, out):
    nodes = tree.read_tree(client, root)
    if not nodes:
        raise ZkError("znode %s does not exist" % root, NO_NODE)
    directory = values["local_dir"]
    written = dump(nodes, root, directory, values["force"], file_mode=values["dump_file_mode"],
                   warn=lambda text: sys.stderr.write("zkherd: warning: %s\n" % text))
    out.write("%d znodes into %s (%d files)\n" % (len(nodes), directory, written))
    return 0
