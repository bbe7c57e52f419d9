# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zkherd.ops.refused_folders: the folders, among those a role would make writable for a runner
(and hand to its user), that are shared system folders or inside zkherd's own folders - one
source of truth for the service and render roles."""

from __future__ import annotations

import posixpath

# Folders no mirrored or rendered file may sit in directly: the roles make such a folder writable
# in the unit (ReadWritePaths=) and hand it to the entry's user.
SHARED_FOLDERS = frozenset((
    "/", "/bin", "/boot", "/dev", "/etc", "/etc/systemd", "/home", "/lib", "/lib64", "/opt", "/proc",
    "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local",
    "/usr/local/bin", "/usr/sbin", "/var", "/var/lib", "/var/log", "/var/tmp"))
# zkherd's own folders: nothing of a runner's may be written in or below them (its configurations,
# credentials and shipped templates live there).
OWN_FOLDERS = ("/etc/zkherd",)


def _normal(path):
    path = posixpath.normpath(str(path))
    return "/" + path.lstrip("/") if path.startswith("/") else path


def _inside(folder, root):
    return folder == root or folder.startswith(root.rstrip("/") + "/")


def refused_folders(folders, own=()):
    """folders | zkherd.ops.refused_folders([own...]) -> the folders refused, in order, once each."""
    roots = [_normal(root) for root in list(OWN_FOLDERS) + [r for r in (own or []) if r]]
    refused = []
    for folder in folders or []:
        normal = _normal(folder)
        if (normal in SHARED_FOLDERS or any(_inside(normal, root) for root in roots)) and folder not in refused:
            refused.append(folder)
    return refused


class FilterModule:
    def filters(self):
        return {"refused_folders": refused_folders}
