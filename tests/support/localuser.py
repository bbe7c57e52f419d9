"""A throwaway unprivileged local user for tests of what such a user can do to root's zkherd.

    with LocalUser() as user:           # useradd a system user, userdel after
        user.popen(["/usr/bin/python3", RACER, ...], log)   # runs as that user (setpriv)
        user.run(["flock", ...])

Its commands run through `setpriv` with the user's uid and gid and no supplementary groups, from
/ (tests' tmp_path is root-only: give the user a folder under LocalUser.area()).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from . import procs

PYTHON = "/usr/bin/python3"  # the system interpreter: the test venv lives under root's home
RACER = str(Path(__file__).with_name("racer.py"))


class LocalUser:
    def __init__(self, prefix="zkhatk"):
        self.name = "%s%d" % (prefix, os.getpid() % 100000)
        self.uid = self.gid = None
        self._areas = []
        self._procs = []

    def __enter__(self):
        for _attempt in range(60):  # other test sessions may hold the lock of /etc/passwd
            done = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                                   "--user-group", self.name], capture_output=True, text=True, check=False)
            if done.returncode in (0, 9):  # 9: it exists (a crashed earlier run with our pid)
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("useradd %s failed: %s" % (self.name, done.stderr))
        entry = pwd.getpwnam(self.name)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        return self

    def __exit__(self, *exc):
        for area in self._areas:
            shutil.rmtree(area, ignore_errors=True)
        for proc in self._procs:  # only what we started as the user, by its pid
            procs.kill(proc)
        for _attempt in range(60):
            if subprocess.run(["userdel", self.name], capture_output=True, check=False).returncode in (0, 6):
                break
            time.sleep(0.5)

    def area(self):
        """A fresh world-traversable folder (root's, 0755) under /tmp where the user can reach
        the folders a test makes for it."""
        path = Path(tempfile.mkdtemp(prefix="zkherd-local-", dir="/tmp"))
        path.chmod(0o755)
        self._areas.append(path)
        return path

    def give(self, path, mode=0o755):
        """Make *path* (a folder or file) the user's: the folder zkherd writes into that the user may write."""
        os.chown(path, self.uid, self.gid)
        os.chmod(path, mode)
        return path

    def argv(self, command):
        return ["setpriv", "--reuid", str(self.uid), "--regid", str(self.gid), "--clear-groups", "--", *command]

    def run(self, command, **kwargs):
        return subprocess.run(self.argv(command), cwd="/", capture_output=True, text=True, check=False, **kwargs)

    def popen(self, command, log_path):
        proc = procs.spawn(self.argv(command), Path(log_path), cwd=Path("/"), env={"PATH": "/usr/bin:/bin"})
        self._procs.append(proc)
        return proc
