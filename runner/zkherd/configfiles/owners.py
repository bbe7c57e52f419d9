"""Whom zkherd trusts with a folder or file it keeps state in (one rule, used by the lease folder,
`zkherd tree dump`, the --metrics-file folder and the --state-dir folder): root or zkherd's own user
owns it, and nobody else may write it. A folder another local user owns or may write is one whose
content that user can read, swap or plant."""

from __future__ import annotations

import errno
import os
import stat


def untrusted(st, euid=None):
    """Why a folder or file with this stat is not to be trusted, or None."""
    euid = os.geteuid() if euid is None else euid
    if st.st_uid not in (0, euid):
        return "owned by uid %d" % st.st_uid
    if st.st_mode & 0o022:
        return "writable by others (mode %04o)" % stat.S_IMODE(st.st_mode)
    return None


def open_trusted_folder(path):
    """A descriptor of the folder *path* (not a link at its last name) that untrusted() accepts;
    OSError (EPERM, saying why) otherwise. Files are then made with dir_fd: what the check saw is
    what is written to, even if the name is swapped afterwards."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            raise OSError(errno.EPERM, "refusing the folder %s: it is a symbolic link" % path) from None
        raise
    problem = untrusted(os.fstat(fd))
    if problem:
        os.close(fd)
        raise OSError(errno.EPERM, "refusing the folder %s: it is %s" % (path, problem))
    return fd
