"""The process table from /proc, for the subreaper mode of the containment: who is whose parent,
in which process group, and who is dead already (a zombie waits only to be reaped)."""

from __future__ import annotations

import os


def stat(pid):
    """(state, ppid, pgrp) of *pid*, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()  # the command name may hold spaces and ')'
    return fields[0].decode(), int(fields[1]), int(fields[2])


def scan():
    """{pid: (state, ppid, pgrp)} of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = stat(int(entry))
            if found is not None:
                table[int(entry)] = found
    return table


def dead(state):
    return state in ("Z", "X")


def zombie(pid):
    found = stat(pid)
    return found is None or dead(found[0])


def descendants(roots, table):
    """*roots* and all their descendants, from a scan()."""
    children = {}
    for pid, (_state, ppid, _pgrp) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, pending = set(roots), list(roots)
    while pending:
        for child in children.get(pending.pop(), ()):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found
