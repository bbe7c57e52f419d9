"""CLI for demo scripts: a detached ZooKeeper that outlives this command.

    python -m tests.support.zkserver start --port 2181 --dir DIR
    python -m tests.support.zkserver status --dir DIR
    python -m tests.support.zkserver stop --dir DIR

DIR holds zoo.cfg, data/, zookeeper.log and zookeeper.pid; data survives a
stop/start. Exit status: 0 on success / running, 1 otherwise.
"""

import argparse
import os
import re
import signal
import time
from pathlib import Path

from . import procs
from .zkserver import LOOPBACK, ZooKeeperServer, ZooKeeperStartError, four_letter_word


def _our_pid(directory: Path) -> int | None:
    """The pid from DIR's pidfile if that process is still our server."""
    try:
        pid = int((directory / "zookeeper.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None
    # Guards against pid reuse: the process must run DIR's zoo.cfg.
    if procs.pid_alive(pid) and str(directory / "zoo.cfg") in procs.pid_cmdline(pid):
        return pid
    return None


def _configured_port(directory: Path) -> int | None:
    try:
        match = re.search(r"^clientPort=(\d+)$", (directory / "zoo.cfg").read_text(), re.MULTILINE)
    except FileNotFoundError:
        return None
    return int(match.group(1)) if match else None


def _answers(port: int) -> bool:
    try:
        return four_letter_word(LOOPBACK, port, "ruok", timeout=1.0) == "imok"
    except OSError:
        return False


def start(directory: Path, port: int, timeout: float) -> int:
    pid = _our_pid(directory)
    if pid is not None:
        running_port = _configured_port(directory)
        if running_port == port and _answers(port):
            print(f"already running: pid {pid}, {LOOPBACK}:{port}")
            return 0
        print(f"pid {pid} from {directory} runs on port {running_port}; stop it first")
        return 1
    if _answers(port):
        print(f"another ZooKeeper already answers on {LOOPBACK}:{port}")
        return 1
    directory.mkdir(parents=True, exist_ok=True)
    server = ZooKeeperServer(directory, port=port, detach=True)
    try:
        server.start(timeout)
    except ZooKeeperStartError as exc:
        print(exc)
        return 1
    print(f"started: pid {server.pid}, {server.hosts}, log {server.log_path}")
    return 0


def stop(directory: Path, timeout: float) -> int:
    pid = _our_pid(directory)
    if pid is None:
        print("not running")
    else:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while procs.pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if procs.pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
        print(f"stopped pid {pid}")
    (directory / "zookeeper.pid").unlink(missing_ok=True)
    return 0


def status(directory: Path) -> int:
    pid = _our_pid(directory)
    port = _configured_port(directory)
    if pid is None or port is None:
        print("not running")
        return 1
    state = "serving" if _answers(port) else "not answering"
    print(f"running: pid {pid}, {LOOPBACK}:{port}, {state}")
    return 0 if state == "serving" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.zkserver")
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--dir", required=True, type=Path, help="server directory")
    parser.add_argument("--port", type=int, default=2181, help="client port (start)")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    directory = args.dir.resolve()
    if args.command == "start":
        return start(directory, args.port, args.timeout)
    if args.command == "stop":
        return stop(directory, args.timeout)
    return status(directory)
