"""Whom zkherd trusts with a folder or file it keeps state in (one rule, used by the lease folder
and `zkherd tree dump`): root or zkherd's own user owns it, and nobody else may write it. A folder
another local user owns or may write is one whose content that user can read, swap or plant."""

from __future__ import annotations

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
