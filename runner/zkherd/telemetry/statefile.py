"""The runner state file DIR/zkherd-PID.json that `zkherd status --local` reads: written atomically
(a temporary file, then a rename; mode 0644) when what it says changes and at least every
REFRESH seconds, removed on a clean exit. Its fields: docs/operations.md "Runner state files"."""

from __future__ import annotations

import json
import os

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
        tmp = self.path + ".tmp"
        try:
            os.makedirs(self.folder, mode=0o755, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), 0o644)
                json.dump(report, handle, sort_keys=True)
            os.replace(tmp, self.path)
            self.failed = False
        except OSError as exc:
            if not self.failed:
                self.log.warning("cannot write the state file", path=self.path, error=exc.strerror or str(exc))
            self.failed = True

    def remove(self):
        for path in (self.path, self.path + ".tmp"):
            try:
                os.unlink(path)
            except OSError:
                pass
