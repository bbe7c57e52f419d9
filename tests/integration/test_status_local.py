"""Issue 16 `zkherd status --local`: the runner state files of real runners (--state-dir), read
back as untrusted input; a SIGKILLed runner is stale, a fenced one says so, a clean exit removes its
file (docs/operations.md "Runner state files")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from tests.support.runner import REPO, Zkherd
from tests.support.zkutil import wait_for


def local(*folders):
    args = [a for folder in folders for a in ("--state-dir", str(folder))]
    result = subprocess.run([sys.executable, "-m", "zkherd", "status", "--local", "--json", *args], cwd=REPO,
                            capture_output=True, text=True, timeout=30, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def by_pid(folder):
    result = local(folder)
    return {r["pid"]: r for r in json.loads(result.stdout)} if result.returncode == 0 else {}


def wait_report(folder, pid, test):
    found = {}

    def check():
        found.update(by_pid(folder))
        return pid in found and test(found[pid])
    wait_for(check, 20, message=lambda: "a report of pid %d: %r" % (pid, found.get(pid)))
    return found[pid]


def test_two_runners_a_fenced_one_a_killed_one_and_untrusted_files(zk_server, zk_base, fault_proxy, tmp_path):
    state, lock, proxy = tmp_path / "state", zk_base + "/l", fault_proxy()
    holder = Zkherd(["run", "--zk", proxy.hosts, "--session-timeout", "2", "--lock", lock, "--state-dir", str(state),
                     "--id", "holder", "--", "sleep", "1000"], tmp_path / "holder.log")
    holder.wait_log("state queued -> running")
    waiter = Zkherd(["run", "--zk", zk_server.hosts, "--lock", lock, "--state-dir", str(state), "--", "sleep",
                     "1000"], tmp_path / "waiter.log")
    waiter.wait_log("queued for lock")
    held = wait_report(state, holder.pid, lambda r: r["state"] == "running")
    assert held["lock"]["held"] is True and isinstance(held["lock"]["token"], int)
    assert held["child"]["pid"] == holder.child_pid and held["argv"]["id"] == "holder"
    assert held["session"]["state"] == "connected" and held["session"]["session_id"].startswith("0x")
    assert (held["fenced"], held["drained"], held["stale"], held["command"]) == (False, [], False, "run")
    queued = wait_report(state, waiter.pid, lambda r: (r["lock"] or {}).get("queued_place") == 1)
    assert queued["state"] == "queued" and queued["lock"]["held"] is False and queued["child"] is None
    assert oct((state / ("zkherd-%d.json" % holder.pid)).stat().st_mode & 0o777) == "0o644"

    text = subprocess.run([sys.executable, "-m", "zkherd", "status", "--local", "--state-dir", str(state)], cwd=REPO,
                          capture_output=True, text=True, timeout=30, check=False)
    assert text.returncode == 0 and "held, token" in text.stdout and "queued, place 1" in text.stdout, text.stdout

    (state / "zkherd-1.json").write_text(json.dumps(dict(held, pid=1)))
    os.chmod(state / "zkherd-1.json", 0o666)  # anyone could have written it
    (state / "zkherd-2.json").symlink_to(state / ("zkherd-%d.json" % holder.pid))
    (state / "zkherd-3.json").write_text("{not json")
    result = local(state)
    assert "zkherd-1.json: file is writable by group or others" in result.stderr, result.stderr
    assert "zkherd-2.json: a symbolic link" in result.stderr and "zkherd-3.json: not JSON" in result.stderr
    assert {r["pid"] for r in json.loads(result.stdout)} == {holder.pid, waiter.pid}

    proxy.blackhole()
    # kazoo may still call the connection up when the fence acts (it acts on the last answer's age)
    wait_report(state, holder.pid, lambda r: r["fenced"] is True and r["child"] is None)
    holder.kill()
    stale = wait_report(state, holder.pid, lambda r: r["stale"] is True)
    assert "is gone" in stale["stale_why"]
    waiter.signal(signal.SIGTERM)
    assert waiter.wait() == 143
    assert not (state / ("zkherd-%d.json" % waiter.pid)).exists()  # a clean exit removes its file


def test_nothing_found_is_66_and_local_with_paths_is_64(tmp_path):
    assert local(tmp_path / "none").returncode == 66
    both = subprocess.run([sys.executable, "-m", "zkherd", "status", "--local", "/x"], cwd=REPO,
                          capture_output=True, text=True, timeout=30, check=False)
    assert both.returncode == 64 and "not both" in both.stderr
