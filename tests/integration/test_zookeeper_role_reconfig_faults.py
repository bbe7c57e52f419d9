"""Faults of the zookeeper role's dynamic reconfiguration (review of issue 16b), against real local
servers started from the role's own templates (as test_zookeeper_role_reconfig.py). One ensemble of
three (then four) serves every case in turn - each case leaves it as the next one expects - to keep
the JVM starts few."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from kazoo.client import KazooClient

from tests.integration import test_zookeeper_role_reconfig as base
from tests.integration.test_zookeeper_role_reconfig import ROLE, members, reconfig, render, zk_mode
from tests.support.zkserver import free_port

servers = base.servers  # the fixture: real servers from the role's templates


def _ports(count):
    return {"zk%d" % i: {"zookeeper_client_port": free_port(), "zookeeper_quorum_port": free_port(),
                         "zookeeper_election_port": free_port()} for i in range(1, count + 1)}


def _members(hosts):
    client = KazooClient(hosts=hosts, timeout=10)
    client.start(timeout=30)
    try:
        return members(client)
    finally:
        client.stop()
        client.close()


def _serving(ports, names):
    for name in names:
        assert zk_mode(ports[name]["zookeeper_client_port"], "120").returncode == 0, name


def _leader(ports, names):
    return [n for n in names if zk_mode(ports[n]["zookeeper_client_port"]).stdout.strip() == "leader"][0]


def test_reconfig_faults_on_one_ensemble(tmp_path, servers):  # noqa: F811, PLR0915 - one ensemble, cases in turn
    ports = _ports(5)
    three = ("zk1", "zk2", "zk3")
    render(tmp_path, {name: ports[name] for name in three})
    started = {name: servers(name, ports[name], wait=False) for name in three}
    _serving(ports, three)
    hosts = ",".join("127.0.0.1:%d" % ports[n]["zookeeper_client_port"] for n in three)

    # The synced wait ends after its timeout, saying why, when the followers never sync.
    began = time.monotonic()
    waited = zk_mode(ports[_leader(ports, three)]["zookeeper_client_port"], "3", "--synced", "5")
    assert waited.returncode == 1 and time.monotonic() - began < 20, waited.stdout
    assert "2 of 5 followers synced" in waited.stdout, waited.stdout

    # M1: a server refusing mntr ends the synced wait at once with a clear message (not after the
    # timeout on every converge); the role asserts mntr in zookeeper_4lw_whitelist for an ensemble.
    started["zk1"].cfg["4lw.commands.whitelist"] = "srvr"
    started["zk1"].restart(60)
    began = time.monotonic()
    waited = zk_mode(ports["zk1"]["zookeeper_client_port"], "60", "--synced", "2")
    assert waited.returncode == 1 and time.monotonic() - began < 15, waited.stdout
    assert "refuses mntr" in waited.stdout, waited.stdout

    # H1: servers of the group that do not run (zk4, zk5) are not added: the ensemble would be five
    # with two down, one more failure from losing the quorum.
    render(tmp_path, ports)
    done = reconfig(tmp_path, "zk1", hosts, join_wait="2")
    assert done.returncode == 1 and "refusing to add servers [4, 5]" in done.stdout, done.stdout
    assert _members(hosts) == ["server.1", "server.2", "server.3"]

    # A bad password: a message, no traceback, nothing changed.
    four = {name: ports[name] for name in ("zk1", "zk2", "zk3", "zk4")}
    render(tmp_path, four)
    started["zk4"] = servers("zk4", ports["zk4"], wait=False)
    done = reconfig(tmp_path, "zk4", hosts, password="wrong")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert _members(hosts) == ["server.1", "server.2", "server.3"]

    # A reconfig whose reply was lost is seen as done by the next run, not applied twice.
    first = reconfig(tmp_path, "zk4", hosts)
    assert first.returncode == 0 and json.loads(first.stdout)["joining"] == [4], first.stdout
    again = reconfig(tmp_path, "zk4", hosts)
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False, again.stdout

    # M2: a server already down counts for nothing. {1,2,3,4} with zk3 down: removing zk1 leaves
    # {2,3,4} with one down (ZooKeeper accepts it) - refused.
    _serving(ports, four)
    started["zk3"].stop()
    render(tmp_path, four, absent=("zk1",))
    done = reconfig(tmp_path, "zk1", hosts, extra=["--leave"])
    assert done.returncode == 1 and "refusing to remove servers [1]" in done.stdout, done.stdout
    assert "servers [3] do not answer" in done.stdout, done.stdout
    assert _members(hosts) == ["server.1", "server.2", "server.3", "server.4"]
    render(tmp_path, four)  # zk3 comes back with the ensemble it left
    started["zk3"].start(60)

    # H2: zk1 leaves while zk5 joins in the same play. leave.yml runs first, zk5 not started yet:
    # without --leave the unstarted zk5 is refused (H1); with --leave (leave.yml) only zk1 goes.
    render(tmp_path, ports, absent=("zk1",))
    done = reconfig(tmp_path, "zk1", hosts, join_wait="1")
    assert done.returncode == 1 and "refusing to add servers [5]" in done.stdout, done.stdout
    done = reconfig(tmp_path, "zk1", hosts, extra=["--leave"])
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["joining"] == [] and json.loads(done.stdout)["leaving"] == [1], done.stdout
    assert _members(hosts) == ["server.2", "server.3", "server.4"]


def test_bad_arguments_exit_64_with_a_message():
    for script, argv in (("zk_mode.py", ["127.0.0.1", "2181", "3", "--mode"]),
                         ("zk_mode.py", ["127.0.0.1", "port"]),
                         ("zk_reconfig.py", ["--hosts", "127.0.0.1:1", "--members", "[{"]),
                         ("zk_reconfig.py", ["--hosts", "127.0.0.1:1", "--members", '[{"id": 1}]'])):
        done = subprocess.run([sys.executable, str(ROLE / "files" / script), *argv], input="", capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 64 and "Traceback" not in done.stderr and done.stderr.strip(), (script, argv, done)
