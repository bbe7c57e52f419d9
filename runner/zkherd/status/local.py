"""`zkherd status --local`: what this host's runners are doing, from the state files they write
(telemetry/statefile.py). The files are untrusted input: a folder or file not owned by root or the
caller, open to writes by group or others, a symbolic link, a file over MAX_BYTES or not a JSON
object is skipped with a note. A runner whose process is gone (or a zombie), or whose file was
not updated for STALE_AFTER seconds, is marked stale."""

from __future__ import annotations

import json
import os
import stat
import sys
import time

from zkherd.core import exits
from zkherd.status.localtext import render

MAX_BYTES = 1 << 20
STALE_AFTER = 15.0


def default_folders():
    folders = ["/run/zkherd"]
    if os.geteuid() != 0 and os.environ.get("XDG_RUNTIME_DIR"):
        folders.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "zkherd"))
    return folders


def untrusted(st, what):
    """Why a file or folder with lstat *st* is not to be believed, or None."""
    if stat.S_ISLNK(st.st_mode):
        return "%s is a symbolic link" % what
    if st.st_uid not in (0, os.geteuid()):
        return "%s is owned by uid %d (not root, not you)" % (what, st.st_uid)
    if st.st_mode & 0o022:
        return "%s is writable by group or others (mode %04o)" % (what, stat.S_IMODE(st.st_mode))
    return None


def files(folder, notes, depth=0):
    """The *.json files of *folder* and (depth 1) of its trusted subfolders."""
    try:
        st = os.lstat(folder)
    except OSError:
        return []
    why = untrusted(st, "folder") or (None if stat.S_ISDIR(st.st_mode) else "not a folder")
    if why:
        notes.append("skipped %s: %s" % (folder, why))
        return []
    found = []
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        notes.append("skipped %s: %s" % (folder, exc.strerror))
        return []
    for name in names:
        path = os.path.join(folder, name)
        if name.endswith(".json"):
            found.append(path)
        elif depth == 0 and os.path.isdir(path):
            found += files(path, notes, depth + 1)
    return found


def read(path):
    """(report, None) or (None, why it is skipped)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return None, "a symbolic link" if os.path.islink(path) else exc.strerror
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        why = untrusted(st, "file") or (None if stat.S_ISREG(st.st_mode) else "not a regular file")
        if why is None and st.st_size > MAX_BYTES:
            why = "bigger than %d bytes" % MAX_BYTES
        if why:
            return None, why
        data = handle.read(MAX_BYTES + 1)
    try:
        report = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deep
        return None, "not JSON"
    pid = report.get("pid") if isinstance(report, dict) else None
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 1 << 31:
        return None, "not a zkherd state file"
    try:
        json.dumps(report, indent=2)  # as --json will: nested deeper than Python's encoder goes
    except (RecursionError, ValueError):
        return None, "nested too deeply"
    return report, None


def pid_gone(pid):
    """True if no process *pid* runs (a zombie counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError, ValueError):
        return True
    return fields[0] == b"Z"


def staleness(report, now):
    if pid_gone(report["pid"]):
        return "process %d is gone" % report["pid"]
    updated = report.get("updated")
    if not isinstance(updated, (int, float)) or not now - updated <= STALE_AFTER:  # NaN too
        return "not updated for more than %d s" % STALE_AFTER
    return None


def main(folders, as_json, out=None):
    out = out or sys.stdout
    notes, shown, now = [], [], time.time()
    for folder in folders or default_folders():
        for path in files(folder, notes):
            report, why = read(path)
            if why:
                notes.append("skipped %s: %s" % (path, why))
                continue
            stale = staleness(report, now)
            shown.append(dict(report, file=path, stale=stale is not None, stale_why=stale))
    for note in notes:
        sys.stderr.write("zkherd: %s\n" % note)
    if as_json:
        out.write(json.dumps(shown, indent=2, sort_keys=True) + "\n")
    else:
        for report in shown:
            out.write(render(report, now))
    if not shown:
        sys.stderr.write("zkherd: no runner state files found in %s\n" % ", ".join(folders or default_folders()))
        return exits.NOINPUT
    return exits.OK
