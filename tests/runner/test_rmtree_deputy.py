"""The owner rule of rmtree (issue 14, found by an adversarial read, failed before the fix): a local
user must never make root delete what that user could not.

rmtree.clear() enters a folder right inside the private folder if its owner is root (the runner) or
the mirrored folder's owner, and below that every folder of the same owner. A user who can *move* a
root-owned folder - write access to it and to its parent, e.g. a group-writable shared project
folder `root:staff 2775` - moves it into the mirrored folder they own; the next install displaces
it (an entry the set does not have) and root clears it, root's 0755 subfolders included, which
that user could never empty. Needs root (chown, setuid); uid/gid 65534 play the user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from zkherd.configfiles import rmtree

USER = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_f4_a_root_folder_the_user_can_move_is_emptied_by_root():
    base = tempfile.mkdtemp(dir="/tmp")
    try:
        os.chmod(base, 0o755)
        shared = os.path.join(base, "shared")  # root:USER 0775 - the user may write it (a group folder)
        proj = os.path.join(shared, "proj")  # root:USER 0775
        secret = os.path.join(proj, "secret")  # root:root 0755 - the user cannot delete in here
        mirrored = os.path.join(base, "mirrored")  # the mirrored folder, the user's
        for path, uid, gid, mode in ((shared, 0, USER, 0o775), (proj, 0, USER, 0o775), (secret, 0, 0, 0o755),
                                     (mirrored, USER, USER, 0o755)):
            os.mkdir(path)
            os.chown(path, uid, gid)
            os.chmod(path, mode)
        with open(os.path.join(secret, "keep"), "w") as handle:
            handle.write("root's")
        as_user = [sys.executable, "-c", "import os,sys; os.setgroups([]); os.setgid(%d); os.setuid(%d); "
                   "getattr(os, sys.argv[1])(*sys.argv[2:])" % (USER, USER)]
        # the user cannot delete root's file ...
        assert subprocess.run(as_user + ["unlink", os.path.join(secret, "keep")], check=False,
                              capture_output=True).returncode != 0
        # ... but can move the folder that holds it into the mirrored folder
        subprocess.run(as_user + ["rename", proj, os.path.join(mirrored, "proj")], check=True)
        # an install displaces it into a private folder (root 0700), then clears that
        private = os.path.join(mirrored, ".aside")
        os.mkdir(private, 0o700)
        os.rename(os.path.join(mirrored, "proj"), os.path.join(private, "proj"))
        fd = os.open(private, os.O_RDONLY | os.O_DIRECTORY)
        try:
            rmtree.clear(fd, {os.geteuid(), USER})
        finally:
            os.close(fd)
        assert os.path.exists(os.path.join(private, "proj", "secret", "keep")), "root deleted what the user could not"
    finally:
        shutil.rmtree(base)
