"""The drained ids of a path for `zkherd status` (recipes/drainflag.py): each flag, and whether its
runner answered that it holds nothing there now."""

from __future__ import annotations

from kazoo.exceptions import NoNodeError

from zkherd.common import paths
from zkherd.core.safetext import safe
from zkherd.recipes import drainflag


def drained(client, path, wait):
    """[{"id", "holds_nothing"}] for the flags of *path*, by id; [] if none."""
    flags_folder, answers_folder = drainflag.flags_of(path)
    try:
        names = wait(client.get_children_async(flags_folder))
    except NoNodeError:
        return []
    pending = [(name, client.exists_async(paths.join(flags_folder, name)),
                client.exists_async(paths.join(answers_folder, name))) for name in sorted(names)]
    found = []
    for name, flag, answer in pending:
        flag = wait(flag)
        if flag is not None:
            found.append({"id": drainflag.decode(name), "holds_nothing": drainflag.answered(flag, wait(answer))})
    return found


def lines(entries):
    """Text lines; a flag's name is anyone's who may write /zkherd/drain: shown without control characters."""
    return ["  drained  %s (%s)" % (safe(e["id"]), "holds nothing" if e["holds_nothing"] else
                                    "not answered yet: stopping, or not running") for e in entries]
