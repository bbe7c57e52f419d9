"""Review 16b (metrics and state files): attacks on the fixes of the first metrics review."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from tests.integration.test_metrics import runner, wait_metric
from tests.support.runner import REPO
from tests.support.scrape import free_port, parse, scrape, value
from tests.support.zkutil import wait_for


def cron(hosts, election, metrics, tmp_path, *job, popen=False, extra=()):
    args = [sys.executable, "-m", "zkherd", "cron", "--zk", hosts, "--election", election, "--id", "h0",
            "--timeout", "10", "--name", "job", "--tick", "3600", "--metrics-file", str(metrics),
            "--state-dir", "", *extra, "--", *job]
    env = dict(os.environ, ZKHERD_RUN_DIR=str(tmp_path))
    if popen:
        return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60, check=False, env=env)


def test_a_busy_cron_run_is_not_lost_by_the_run_it_overlapped(zk_server, zk, zk_base, tmp_path):
    """Two cron runs of one job overlap (the second finds the local flock held: "busy"). Each read
    the metrics file at its start: the long one writes its own counters at its end and the busy
    count the short one wrote is gone - zkherd_cron_runs_total{outcome="busy"} goes 1 -> absent (a
    counter going backwards, seen by Prometheus as a reset)."""
    election, metrics = zk_base + "/cron", tmp_path / "cron.prom"
    zk.create(election + "/member-", b"h0", ephemeral=True, sequence=True, makepath=True)
    marker = tmp_path / "started"
    first = cron(zk_server.hosts, election, metrics, tmp_path, "sh", "-c", "touch %s; sleep 4" % marker, popen=True)
    wait_for(marker.exists, 20, message="the first run's job started")
    second = cron(zk_server.hosts, election, metrics, tmp_path, "true")
    assert second.returncode == 75, second.stderr
    assert value(parse(metrics.read_text()), "zkherd_cron_runs_total", outcome="busy") == 1
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    samples = parse(metrics.read_text())
    assert value(samples, "zkherd_cron_runs_total", outcome="ok") == 1
    assert value(samples, "zkherd_cron_runs_total", outcome="busy") == 1, "the busy run's count was lost"


def test_a_run_that_waited_for_the_local_lock_keeps_the_count_of_the_run_before(zk_server, zk, zk_base, tmp_path):
    """--if-running wait: the second run reads the metrics file at its start (before it waits on
    the flock), so what the first run wrote at its end is overwritten by the second's stale copy:
    cron_runs_total{outcome="ok"} 1 (first) -> absent; the second (same tick) adds skipped=1 to zero."""
    election, metrics = zk_base + "/cron", tmp_path / "cron.prom"
    zk.create(election + "/member-", b"h0", ephemeral=True, sequence=True, makepath=True)
    marker = tmp_path / "started"
    first = cron(zk_server.hosts, election, metrics, tmp_path, "sh", "-c", "touch %s; sleep 3" % marker, popen=True)
    wait_for(marker.exists, 20, message="the first run's job started")
    second = cron(zk_server.hosts, election, metrics, tmp_path, "true", popen=True, extra=("--if-running", "wait"))
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err  # it wrote ok=1 at its end (the second may already have overwritten it)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    samples = parse(metrics.read_text())
    assert value(samples, "zkherd_cron_runs_total", outcome="skipped") == 1
    assert value(samples, "zkherd_cron_runs_total", outcome="ok") == 1, "the first run's count was lost"


def test_eight_slow_clients_keep_the_metrics_listener_from_everyone_else(zk_server, zk_base, tmp_path):
    """The idle timeout is per recv(), not per request: a client that sends one byte of its request
    line every 2 s is never silent for 5 s and keeps its slot for as long as it likes (a request
    line may be 64 KiB). Eight of them hold all MAX_CLIENTS slots: every scrape is closed at once."""
    port = free_port()
    r = runner(zk_server.hosts, port, tmp_path, "slow", "--lock", zk_base + "/l", "--", "sleep", "1000")
    try:
        wait_metric(port, "zkherd_lock_held", 1)
        stop = threading.Event()
        socks = []
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"G")
            socks.append(sock)

        def trickle():
            while not stop.wait(2.0):
                for sock in socks:
                    try:
                        sock.sendall(b"E")
                    except OSError:
                        pass
        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        try:
            time.sleep(8.0)  # past the 5 s idle timeout
            got = [bool(scrape(port)) for _ in range(5)]
        finally:
            stop.set()
            thread.join()
            for sock in socks:
                sock.close()
        assert any(got), "8 slow clients (one byte every 2 s) shut every scrape out after the 5 s timeout"
    finally:
        r.signal(signal.SIGTERM)
        r.wait()


def metrics_runner(hosts, tmp_path, name, path, *extra, prefix=()):
    from tests.support.runner import Zkherd
    return Zkherd(["run", "--zk", hosts, "--metrics-file", str(path), "--state-dir", "", *extra, "--", "sleep", "1000"],
                  tmp_path / ("%s.log" % name), prefix=prefix)


def test_a_refused_metrics_folder_fixed_later_is_written_then(zk_server, zk_base, tmp_path):
    folder = tmp_path / "prom"
    folder.mkdir()
    folder.chmod(0o777)
    path = folder / "z.prom"
    r = metrics_runner(zk_server.hosts, tmp_path, "refused", path, "--lock", zk_base + "/l")
    try:
        r.wait_log("cannot write the metrics file")
        assert not path.exists()
        folder.chmod(0o755)
        wait_for(path.exists, 15, message="the metrics file after the folder was fixed")
        assert value(parse(path.read_text()), "zkherd_lock_held") == 1
    finally:
        r.signal(signal.SIGTERM)
        r.wait()
    assert "Traceback" not in r.log()


def _mount_tiny(folder):
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(folder)],
                      capture_output=True, check=False).returncode != 0:
        import pytest
        pytest.skip("cannot mount a tmpfs here")


def test_a_full_disk_leaves_no_temporary_file_and_the_writer_recovers(zk_server, zk_base, tmp_path):
    folder = tmp_path / "tiny"
    _mount_tiny(folder)
    try:
        filler = folder / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)  # the folder is full
        try:
            while True:
                os.write(fd, b"x" * 512)
        except OSError:
            pass
        finally:
            os.close(fd)
        path = folder / "z.prom"
        r = metrics_runner(zk_server.hosts, tmp_path, "full", path, "--lock", zk_base + "/l")
        try:
            r.wait_log("cannot write the metrics file")
            time.sleep(6)  # another try or two
            assert sorted(os.listdir(folder)) == ["filler"], os.listdir(folder)
            filler.unlink()
            wait_for(path.exists, 15, message="the metrics file once there is room")
        finally:
            r.signal(signal.SIGTERM)
            r.wait()
        assert sorted(os.listdir(folder)) == ["z.prom"], os.listdir(folder)
        assert "Traceback" not in r.log()
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_temporary_files_of_writers_killed_half_way_do_not_pile_up(zk_server, zk_base, tmp_path):
    """A SIGKILL between the temporary file's creation and its rename leaves .NAME.RANDOM.tmp; its
    name is random, so no later write reuses or removes it: one more file per such kill, forever
    (the old PATH.tmp of a fixed name was at most one). strace makes fsync slow to hit the window."""
    if subprocess.run(["strace", "-V"], capture_output=True, check=False).returncode != 0:
        import pytest
        pytest.skip("no strace")
    folder = tmp_path / "prom"
    folder.mkdir(mode=0o755)
    path = folder / "z.prom"
    for i in range(3):
        r = metrics_runner(zk_server.hosts, tmp_path, "killed%d" % i, path,
                           prefix=["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync",
                                   "-e", "inject=fsync:delay_enter=3000000"])
        wait_for(lambda i=i: len([n for n in os.listdir(folder) if n.endswith(".tmp")]) > i, 20,
                 message="a temporary file")
        with open("/proc/%d/task/%d/children" % (r.pid, r.pid)) as f:
            children = f.read().split()
        for child in children:
            os.kill(int(child), signal.SIGKILL)
        r.proc.wait(10)
    left = sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))
    assert len(left) <= 1, "temporary files left by killed writers pile up: %s" % left


def test_a_clean_exit_while_cut_off_shows_the_lock_released(zk_server, zk_base, fault_proxy, tmp_path):
    """docs/operations.md: "the metrics file written on a clean exit (SIGTERM) shows the lock
    released". Holding.release() returns at once when not connected (held stays True), so a
    SIGTERM while ZooKeeper is unreachable leaves lock_held 1 and no release in the last file."""
    proxy = fault_proxy()
    folder = tmp_path / "prom"
    folder.mkdir(mode=0o755)
    path = folder / "z.prom"
    r = metrics_runner(proxy.hosts, tmp_path, "cut", path, "--session-timeout", "10", "--lock", zk_base + "/l")
    wait_for(lambda: path.exists() and value(parse(path.read_text()), "zkherd_lock_held") == 1, 20,
             message="the lock held in the file")
    proxy.blackhole()
    wait_for(lambda: value(parse(path.read_text()), "zkherd_session_connected") == 0, 20,
             message="the file says we are cut off")
    r.signal(signal.SIGTERM)
    r.wait(30)
    samples = parse(path.read_text())
    assert (value(samples, "zkherd_lock_held"), value(samples, "zkherd_lock_releases_total")) == (0, 1), r.log()[-2000:]


def test_a_state_folder_removed_or_swapped_for_a_link_while_running(zk_server, zk_base, tmp_path):
    """The state folder is opened again for every write: removed, it is made again; swapped for a
    link to another folder, nothing is written through the link."""
    import shutil

    from tests.support.runner import Zkherd
    state = tmp_path / "state"
    r = Zkherd(["run", "--zk", zk_server.hosts, "--state-dir", str(state), "--lock", zk_base + "/l", "--",
                "sleep", "1000"], tmp_path / "state.log")
    try:
        wait_for(lambda: state.exists() and any(n.endswith(".json") for n in os.listdir(state)), 20,
                 message="the state file")
        shutil.rmtree(state)
        wait_for(lambda: state.exists() and any(n.endswith(".json") for n in os.listdir(state)), 15,
                 message="the state file again in a new folder")
        shutil.rmtree(state)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o755)
        state.symlink_to(elsewhere)
        time.sleep(7)
        assert os.listdir(elsewhere) == []
        assert r.has("symbolic link")
    finally:
        r.signal(signal.SIGTERM)
        r.wait()
    assert "Traceback" not in r.log()
