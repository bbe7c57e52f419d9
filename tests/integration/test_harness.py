"""Tests of the test harness itself (tests/support) against real ZooKeeper."""

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, NoAuthError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState
from kazoo.retry import KazooRetry
from kazoo.security import make_digest_acl

from tests.support import procs
from tests.support.zkserver import four_letter_word, free_port
from tests.support.zkutil import StateLog, expire_session, leftover_znodes, list_tree, remove_znodes, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


def _retrying(func, *args, **kwargs):
    """Run a kazoo call across a failover: retry connection errors for up to 15 s."""
    return KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5, deadline=15)(func, *args, **kwargs)


def _median_get_time(client, path: str) -> float:
    times = []
    for _unused in range(3):
        start = time.monotonic()
        client.get(path)
        times.append(time.monotonic() - start)
    return sorted(times)[1]


# -- servers ---------------------------------------------------------------


def test_standalone_serves_kazoo(zk_server, zk, zk_base):
    assert zk_server.ruok()
    assert zk_server.mode() == "standalone"
    zk.create(f"{zk_base}/a", b"hello")
    assert zk.get(f"{zk_base}/a")[0] == b"hello"
    assert list_tree(zk, zk_base) == [f"{zk_base}/a"]


def test_admin_is_superuser_so_cleanup_ignores_acls(make_zk, zk_admin, zk_base):
    alice = make_zk(auth_data=[("digest", "alice:pw")])
    locked = alice.create(f"{zk_base}/locked", acl=[make_digest_acl("alice", "pw", all=True)])
    alice.create(f"{locked}/child")
    with pytest.raises(NoAuthError):
        make_zk().get_children(locked)
    assert list_tree(zk_admin, zk_base) == [locked, f"{locked}/child"]
    # zk_base's teardown deletes both through zk_admin.


def test_short_sessions_are_allowed(zk_server, make_zk):
    client = make_zk(timeout=1.0)
    session_id = client.client_id[0]
    conns = zk_server.four_letter("cons")
    line = next(line for line in conns.splitlines() if f"sid=0x{session_id:x}" in line)
    assert re.search(r"\bto=1000\b", line), line


def test_stop_restart_and_crash_keep_data(make_zk_server, make_zk):
    server = make_zk_server()
    port = server.port
    client = make_zk(server.hosts)
    client.create("/persist", b"v1")
    client.stop()

    server.stop()
    assert not server.running and not server.ruok()
    server.start()
    assert server.port == port
    assert make_zk(server.hosts).get("/persist")[0] == b"v1"

    server.kill()  # crash: no clean shutdown
    server.start()
    assert make_zk(server.hosts).get("/persist")[0] == b"v1"


def test_tls_secure_client_port(make_zk_server, make_zk, tmp_path):
    pytest.importorskip("cryptography")
    from tests.support.tls import make_tls_files

    files = make_tls_files(tmp_path / "tls")
    server = make_zk_server(keystore=files.keystore, truststore=files.cert, ssl_client_auth="none")
    client = make_zk(server.secure_hosts, use_ssl=True, ca=str(files.cert))
    client.create("/tls", b"secret")
    assert client.get("/tls")[0] == b"secret"


def test_ensemble_survives_leader_crash(zk_ensemble, make_zk):
    client = make_zk(zk_ensemble.hosts)
    path = client.create("/failover-", b"before", sequence=True)
    old_leader = zk_ensemble.leader()
    assert len(zk_ensemble.followers()) == 2

    index = zk_ensemble.index(old_leader)
    zk_ensemble.kill(index)
    zk_ensemble.wait_healthy(timeout=20)
    assert zk_ensemble.leader() is not old_leader

    _retrying(client.set, path, b"after")
    assert _retrying(client.get, path)[0] == b"after"

    zk_ensemble.restart(index)
    assert old_leader.mode() == "follower"
    client.delete(path)


# -- fault proxy -------------------------------------------------------------


def test_proxy_passthrough(fault_proxy, make_zk, zk_base):
    proxy = fault_proxy()
    client = make_zk(proxy.hosts)
    client.create(f"{zk_base}/p", b"via proxy")
    assert client.get(f"{zk_base}/p")[0] == b"via proxy"
    assert proxy.connection_count == 1


def test_proxy_many_concurrent_connections(fault_proxy):
    proxy = fault_proxy()
    # ZooKeeper allows 60 connections per client IP by default.
    socks = [socket.create_connection(("127.0.0.1", proxy.port), timeout=5) for _unused in range(50)]
    try:
        wait_for(lambda: proxy.connection_count == 50, timeout=5, message="50 proxied connections")
        for sock in socks:
            sock.sendall(b"ruok")
        assert [sock.recv(4) for sock in socks] == [b"imok"] * 50
    finally:
        for sock in socks:
            sock.close()


def test_proxy_delay_adds_latency(fault_proxy, make_zk, zk_base):
    proxy = fault_proxy()
    client = make_zk(proxy.hosts)
    baseline = _median_get_time(client, zk_base)
    proxy.delay(0.15)
    delayed = _median_get_time(client, zk_base)
    assert delayed - baseline >= 0.28  # 0.15 s each way
    proxy.passthrough()
    assert _median_get_time(client, zk_base) < 0.1


def test_proxy_drop_new_spares_existing(fault_proxy, make_zk, zk_base):
    proxy = fault_proxy()
    existing = make_zk(proxy.hosts)
    proxy.drop_new()
    fresh = make_zk(proxy.hosts, start=False, connection_retry={"max_tries": -1, "delay": 0.1})
    with pytest.raises(KazooTimeoutError):
        fresh.start(timeout=1.5)
    assert existing.get(zk_base)[0] == b""
    proxy.heal()
    assert make_zk(proxy.hosts).exists(zk_base)


def test_proxy_blackhole_expires_session(fault_proxy, make_zk, zk, zk_base):
    proxy = fault_proxy()
    client = make_zk(proxy.hosts, timeout=1.5)
    ephemeral = client.create(f"{zk_base}/eph", ephemeral=True)
    states = StateLog(client)

    proxy.blackhole()
    states.wait_for(KazooState.SUSPENDED, timeout=5)
    wait_for(lambda: zk.exists(ephemeral) is None, timeout=10, message="server to expire the partitioned session")
    assert KazooState.LOST not in states.states  # the client cannot know yet

    proxy.heal()
    states.wait_for(KazooState.LOST, timeout=10)
    states.wait_for(KazooState.CONNECTED, timeout=10)
    assert client.exists(zk_base)


def test_proxy_short_blackhole_delivers_held_bytes(fault_proxy, make_zk, zk_base):
    proxy = fault_proxy()
    client = make_zk(proxy.hosts)  # 10 s session: far longer than the partition
    session = client.client_id
    states = StateLog(client)
    proxy.blackhole()
    pending = client.get_async(zk_base)
    time.sleep(0.3)
    assert not pending.ready()
    proxy.heal()
    assert pending.get(timeout=5)[0] == b""
    assert client.client_id == session and states.states == []


def test_proxy_reset_all_keeps_session(fault_proxy, make_zk, zk_base):
    proxy = fault_proxy()
    client = make_zk(proxy.hosts)
    session = client.client_id
    states = StateLog(client)
    proxy.reset_all()
    states.wait_for(KazooState.SUSPENDED, timeout=5)
    states.wait_for(KazooState.CONNECTED, timeout=5)
    assert client.client_id == session
    assert client.exists(zk_base)


def test_proxy_lose_reply_of_a_write_it_forwarded(fault_proxy, make_zk, zk, zk_base):
    """The request reaches the server and is applied; its reply never reaches the client, whose
    connection is reset; the client reconnects to the same session. Replies before it (a
    pipelined read) are delivered; the nth request of a type is the one chosen."""
    proxy = fault_proxy()
    client = make_zk(proxy.hosts)
    session = client.client_id
    states = StateLog(client)
    proxy.lose_reply("create", nth=2)
    client.create(f"{zk_base}/first", b"1")  # the 1st create: answered
    read = client.get_async(zk_base)
    lost = client.create_async(f"{zk_base}/second", b"2")
    assert read.get(timeout=10)[0] == b""
    with pytest.raises(ConnectionLoss):
        lost.get(timeout=10)
    assert proxy.wait_fired(1, timeout=10) and proxy.fired == 1
    assert zk.get(f"{zk_base}/second")[0] == b"2"  # applied by the server all the same
    states.wait_for(KazooState.CONNECTED, timeout=10)
    assert client.client_id == session
    client.create(f"{zk_base}/third")  # fires once: the rule is spent
    assert proxy.fired == 1 and client.exists(f"{zk_base}/third")


def test_proxy_lose_reply_then_no_reconnect(fault_proxy, make_zk, zk, zk_base):
    proxy = fault_proxy()
    client = make_zk(proxy.hosts)
    states = StateLog(client)
    proxy.lose_reply("multi", then="drop_new")
    txn = client.transaction()
    txn.create(f"{zk_base}/a", b"a")
    txn.set_data(zk_base, b"root")
    with pytest.raises(ConnectionLoss):
        txn.commit()
    assert proxy.mode == "drop_new"
    states.wait_for(KazooState.SUSPENDED, timeout=10)
    assert zk.get(f"{zk_base}/a")[0] == b"a" and zk.get(zk_base)[0] == b"root"
    time.sleep(0.5)  # kazoo keeps trying; every try is refused
    assert not client.connected
    proxy.heal()
    states.wait_for(KazooState.CONNECTED, timeout=15)


def test_proxy_hold_after_a_reply_and_before_a_request(fault_proxy, make_zk, zk, zk_base):
    proxy = fault_proxy()
    client = make_zk(proxy.hosts)
    proxy.after_reply("set_data", then="blackhole")
    client.set(zk_base, b"1")  # answered; then the proxy holds everything
    # the reply may reach the client before the proxy's thread has switched: wait for the rule to fire
    assert proxy.wait_fired(1, timeout=10) and proxy.mode == "blackhole"
    held = client.set_async(zk_base, b"2")
    time.sleep(0.3)
    assert not held.ready() and zk.get(zk_base)[0] == b"1"
    proxy.heal()
    assert held.get(timeout=10).version == 2
    proxy.before_request("delete", then="blackhole")
    pending = client.delete_async(zk_base + "/nope")
    assert proxy.wait_fired(2, timeout=10)
    time.sleep(0.3)
    assert not pending.ready()
    proxy.heal()
    with pytest.raises(NoNodeError):
        pending.get(timeout=10)


def test_proxy_close_releases_sockets_and_thread(zk_server):
    from tests.support.faultproxy import FaultProxy

    fds_before = len(os.listdir("/proc/self/fd"))
    proxy = FaultProxy(zk_server.hosts)
    clients = [KazooClient(proxy.hosts) for _unused in range(5)]
    for client in clients:
        client.start(timeout=10)
    assert proxy.connection_count == 5
    proxy.close()
    assert not proxy._thread.is_alive()
    for client in clients:
        client.stop()
        client.close()
    assert len(os.listdir("/proc/self/fd")) <= fds_before


# -- kazoo helpers -------------------------------------------------------------


def test_expire_session(make_zk, zk, zk_base):
    client = make_zk()
    old_session = client.client_id
    ephemeral = client.create(f"{zk_base}/eph", ephemeral=True)
    expire_session(client)
    assert zk.exists(ephemeral) is None
    wait_for(lambda: client.connected, timeout=5, message="client to get a new session")
    assert client.client_id != old_session


def test_leftover_znodes(make_zk):
    client = make_zk()
    before = list_tree(client)
    client.create("/leftover/child", makepath=True)
    assert leftover_znodes(client, before) == ["/leftover", "/leftover/child"]
    assert leftover_znodes(client, before, ignore=["/leftover"]) == []
    remove_znodes(client, ["/leftover/child", "/leftover"])
    assert list_tree(client) == before


def test_wait_for_reports_what_it_waited_for():
    with pytest.raises(AssertionError, match="the impossible"):
        wait_for(lambda: False, timeout=0.1, message="the impossible")
    assert wait_for(lambda: 42, timeout=0.1) == 42


# -- process hygiene -----------------------------------------------------------

_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from tests.support.zkserver import ZooKeeperServer
server = ZooKeeperServer({base!r}).start()
print(server.pid, flush=True)
if {linger!r}:
    time.sleep(600)
"""


@pytest.mark.parametrize("how", ["parent-sigkilled", "parent-exits"])
def test_server_never_outlives_its_parent(tmp_path, how):
    """pdeathsig covers a SIGKILLed parent; atexit covers a normal exit."""
    script = _CHILD.format(root=str(REPO_ROOT), base=str(tmp_path), linger=how == "parent-sigkilled")
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True)
    java_pid = None
    try:
        java_pid = int(parent.stdout.readline())
        if how == "parent-sigkilled":
            assert procs.pid_alive(java_pid)
            parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_for(lambda: not procs.pid_alive(java_pid), timeout=5, message=f"java pid {java_pid} to die")
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
        if java_pid and str(tmp_path) in " ".join(procs.pid_cmdline(java_pid)):
            os.kill(java_pid, signal.SIGKILL)


def test_cli_start_status_stop(tmp_path):
    port = free_port()
    directory = tmp_path / "cli"

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "tests.support.zkserver", *args, "--dir", str(directory)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    try:
        started = cli("start", "--port", str(port))
        assert started.returncode == 0, started.stdout + started.stderr
        assert four_letter_word("127.0.0.1", port, "ruok") == "imok"
        again = cli("start", "--port", str(port))
        assert again.returncode == 0 and "already running" in again.stdout
        assert cli("status").returncode == 0
    finally:
        stopped = cli("stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert cli("status").returncode == 1
    with pytest.raises(OSError):
        four_letter_word("127.0.0.1", port, "ruok")
