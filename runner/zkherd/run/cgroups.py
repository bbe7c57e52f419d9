"""Where the child's cgroup v2 may be made: below the runner's own cgroup, found from
/proc/self/mountinfo and /proc/self/cgroup (never assumed to be /sys/fs/cgroup: on a hybrid host it
is /sys/fs/cgroup/unified), and only where the runner may write - as root outside systemd, or in a
systemd unit that delegated its cgroup (Delegate=yes). A unit's cgroup that was not delegated is
systemd's alone, even to root: the runner makes nothing there.
"""

from __future__ import annotations

import os
import re

_ESCAPE = re.compile(r"\\([0-7]{3})")
_UNIT = re.compile(r"\.(service|scope)$")


def _unescape(field):
    """mountinfo writes a space in a path as \\040."""
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def cgroup2_mount(mountinfo="/proc/self/mountinfo"):
    """(mount point, root of the mount) of the cgroup v2 hierarchy, or None."""
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as handle:
            for line in handle:
                fields = line.split()
                dash = fields.index("-")
                if fields[dash + 1] == "cgroup2":
                    return _unescape(fields[4]), _unescape(fields[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


def own_cgroup(proc_cgroup="/proc/self/cgroup"):
    """This process's cgroup v2 path ('0::/a/b' -> '/a/b'), or None."""
    try:
        with open(proc_cgroup, encoding="utf-8", errors="surrogateescape") as handle:
            for line in handle:
                if line.startswith("0::"):
                    return line[3:].rstrip("\n")
    except OSError:
        pass
    return None


def own_cgroup_folder(mountinfo="/proc/self/mountinfo", proc_cgroup="/proc/self/cgroup"):
    """The folder of this process's cgroup in the cgroup v2 file system, or None."""
    mount, own = cgroup2_mount(mountinfo), own_cgroup(proc_cgroup)
    if mount is None or own is None:
        return None
    point, root = mount
    relative = os.path.relpath(own, root) if root != "/" else own.lstrip("/")
    if relative.startswith(".."):  # our cgroup is outside what this mount shows (another namespace's)
        return None
    return os.path.normpath(os.path.join(point, relative))


def delegated(folder):
    """Whether systemd delegated this cgroup (Delegate=yes sets the xattr, systemd 251 and later)."""
    for name in ("trusted.delegate", "user.delegate"):
        try:
            if os.getxattr(folder, name) == b"1":
                return True
        except OSError:
            continue
    return False


def child_cgroup_parent():
    """(folder under which the child's cgroup may be made, None) or (None, why not)."""
    folder = own_cgroup_folder()
    if folder is None:
        return None, "no cgroup v2 hierarchy for this process"
    under_systemd = os.environ.get("INVOCATION_ID") or (
        os.path.isdir("/run/systemd/system") and _UNIT.search(folder) is not None)
    if under_systemd and not delegated(folder):
        return None, "a systemd unit without Delegate=yes (its KillMode=control-group covers the runner's death)"
    if not (os.access(folder, os.W_OK) and os.access(os.path.join(folder, "cgroup.procs"), os.W_OK)):
        return None, "the runner's cgroup %s is not writable" % folder
    return folder, None


def make_child_cgroup(parent, name):
    """Make the child's cgroup (a leftover of the same name, empty, is replaced); returns (path, None)
    or (None, why not)."""
    for attempt in range(10):
        path = os.path.join(parent, name if attempt == 0 else "%s-%d" % (name, attempt))
        try:
            os.mkdir(path, 0o755)
            return path, None
        except FileExistsError:
            try:
                os.rmdir(path)  # an empty leftover of a runner that had our pid
                os.mkdir(path, 0o755)
                return path, None
            except OSError:
                continue  # still populated, or raced: another name
        except OSError as exc:
            return None, "cannot make %s: %s" % (path, exc.strerror)
    return None, "cannot make a cgroup named %s in %s" % (name, parent)


def kill_file(path):
    return os.path.join(path, "cgroup.kill")


def procs_file(path):
    return os.path.join(path, "cgroup.procs")
