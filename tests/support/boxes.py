"""Real systemd hosts for the roles: systemd-nspawn boxes booted from a debootstrap Debian root.

    python -m tests.support.boxes build                         # the root file system, once (cached)
    python -m tests.support.boxes up --state DIR --count 3      # boot box1..box3, write DIR/inventory.yml
        [--reuse]                                               # keep them if they are up (make demo)
    python -m tests.support.boxes down --state DIR              # power them off

Each box boots the cached root with --volatile=overlay (its changes live in memory and vanish at
power-off), shares the host's network (so ZooKeeper servers and runners in the boxes reach each
other on 127.0.0.1, each on its own ports) and runs its own systemd; Ansible drives it over
community.docker.nsenter with the PID of the box's systemd. The root is cached in
/var/cache/zkherd/boxes (ZKHERD_BOXES_CACHE), shared by every checkout of this machine, and built
again when the package list below changes.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
# systemd and python3 (with python3-apt for the package module) for Ansible; python3-venv for the
# runner role; zookeeper and its Java for the
# zookeeper role (installed here so that the role's package task finds it and no box downloads it);
# haproxy, nginx and curl for the farm's real consumers (playbooks/farm.yml): in the cached root
# they cost nothing per run, where an apt-get in every box would download them at every boot.
PACKAGES = ["systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "python3-apt", "iproute2", "procps",
            "zookeeper", "default-jre-headless", "cron", "haproxy", "nginx", "curl"]
# Services of those packages that the root leaves disabled: the boxes share the host's network, so
# three nginx on port 80 would collide; the playbooks configure them on ports of their own, then start them.
# The root's cache key is SUITE and PACKAGES only: a change here alone needs a change there to rebuild.
DISABLED_SERVICES = ["haproxy.service", "nginx.service"]
CACHE = Path(os.environ.get("ZKHERD_BOXES_CACHE", "/var/cache/zkherd/boxes"))
BOOT_TIMEOUT = 60.0


def say(message):
    print("[boxes] %s" % message, file=sys.stderr, flush=True)


def root_dir():
    digest = hashlib.sha256(json.dumps([SUITE, PACKAGES]).encode()).hexdigest()[:12]
    return CACHE / ("rootfs-" + digest)


def _debootstrap_running(target):
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(target).encode() in cmdline.read_bytes() and b"debootstrap" in cmdline.read_bytes():
                return True
        except OSError:
            pass
    return False


def build():
    """The root file system, built once per package list (a minute or two, 500 MB). Concurrent
    callers (parallel test runs) wait for the one that builds."""
    root = root_dir()
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        partial = root.with_name(root.name + ".partial")
        while _debootstrap_running(partial) and not (root / ".zkherd-complete").exists():
            time.sleep(2)  # someone without the lock is building it
        if not (root / ".zkherd-complete").exists():
            _build(root, partial)
    return root


def _build(root, partial):
    for tool, package in (("debootstrap", "debootstrap"), ("systemd-nspawn", "systemd-container")):
        if not shutil.which(tool):
            say("installing Debian package %s" % package)
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package], check=True,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), stdout=subprocess.DEVNULL)
    shutil.rmtree(partial, ignore_errors=True)
    say("building the box root file system in %s (once; about a minute)" % root)
    started = time.monotonic()
    log = partial.with_suffix(".log")
    with open(log, "w") as out:
        done = subprocess.run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE,
                               str(partial), MIRROR], stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SystemExit("debootstrap failed; see %s" % log)
    # The machine name (-M) becomes the hostname only when the root does not name one.
    (partial / "etc/hostname").unlink(missing_ok=True)
    (partial / "etc/machine-id").write_text("")  # a fresh id at every boot
    for unit in DISABLED_SERVICES:
        (partial / "etc/systemd/system/multi-user.target.wants" / unit).unlink(missing_ok=True)
    (partial / "etc/nginx/sites-enabled/default").unlink(missing_ok=True)  # port 80 on every box
    (partial / ".zkherd-complete").write_text(" ".join(PACKAGES) + "\n")
    partial.rename(root)
    say("root file system built in %.0f s" % (time.monotonic() - started))


def _init_pid(nspawn_pid):
    """The PID (on the host) of the box's systemd, the child of systemd-nspawn."""
    try:
        children = Path("/proc/%d/task/%d/children" % (nspawn_pid, nspawn_pid)).read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _in_box(pid, *cmd, timeout=30):
    return subprocess.run(["nsenter", "-t", str(pid), "-a", *cmd], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _cgroup2_root():
    """Where cgroup2 is mounted (/sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a
    hybrid one), or None."""
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def boot(name, root, state):
    """Start systemd-nspawn for one box. Each box gets a cgroup2 directory of its own: without it
    (systemd not PID 1 here) every box's systemd shares one payload cgroup, and units of the same
    name in two boxes disturb each other (status=219/CGROUP, "Failed to kill control group")."""
    env = dict(os.environ)
    group = None
    cgroup2 = _cgroup2_root()
    if cgroup2 is not None:
        group = cgroup2 / "zkherd-boxes" / name
        group.mkdir(parents=True, exist_ok=True)
        env["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"] = "1"

    def enter():
        os.setsid()
        if group is not None:
            (group / "cgroup.procs").write_text(str(os.getpid()))

    with open(state / (name + ".log"), "w") as log:  # the box keeps its own copy of the descriptor
        proc = subprocess.Popen(  # pylint: disable=consider-using-with,subprocess-popen-preexec-fn
            ["systemd-nspawn", "--register=no", "--keep-unit", "--boot", "--volatile=overlay", "--console=passive",
             "-D", str(root), "-M", name],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=enter, env=env)
    return proc.pid


def wait_running(name, nspawn_pid, deadline):
    """Wait for the box's systemd to finish booting; its PID."""
    while time.monotonic() < deadline:
        pid = _init_pid(nspawn_pid)
        if pid:
            state = _in_box(pid, "systemctl", "is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                if state == "degraded":
                    failed = _in_box(pid, "systemctl", "--failed", "--no-legend", "--plain").stdout
                    say("%s booted degraded: %s" % (name, " ".join(failed.split()[:1]) or "?"))
                return pid
        elif not Path("/proc/%d" % nspawn_pid).exists():
            raise SystemExit("box %s did not start" % name)
        time.sleep(0.1)
    raise SystemExit("box %s did not finish booting within %.0f s" % (name, BOOT_TIMEOUT))


def running(state, names):
    """The boxes of *state* if exactly *names* are still up and booted (a rerun of the demo keeps
    them and what was deployed on them), else None."""
    try:
        boxes = json.loads((state / "boxes.json").read_text())
    except (OSError, ValueError):
        return None
    if sorted(boxes) != sorted(names):
        return None
    for box in boxes.values():
        if _init_pid(box["nspawn_pid"]) != box["pid"]:
            return None
        if _in_box(box["pid"], "systemctl", "is-system-running").stdout.strip() not in ("running", "degraded"):
            return None
    return boxes


def up(state, count, prefix, reuse=False):
    root = build()
    state.mkdir(parents=True, exist_ok=True)
    names = ["%s%d" % (prefix, i) for i in range(1, count + 1)]
    kept = running(state, names) if reuse else None
    if kept is not None:
        say("%d boxes still up, kept with what runs on them: %s" % (
            len(kept), ", ".join("%s (pid %d)" % (n, b["pid"]) for n, b in kept.items())))
        return kept
    down(state, quiet=True)
    started = time.monotonic()
    spawned = dict.fromkeys(names)
    for name in spawned:
        spawned[name] = boot(name, root, state)
    deadline = time.monotonic() + BOOT_TIMEOUT
    boxes = {name: {"nspawn_pid": pid, "pid": wait_running(name, pid, deadline)} for name, pid in spawned.items()}
    (state / "boxes.json").write_text(json.dumps(boxes, indent=1))
    inventory = {"all": {"children": {"boxes": {"hosts": {
        name: {"ansible_connection": "community.docker.nsenter", "ansible_nsenter_pid": box["pid"],
               "ansible_python_interpreter": "/usr/bin/python3"}
        for name, box in boxes.items()}}}}}
    (state / "inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    say("%d boxes up in %.1f s: %s" % (len(boxes), time.monotonic() - started,
                                       ", ".join("%s (pid %d)" % (n, b["pid"]) for n, b in boxes.items())))
    return boxes


def down(state, quiet=False):
    """Power the boxes off (systemd's orderly shutdown), then kill what is left."""
    record = state / "boxes.json"
    if not record.exists():
        return
    boxes = json.loads(record.read_text())
    for box in boxes.values():
        try:
            os.kill(box["pid"], signal.SIGRTMIN + 4)  # systemd: poweroff
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 15
    for name, box in boxes.items():
        while Path("/proc/%d" % box["nspawn_pid"]).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in (box["pid"], box["nspawn_pid"]):
            try:
                os.kill(pid, signal.SIGKILL)  # the box's init: its whole PID namespace goes with it
                if not quiet:
                    say("%s did not power off in time; killed" % name)
            except ProcessLookupError:
                pass
    record.unlink()
    cgroup2 = _cgroup2_root()
    if cgroup2 is not None:  # the boxes' cgroups, empty now (rmdir refuses busy ones)
        for name in boxes:
            for group in sorted((cgroup2 / "zkherd-boxes" / name).glob("**/"), key=lambda p: -len(p.parts)):
                try:
                    group.rmdir()
                except OSError:
                    pass
    if not quiet:
        say("%d boxes down" % len(boxes))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.support.boxes",
                                     description=__doc__.split("\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build the root file system (cached)")
    for name in ("up", "down"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--state", type=Path, required=True, help="folder for the inventory and the box records")
        if name == "up":
            cmd.add_argument("--count", type=int, default=3)
            cmd.add_argument("--prefix", default="box")
            cmd.add_argument("--reuse", action="store_true",
                             help="keep the boxes of --state if they are all still up (what runs on them stays)")
    args = parser.parse_args(argv)
    if args.cmd == "build":
        print(build())
    elif args.cmd == "up":
        up(args.state, args.count, args.prefix, reuse=args.reuse)
    else:
        down(args.state)


if __name__ == "__main__":
    main()
