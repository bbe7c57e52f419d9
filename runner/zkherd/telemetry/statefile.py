"""The runner state file DIR/zkherd-PID.json that `zkherd status --local` reads: written atomically
(a temporary file, then a rename; mode 0644) when what it says changes and at least every
REFRESH seconds, removed on a clean exit. Its fields: docs/operations.md "Runner state files"."""

from __future__ import annotations

import json
import os

from zkherd.configfiles.owners import open_trusted_folder

REFRESH = 5.0


def default_dir():
    """$RUNTIME_DIRECTORY (systemd's RuntimeDirectory=), /run/zkherd as root, else
    $XDG_RUNTIME_DIR/zkherd; None: no state file."""
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return runtime
    if os.geteuid() == 0:
        return "/run/zkherd"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(xdg, "zkherd") if xdg else None


class StateFile:
    def __init__(self, folder, log):
        self.folder, self.log = folder, log
        self.path = os.path.join(folder, "zkherd-%d.json" % os.getpid())
        self.failed = False  # warned once: a state file that cannot be written must not stop the runner

    def write(self, report):
        """Into a folder owners.untrusted() accepts (made 0755 if missing), through its descriptor:
        a folder that is a link, or another user's, or writable by others is refused (warned once)."""
        name = os.path.basename(self.path)
        tmp = name + ".tmp"
        try:
            os.makedirs(self.folder, mode=0o755, exist_ok=True)
            dir_fd = open_trusted_folder(self.folder)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                             0o644, dir_fd=dir_fd)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    os.fchmod(handle.fileno(), 0o644)
                    json.dump(report, handle, sort_keys=True)
                os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
            self.failed = False
        except OSError as exc:
            if not self.failed:
                self.log.warning("cannot write the state file", path=self.path, error=exc.strerror or str(exc))
            self.failed = True

    def remove(self):
        try:
            dir_fd = open_trusted_folder(self.folder)
        except OSError:
            return  # never written there either
        try:
            for name in (os.path.basename(self.path), os.path.basename(self.path) + ".tmp"):
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except OSError:
                    pass
        finally:
            os.close(dir_fd)
