"""The zookeeper role's dynamic reconfiguration on real local servers: three servers started from
the zoo.cfg and dynamic file the role's templates write (the role's vars computing every server
line), a fourth added through the role's own reconfig step (files/zk_reconfig.py, as
tasks/reconfig.yml runs it) and then one removed, while a kazoo client keeps its session and
writes; a change that could lose the quorum is refused with a clear message. The role on systemd
boxes, with zkherd runners keeping their sessions: molecule (scripts/molecule.sh)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys

import pytest
import yaml
from kazoo.client import KazooClient, KazooState

from tests.support.playbook import REPO
from tests.support.zkserver import ZooKeeperServer, free_port

ROLE = REPO / "roles" / "zookeeper"
PASSWORD = "reconfig-test-secret"
SUPER_DIGEST = "super:" + base64.b64encode(hashlib.sha1(b"super:" + PASSWORD.encode()).digest()).decode()


def render(tmp_path, hosts, absent=()):
    """Each host's zoo.cfg, dynamic file and the role's member list (JSON), rendered by
    ansible-playbook from the role's templates and vars with an inventory group `zookeeper`."""
    inventory = {"all": {"vars": dict(yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()),
                                      zookeeper_address="127.0.0.1", ansible_connection="local",
                                      ansible_python_interpreter=sys.executable),
                         "children": {"zookeeper": {"hosts": {
                             name: dict(ports, zookeeper_id=int(name[2:]), zookeeper_conf_dir=str(tmp_path / name),
                                        zookeeper_state="absent" if name in absent else "present")
                             for name, ports in hosts.items()}}}}}
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    tasks = [
        {"name": "Folder", "ansible.builtin.file": {"path": "{{ zookeeper_conf_dir }}", "state": "directory"}},
        {"name": "Static", "ansible.builtin.template": {
            "src": str(ROLE / "templates" / "zoo.cfg.j2"), "dest": "{{ zookeeper_conf_dir }}/role-zoo.cfg"}},
        {"name": "Dynamic", "ansible.builtin.template": {
            "src": str(ROLE / "templates" / "zoo.cfg.dynamic.j2"), "dest": "{{ _zookeeper_dynamic_file }}"}},
        {"name": "Members", "ansible.builtin.copy": {"content": "{{ _zookeeper_servers | to_json }}",
                                                     "dest": "{{ zookeeper_conf_dir }}/members.json"}}]
    play = [{"hosts": "zookeeper", "gather_facts": False, "vars": role_vars, "tasks": tasks}]
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    run = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
                          str(tmp_path / "play.yml")], cwd=REPO, capture_output=True, text=True, timeout=300,
                         check=False, env={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "LANG": "C.UTF-8",
                                           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stdout + run.stderr


def static_cfg(tmp_path, name):
    text = (tmp_path / name / "role-zoo.cfg").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#")


def reconfig(tmp_path, name, hosts, password=PASSWORD, join_wait="60", extra=()):
    return subprocess.run([sys.executable, str(ROLE / "files" / "zk_reconfig.py"), "--hosts", hosts, "--members",
                           (tmp_path / name / "members.json").read_text(), "--timeout", "60",
                           "--join-wait", join_wait, *extra],
                          input=password, capture_output=True, text=True, timeout=120, check=False)


def zk_mode(port, *args):
    return subprocess.run([sys.executable, str(ROLE / "files" / "zk_mode.py"), "127.0.0.1", str(port), *args],
                          capture_output=True, text=True, timeout=120, check=False)


def members(client):
    return sorted(line.split("=")[0] for line in client.get("/zookeeper/config")[0].decode().splitlines()
                  if line.startswith("server."))


@pytest.fixture
def servers(tmp_path):
    started = {}

    def start(name, ports, wait=True):
        cfg = static_cfg(tmp_path, name)
        assert "reconfigEnabled" in cfg and not any(key.startswith("server.") for key in cfg)
        server = ZooKeeperServer(tmp_path / (name + "-run"), port=ports["zookeeper_client_port"],
                                 myid=int(name[2:]), jvm_props={
                                     "zookeeper.DigestAuthenticationProvider.superDigest": SUPER_DIGEST})
        server.cfg = dict(cfg, dataDir=str(server.data_dir), tickTime=200, initLimit=50, syncLimit=25,
                          forceSync="no")
        server.launch() if not wait else server.start(60)
        started[name] = server
        return server

    yield start
    for server in started.values():
        server.stop()


def test_grow_and_shrink_keep_the_quorum_and_the_session(tmp_path, servers):
    ports = {"zk%d" % i: {"zookeeper_client_port": free_port(), "zookeeper_quorum_port": free_port(),
                          "zookeeper_election_port": free_port()} for i in range(1, 5)}
    three = {name: ports[name] for name in ("zk1", "zk2", "zk3")}
    render(tmp_path, three)
    dynamic = (tmp_path / "zk1" / "zoo.cfg.dynamic").read_text()
    zk2 = ports["zk2"]
    assert "server.2=127.0.0.1:%(zookeeper_quorum_port)d:%(zookeeper_election_port)d:participant;127.0.0.1:" \
        "%(zookeeper_client_port)d" % zk2 in dynamic
    for name, server_ports in three.items():
        servers(name, server_ports, wait=False)
    hosts = ",".join("127.0.0.1:%d" % p["zookeeper_client_port"] for p in three.values())
    for name in three:
        assert zk_mode(ports[name]["zookeeper_client_port"], "120").returncode == 0

    states = []
    client = KazooClient(hosts=hosts, timeout=10)
    client.add_listener(states.append)
    client.start(timeout=60)
    session = client.client_id[0]
    client.create("/grow", b"0")
    assert members(client) == ["server.1", "server.2", "server.3"]
    assert json.loads(reconfig(tmp_path, "zk1", hosts).stdout)["changed"] is False  # as the group: nothing to do

    # Grow: zk4 starts with the current ensemble plus itself, then joins by reconfig -add.
    render(tmp_path, ports)
    servers("zk4", ports["zk4"], wait=False)
    grown = reconfig(tmp_path, "zk4", hosts)
    assert grown.returncode == 0, grown.stdout + grown.stderr
    assert json.loads(grown.stdout)["joining"] == [4]
    assert zk_mode(ports["zk4"]["zookeeper_client_port"], "120", "--mode", "follower").returncode == 0
    leader = [n for n in ports if zk_mode(ports[n]["zookeeper_client_port"]).stdout.strip() == "leader"]
    synced = zk_mode(ports[leader[0]]["zookeeper_client_port"], "60", "--synced", "3")
    assert synced.returncode == 0, synced.stdout
    client.set("/grow", b"4")
    assert members(client) == ["server.1", "server.2", "server.3", "server.4"]

    # A change that could lose the quorum is refused, nothing changes.
    render(tmp_path, ports, absent=("zk1", "zk2", "zk3"))
    refused = reconfig(tmp_path, "zk4", hosts)
    assert refused.returncode == 1 and "refusing to remove servers [1, 2, 3]" in refused.stdout, refused.stdout
    assert members(client) == ["server.1", "server.2", "server.3", "server.4"]

    # Shrink: zk1 leaves by reconfig -remove, then stops.
    render(tmp_path, ports, absent=("zk1",))
    shrunk = reconfig(tmp_path, "zk2", hosts)
    assert shrunk.returncode == 0 and json.loads(shrunk.stdout)["leaving"] == [1], shrunk.stdout
    servers_left = {n: ports[n] for n in ("zk2", "zk3", "zk4")}
    assert members(client) == ["server.2", "server.3", "server.4"]
    client.set("/grow", b"3")
    assert client.client_id[0] == session
    assert KazooState.LOST not in states, states
    for name in servers_left:
        assert zk_mode(ports[name]["zookeeper_client_port"], "60").returncode == 0
    client.stop()
    client.close()
