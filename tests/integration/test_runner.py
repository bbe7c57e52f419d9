"""`zkherd run` against a real ZooKeeper: the zkdo scenario, exit codes, signals, the child's
environment, --no-wait/--wait-timeout, --slots, config file, usage errors."""

from __future__ import annotations

import json
import signal
import time

from tests.support import procs
from tests.support.runner import Zkherd, exclusive_child, overlaps, starts, wait_starts
from tests.support.zkutil import wait_for


def run_args(hosts, *extra):
    return ["run", "--zk", hosts, "--session-timeout", "2", "--stop-timeout", "2", *extra]


def test_zkdo_scenario_lock_takeover_and_registration(zk_server, zk, zk_base, tmp_path):
    """The seed's example: the second runner waits, takes over when the first stops; each is
    registered (ephemeral sequential node with its data) exactly while its command runs."""
    lock, services = zk_base + "/locks/myservice", zk_base + "/services/myservice"

    def runner(name, port):
        data = json.dumps({"host": name, "port": port})
        return Zkherd(run_args(zk_server.hosts, "--lock", lock, "--register", services, "--data", data, "--",
                               *exclusive_child(tmp_path / "w", name=name)), tmp_path / (name + ".log"))

    first = runner("first", 7777)
    wait_starts(tmp_path / "w", 1)  # its command runs (and traps SIGTERM)
    second = runner("second", 7778)
    second.wait_log("queued for lock")
    time.sleep(0.5)
    assert not second.has("started child")
    registered = zk.get_children(zk_base + "/services")
    assert len(registered) == 1 and registered[0].startswith("myservice")
    assert json.loads(zk.get(zk_base + "/services/" + registered[0])[0]) == {"host": "first", "port": 7777}

    first.signal(signal.SIGTERM)
    assert first.wait() == 0  # the child's own exit code: it exits 0 on SIGTERM
    wait_starts(tmp_path / "w", 2, timeout=5)
    registered = zk.get_children(zk_base + "/services")
    assert len(registered) == 1
    assert json.loads(zk.get(zk_base + "/services/" + registered[0])[0])["host"] == "second"
    second.stop()
    assert second.proc.returncode == 0
    assert zk.get_children(zk_base + "/services") == []
    assert zk.get_children(lock) == []  # nothing left behind
    assert overlaps(tmp_path / "w") == []
    assert [line.split()[1] for line in starts(tmp_path / "w")] == ["first", "second"]


def test_exit_codes(zk_server, tmp_path):
    code = Zkherd(run_args(zk_server.hosts, "--", "sh", "-c", "exit 3"), tmp_path / "a.log")
    assert code.wait() == 3
    killed = Zkherd(run_args(zk_server.hosts, "--", "sh", "-c", "kill -USR1 $$"), tmp_path / "b.log")
    assert killed.wait() == 128 + signal.SIGUSR1
    missing = Zkherd(run_args(zk_server.hosts, "--", "/nonexistent/cmd"), tmp_path / "c.log")
    assert missing.wait() == 127
    assert "cannot start /nonexistent/cmd" in missing.log()


def test_signals_are_forwarded_and_stop_escalates(zk_server, tmp_path):
    out = tmp_path / "got"
    script = ('trap "echo HUP >>%s" HUP; trap "echo USR1 >>%s" USR1; trap "echo TERM-ignored >>%s" TERM; '
              'echo ready >>%s; while :; do sleep 0.05; done') % (out, out, out, out)
    runner = Zkherd(run_args(zk_server.hosts, "--stop-timeout", "0.5", "--", "sh", "-c", script), tmp_path / "r.log")
    wait_for(lambda: out.exists() and "ready" in out.read_text())
    runner.signal(signal.SIGHUP)
    runner.signal(signal.SIGUSR1)
    wait_for(lambda: "HUP" in out.read_text() and "USR1" in out.read_text())
    assert runner.proc.poll() is None  # forwarded signals do not stop anything
    runner.signal(signal.SIGTERM)
    assert runner.wait() == 128 + signal.SIGKILL  # TERM ignored, so SIGKILL after --stop-timeout
    assert "TERM-ignored" in out.read_text()
    assert runner.has("did not stop in time, sending SIGKILL")


def test_child_dies_with_a_sigkilled_runner(zk_server, tmp_path):
    runner = Zkherd(run_args(zk_server.hosts, "--", "sleep", "1000"), tmp_path / "r.log")
    runner.wait_log("started child")
    child = runner.child_pid
    assert procs.pid_alive(child)
    runner.kill()
    wait_for(lambda: not procs.pid_alive(child), timeout=5, message="the child to die with its runner")


def test_child_environment(zk_server, zk, zk_base, tmp_path):
    env_file = tmp_path / "env"
    runner = Zkherd(run_args(zk_server.hosts, "--lock", zk_base + "/l", "--register", zk_base + "/reg/r", "--",
                             "sh", "-c", "env > %s; sleep 1000" % env_file), tmp_path / "r.log",
                    env={"ZKHERD_AUTH": "user:secret-password"})
    wait_for(lambda: env_file.exists() and "ZKHERD_REGISTERED_PATH" in env_file.read_text())
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    assert env["ZKHERD_LOCK_PATH"].startswith(zk_base + "/l/lock-")
    assert zk.exists(env["ZKHERD_LOCK_PATH"])
    assert int(env["ZKHERD_FENCING_TOKEN"]) > 0
    assert env["ZKHERD_REGISTERED_PATH"].startswith(zk_base + "/reg/r") and zk.exists(env["ZKHERD_REGISTERED_PATH"])
    assert "ZKHERD_AUTH" not in env
    runner.stop()
    assert "secret-password" not in runner.log()


def test_fencing_token_grows_with_each_holder(zk_server, zk_base, tmp_path):
    tokens = []
    for name in ("a", "b", "c"):
        env_file = tmp_path / name
        runner = Zkherd(run_args(zk_server.hosts, "--lock", zk_base + "/l", "--",
                                 "sh", "-c", "echo $ZKHERD_FENCING_TOKEN > %s" % env_file), tmp_path / (name + ".log"))
        assert runner.wait() == 0
        tokens.append(int(env_file.read_text()))
    assert tokens == sorted(tokens) and len(set(tokens)) == 3


def test_no_wait_and_wait_timeout_exit_75(zk_server, zk, zk_base, tmp_path):
    lock = zk_base + "/l"
    holder = Zkherd(run_args(zk_server.hosts, "--lock", lock, "--", "sleep", "1000"), tmp_path / "h.log")
    holder.wait_log("started child")
    no_wait = Zkherd(run_args(zk_server.hosts, "--lock", lock, "--no-wait", "--", "true"), tmp_path / "n.log")
    assert no_wait.wait() == 75
    start = time.monotonic()
    timed = Zkherd(run_args(zk_server.hosts, "--lock", lock, "--wait-timeout", "1", "--", "true"), tmp_path / "t.log")
    assert timed.wait() == 75
    assert 1.0 <= time.monotonic() - start < 6
    assert timed.has("not obtained within --wait-timeout")
    assert len(zk.get_children(lock)) == 2  # the holder's lock- and run- nodes only
    holder.stop()


def test_slots(zk_server, zk_base, tmp_path):
    work = tmp_path / "w"
    runners = [Zkherd(run_args(zk_server.hosts, "--lock", zk_base + "/l", "--slots", "2", "--",
                               *exclusive_child(work, slots=2, name="r%d" % i)), tmp_path / ("r%d.log" % i))
               for i in range(3)]
    wait_starts(work, 2)
    time.sleep(0.5)
    assert len(starts(work)) == 2  # the third waits
    running = [r for r in runners if r.has("started child")]
    running[0].stop()
    wait_starts(work, 3)
    for runner in runners:
        runner.stop()
    assert overlaps(work) == []


def test_config_file_and_command_line_precedence(zk_server, zk, zk_base, tmp_path):
    marker = tmp_path / "ran"
    config = tmp_path / "svc.yml"
    config.write_text("zk: 127.0.0.1:1\nsession-timeout: 2\nlock: %s/l\n"
                      "command: [sh, -c, 'echo $ZKHERD_LOCK_PATH > %s']\n" % (zk_base, marker))
    runner = Zkherd(["run", "--config", str(config), "--zk", zk_server.hosts], tmp_path / "r.log")
    assert runner.wait() == 0
    assert marker.read_text().startswith(zk_base + "/l/lock-")


def test_json_logs(zk_server, tmp_path):
    runner = Zkherd(run_args(zk_server.hosts, "--log-format", "json", "--", "true"), tmp_path / "r.log")
    assert runner.wait() == 0
    records = [json.loads(line) for line in runner.log().splitlines()]
    assert {"ts", "level", "msg", "pid"} <= set(records[0])
    assert any(r["msg"] == "child exited" and r["code"] == 0 for r in records)


def test_usage_errors_exit_64(zk_server, tmp_path):
    cases = {
        "no command": ["run", "--zk", zk_server.hosts],
        "bad slots": ["run", "--lock", "/l", "--slots", "0", "--", "true"],
        "slots without lock": ["run", "--slots", "2", "--", "true"],
        "relative lock": ["run", "--lock", "locks/x", "--", "true"],
        "unknown option": ["run", "--frobnicate", "--", "true"],
        "bad signal": ["run", "--stop-signal", "SIGNOPE", "--", "true"],
        "no subcommand": [],
        "bad hosts": ["run", "--zk", "h:notaport", "--", "true"],
    }
    for name, args in cases.items():
        runner = Zkherd(args, tmp_path / (name.replace(" ", "_") + ".log"))
        assert runner.wait() == 64, "%s: %s" % (name, runner.log())
    bad_config = tmp_path / "bad.yml"
    bad_config.write_text("lock: /l\nlokc: typo\n")
    runner = Zkherd(["run", "--config", str(bad_config), "--", "true"], tmp_path / "cfg.log")
    assert runner.wait() == 64 and "zkherd run takes no option(s) lokc" in runner.log()


def test_unreachable_zookeeper_exits_69(tmp_path):
    start = time.monotonic()
    runner = Zkherd(["run", "--zk", "127.0.0.1:1", "--connect-timeout", "2.5", "--", "true"], tmp_path / "r.log")
    assert runner.wait() == 69
    assert time.monotonic() - start < 8
    assert runner.has("ZooKeeper is not reachable yet, retrying")
    assert runner.has("cannot connect to ZooKeeper at 127.0.0.1:1 within 2.5 s")


def test_denied_by_acl_exits_77(zk_server, zk, zk_base, tmp_path):
    from kazoo.security import make_digest_acl

    zk.create(zk_base + "/locked", b"", acl=[make_digest_acl("owner", "pw", all=True)])
    runner = Zkherd(run_args(zk_server.hosts, "--lock", zk_base + "/locked/l", "--", "true"), tmp_path / "r.log",
                    env={"ZKHERD_AUTH": "intruder:wrong"})
    assert runner.wait() == 77
    assert runner.has("not authorized")
