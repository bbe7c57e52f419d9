"""Shared fixtures: real ZooKeeper servers and clients (logic lives in tests/support)."""

import itertools
import re
import sys
from pathlib import Path

import pytest

# Import style for all suites: `from tests.support... import ...`. The repo
# root is not on sys.path under a bare `pytest` or with importmode=importlib.
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from kazoo.client import KazooClient  # noqa: E402

from tests.support import zkutil  # noqa: E402
from tests.support.faultproxy import FaultProxy  # noqa: E402
from tests.support.zkserver import ZooKeeperEnsemble, ZooKeeperServer  # noqa: E402

# Per-test base paths live under this znode; see zk_base.
TEST_ROOT = "/t"
_base_counter = itertools.count(1)


@pytest.fixture(scope="session")
def zk_server(tmp_path_factory):
    """One standalone server for the whole session. Do not stop it in tests;
    use make_zk_server for a private one."""
    server = ZooKeeperServer(tmp_path_factory.mktemp("zk-standalone"), jvm_props=zkutil.superuser_props())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_zk_server(tmp_path):
    """Factory for private servers (kwargs as ZooKeeperServer); started, stopped after the test."""
    servers = []

    def make(**kwargs) -> ZooKeeperServer:
        server = ZooKeeperServer(tmp_path / f"zk{len(servers)}", **kwargs)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def _zk_ensemble(tmp_path_factory):
    ensemble = ZooKeeperEnsemble(3, tmp_path_factory.mktemp("zk-ensemble")).start()
    yield ensemble
    ensemble.close()


@pytest.fixture
def zk_ensemble(_zk_ensemble):
    """The session's 3-member ensemble, started on first use. Members an
    earlier test stopped or killed are restarted first."""
    _zk_ensemble.ensure_all_running()
    return _zk_ensemble


@pytest.fixture
def make_zk(zk_server):
    """Factory for started kazoo clients (default hosts: zk_server); stopped after the test."""
    clients = []

    def make(hosts: str | None = None, *, start: bool = True, **kwargs) -> KazooClient:
        client = KazooClient(hosts=hosts or zk_server.hosts, **kwargs)
        clients.append(client)
        if start:
            client.start(timeout=10)
        return client

    yield make
    for client in clients:
        client.stop()
        client.close()


@pytest.fixture(scope="session")
def zk_admin(zk_server):
    """Superuser client to zk_server (ignores ACLs), shared by the session:
    for inspection and cleanup, independent of what tests do to their clients."""
    client = KazooClient(hosts=zk_server.hosts, auth_data=[("digest", zkutil.SUPER_CREDENTIAL)])
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def zk(make_zk, zk_admin):
    """A connected kazoo client to zk_server. Fails the test (at teardown) if
    it leaves znodes outside TEST_ROOT; those are deleted."""
    before = zkutil.list_tree(zk_admin)
    yield make_zk()
    leftovers = zkutil.leftover_znodes(zk_admin, before, ignore=[TEST_ROOT])
    if leftovers:
        zkutil.remove_znodes(zk_admin, leftovers)
        pytest.fail(f"test left znodes outside {TEST_ROOT}: {leftovers}", pytrace=False)


@pytest.fixture
def zk_base(request, zk_admin):
    """A fresh znode like /t/test_name-3 for the test's data; deleted recursively after."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:80]
    path = f"{TEST_ROOT}/{name}-{next(_base_counter)}"
    zk_admin.create(path, makepath=True)
    yield path
    try:  # a server that died (see its zookeeper.log) fails the teardown here, not a hang in delete()
        zk_admin.exists_async(path).get(timeout=30)
    except zk_admin.handler.timeout_exception:
        pytest.fail("the test ZooKeeper server did not answer the cleanup of %s within 30 s" % path, pytrace=False)
    zk_admin.delete(path, recursive=True)


@pytest.fixture
def fault_proxy(zk_server, make_zk):
    """Factory: fault_proxy(target=None) -> FaultProxy in front of target
    (default zk_server); all closed after the test."""
    # make_zk is requested so that it is torn down after us: clients then
    # stop against a closed port instead of stalling behind a blackhole.
    proxies = []

    def make(target: str | None = None) -> FaultProxy:
        proxy = FaultProxy(target or zk_server.hosts)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
