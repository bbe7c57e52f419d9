"""Review of issue 16b (the zookeeper role's dynamic reconfiguration and restarts), against three
real local servers started from the role's own templates (as test_zookeeper_role_reconfig.py)."""

from __future__ import annotations

import json
import time

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.retry import KazooRetry

from tests.integration.test_zookeeper_role_reconfig import members, reconfig, render, servers, zk_mode  # noqa: F401
from tests.support.zkserver import free_port


def _ports(count):
    return {"zk%d" % i: {"zookeeper_client_port": free_port(), "zookeeper_quorum_port": free_port(),
                         "zookeeper_election_port": free_port()} for i in range(1, count + 1)}


def _three(tmp_path, servers, ports):  # noqa: F811
    three = {name: ports[name] for name in ("zk1", "zk2", "zk3")}
    render(tmp_path, three)
    started = {name: servers(name, p, wait=False) for name, p in three.items()}
    for name in three:
        assert zk_mode(ports[name]["zookeeper_client_port"], "120").returncode == 0
    return started, ",".join("127.0.0.1:%d" % p["zookeeper_client_port"] for p in three.values())


def _writes_succeed(hosts):
    client = KazooClient(hosts=hosts, timeout=4, connection_retry=KazooRetry(max_tries=3))
    try:
        client.start(timeout=15)
        client.ensure_path("/review16b")
        client.set("/review16b", b"x")
        return True
    except Exception:  # noqa: BLE001 - no quorum: timeout or connection loss
        return False
    finally:
        client.stop()
        client.close()


def test_adding_servers_that_do_not_run_is_refused(tmp_path, servers):  # noqa: F811
    """H: zk_reconfig's quorum check counts members only. Adding two servers that do not run (a new
    host unreachable / failed earlier in the play, or outside --limit: _zookeeper_servers comes from
    the group, not the play's hosts) passes plan() (3 stay of 5 = majority) and ZooKeeper accepts it
    (the 3 running are a quorum of the new 5). The ensemble is then 5 with 2 down: one more failure
    and the quorum is lost - which the docs promise the role refuses."""
    ports = _ports(5)
    started, hosts = _three(tmp_path, servers, ports)
    render(tmp_path, ports)  # the group now has zk4 and zk5; neither was started
    done = reconfig(tmp_path, "zk1", hosts)
    client = KazooClient(hosts=hosts, timeout=10)
    client.start(timeout=30)
    now = members(client)
    client.stop()
    client.close()
    if done.returncode == 0:
        started["zk3"].stop()  # one ordinary failure of a server that did run
        survived = _writes_succeed(hosts)
    else:
        survived = True
    assert done.returncode == 1 and now == ["server.1", "server.2", "server.3"], (
        "added servers that do not run: rc %d %s, ensemble now %s; after one more server stopped, writes %s"
        % (done.returncode, done.stdout.strip(), now, "succeed" if survived else "FAIL (quorum lost)"))


def test_add_and_remove_in_one_play_adds_the_new_server_before_it_runs(tmp_path, servers):  # noqa: F811
    """H: adding zk4 and removing zk1 in one play. leave.yml runs first (main.yml includes it before
    anything else), with _zookeeper_servers = the group's present members, zk4 included - but zk4 is
    not started yet. zk_reconfig sends -add 4 -remove 1 in one go; ZooKeeper accepts (2 and 3 are a
    quorum of {2,3,4}); the role then stops zk1. Until zk4 starts and syncs the ensemble is {2,3,4}
    with one down: no failure tolerated (before: 3 of 3 running, one tolerated)."""
    ports = _ports(4)
    started, hosts = _three(tmp_path, servers, ports)
    render(tmp_path, ports, absent=("zk1",))
    done = reconfig(tmp_path, "zk1", hosts)  # leave.yml: on the leaving host, zk4 not started
    client = KazooClient(hosts=hosts, timeout=10)
    client.start(timeout=30)
    now = members(client)
    client.stop()
    client.close()
    assert done.returncode == 1 or 4 not in json.loads(done.stdout)["joining"], (
        "reconfig from leave.yml added server 4 before it ran: %s, ensemble now %s" % (done.stdout.strip(), now))


def test_synced_wait_fails_after_its_timeout_when_followers_never_sync(tmp_path, servers):  # noqa: F811
    """Confirms: --synced with a follower count never reached ends after TIMEOUT with status 1 (no
    endless wait), and says why."""
    ports = _ports(3)
    _three(tmp_path, servers, ports)
    leader = [n for n in ("zk1", "zk2", "zk3") if zk_mode(ports[n]["zookeeper_client_port"]).stdout.strip() == "leader"]
    began = time.monotonic()
    waited = zk_mode(ports[leader[0]]["zookeeper_client_port"], "3", "--synced", "5")
    assert waited.returncode == 1 and time.monotonic() - began < 20, waited.stdout
    assert "2 of 5 followers synced" in waited.stdout, waited.stdout


def test_synced_wait_without_mntr_fails_every_converge(tmp_path, servers):  # noqa: F811
    """M: main.yml's assert asks only for srvr in zookeeper_4lw_whitelist, but reconfig.yml's 'Wait
    until the leader has every follower synced' runs on every converge (not only on a change) and
    needs mntr: with zookeeper_4lw_whitelist: [srvr] (accepted by the role) the leader never reports
    zk_synced_followers, so every play waits zookeeper_start_timeout and fails."""
    ports = _ports(3)
    started, _hosts = _three(tmp_path, servers, ports)
    for server in started.values():
        server.cfg["4lw.commands.whitelist"] = "srvr"
        server.restart(60)
    for name in started:
        assert zk_mode(ports[name]["zookeeper_client_port"], "120").returncode == 0
    leader = [n for n in started if zk_mode(ports[n]["zookeeper_client_port"]).stdout.strip() == "leader"]
    waited = zk_mode(ports[leader[0]]["zookeeper_client_port"], "3", "--synced", "2")
    assert waited.returncode == 0, "a whole, healthy ensemble without mntr fails the synced wait: " + waited.stdout


def test_reconfig_reply_lost_then_rerun_is_idempotent(tmp_path, servers):  # noqa: F811
    """Confirms: a reconfig whose reply was lost (the play failed) is seen as done by the next run
    (it compares with /zookeeper/config), not applied twice or refused."""
    ports = _ports(4)
    started, hosts = _three(tmp_path, servers, ports)
    render(tmp_path, ports)
    servers("zk4", ports["zk4"], wait=False)
    first = reconfig(tmp_path, "zk4", hosts)
    assert first.returncode == 0, first.stdout
    again = reconfig(tmp_path, "zk4", hosts)
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False, again.stdout


def test_reconfig_bad_password_is_a_message_not_a_traceback(tmp_path, servers):  # noqa: F811
    ports = _ports(4)
    _started, hosts = _three(tmp_path, servers, ports)
    render(tmp_path, ports)
    servers("zk4", ports["zk4"], wait=False)
    done = reconfig(tmp_path, "zk4", hosts, password="wrong")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    try:
        client = KazooClient(hosts=hosts, timeout=10)
        client.start(timeout=30)
        assert members(client) == ["server.1", "server.2", "server.3"]
    except KazooException:
        raise
    finally:
        client.stop()
        client.close()
