"""What a local user who can write a folder that root's zkherd writes into would try (run it as
that user; standard library only, inotify through ctypes).

    racer.py swap-temp SPARE TARGET DIR...
                                       every temp file zkherd creates in a DIR ('.*.zkherd') is replaced
                                       at once by a symlink to TARGET (made beforehand in the folder SPARE,
                                       on the same file system, and renamed over the temp file: one system
                                       call after the event, and the temp name never goes missing); a temp
                                       folder is renamed away first, then the link put in its place
    racer.py swap-dir DIR SUB TARGET   when the first temp file appears in DIR, the folder DIR/SUB is
                                       renamed away and replaced by a symlink to TARGET
    racer.py flip DIR NAME TARGET      DIR/NAME is a regular file and a symlink to TARGET in turn, as
                                       fast as it goes

Its output says `ready` once the watches are set, then a line per swap. Every mode ends after DEADLINE
seconds at the latest (a safety net: the test kills it before).
"""

import ctypes
import os
import signal
import struct
import sys

DEADLINE = 300
IN_CREATE, IN_MOVED_TO, IN_NONBLOCK = 0x100, 0x80, 0o4000
_libc = ctypes.CDLL(None, use_errno=True)


def note(line):
    print(line, flush=True)


def watch(dirs):
    fd = _libc.inotify_init1(IN_NONBLOCK)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    wds = {}
    for directory in dirs:
        wd = _libc.inotify_add_watch(fd, directory.encode(), IN_CREATE | IN_MOVED_TO)
        if wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch " + directory)
        wds[wd] = directory
    return fd, wds


def created(fd, wds):
    """Yield (directory, name) of every entry created in a watched directory. It spins rather
    than sleeps: waking up takes longer than root needs to write a file."""
    while True:
        try:
            data, offset = os.read(fd, 65536), 0
        except BlockingIOError:
            os.sched_yield()
            continue
        while offset < len(data):
            wd, _mask, _cookie, length = struct.unpack_from("iIII", data, offset)
            name = data[offset + 16:offset + 16 + length].rstrip(b"\0").decode(errors="surrogateescape")
            offset += 16 + length
            yield wds[wd], name


def is_temp(name):
    return name.startswith(".") and name.endswith(".zkherd")


def swap_temp(spare_dir, target, dirs):
    fd, wds = watch(dirs)
    spare = os.path.join(spare_dir, "link")
    os.symlink(target, spare)
    note("ready")
    ours, count = set(), 0
    for directory, name in created(fd, wds):
        path = os.path.join(directory, name)
        if not is_temp(name) or path in ours:
            continue
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rename(path, os.path.join(directory, ".moved-" + name[1:-len(".zkherd")]))
            os.rename(spare, path)
        except OSError as exc:
            note("missed %s: %s" % (path, exc))
            continue
        count += 1
        ours.add(path)
        note("swap %s" % path)
        os.symlink(target, spare)


def swap_dir(directory, sub, target):
    fd, wds = watch([directory])
    note("ready")
    for _directory, name in created(fd, wds):
        if is_temp(name):
            os.rename(os.path.join(directory, sub), os.path.join(directory, ".%s-moved" % sub))
            os.symlink(target, os.path.join(directory, sub))
            note("swapped %s" % sub)
            return


def flip(directory, name, target):
    path, plain, link = (os.path.join(directory, n) for n in (name, ".flip-plain", ".flip-link"))
    note("ready")
    flips = 0
    while True:
        with open(plain, "w") as handle:
            handle.write("harmless\n")
        os.rename(plain, path)
        os.symlink(target, link)
        os.rename(link, path)
        flips += 1
        if flips % 1000 == 0:
            note("flips %d" % flips)


def main(argv):
    signal.alarm(DEADLINE)  # SIGALRM ends the process
    mode, args = argv[1], argv[2:]
    if mode == "swap-temp":
        swap_temp(args[0], args[1], args[2:])
    elif mode == "swap-dir":
        swap_dir(*args)
    elif mode == "flip":
        flip(*args)


if __name__ == "__main__":
    main(sys.argv)
