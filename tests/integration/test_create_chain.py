"""A create whose answer we stopped waiting for must not go on by itself.

kazoo's create(makepath=True) answers a NoNodeError by making the parents and creating again, from
its own thread, whether or not anyone still waits for the answer. A registration (or an election
member) whose first create timed out while its folder was missing then had two creates of its own
in flight: the look that a doubtful create calls for ran between them, found nothing, and created
again - and kazoo's late retry left a second node of our live session (a phantom registration, a
second pool member) that nothing would ever delete. Found as a flaky
test_robustness14.py::test_hole3; reproduced here against a real ZooKeeper, deterministically: the
first create is held until the client gave up on it, and the answers come back slowly."""

from __future__ import annotations

import threading
import time

import pytest

from zkherd.core.logs import Log
from zkherd.recipes.election import Member
from zkherd.recipes.registration import Registration


class Looper:
    """What the election's join needs of the loop: the client and a bounded wait."""

    def __init__(self, client, timeout):
        self.client, self.timeout = client, timeout

    def get(self, result):
        return result.get(timeout=self.timeout)


def held_then_slow(proxy, client, attempt):
    """Run *attempt* while the first create is held until it times out; try again at once (as the
    runner's next turn does) while the link is still cut, so that our look for the first try's node
    is on the wire behind it; then heal, with slow answers."""
    proxy.before_request("create", nth=1, then="blackhole")
    with pytest.raises(client.handler.timeout_exception):
        attempt()
    outcome = {}

    def again():
        try:
            outcome["node"] = attempt()
        except Exception as exc:  # noqa: BLE001 - shown by the assertion below
            outcome["error"] = exc

    second = threading.Thread(target=again)
    second.start()
    time.sleep(0.3)  # its sync and list are held behind the first create
    proxy.delay(0.1)
    second.join(15)
    assert "node" in outcome, outcome
    return outcome["node"]


def one_node_after_the_dust(proxy, zk, folder):
    """The children of *folder* once any create still on its way has landed: kazoo's own retry
    needs two more round trips after the NoNodeError; 2 s is many of them on loopback."""
    proxy.heal()
    time.sleep(2.0)
    return zk.get_children(folder)


def test_a_registration_whose_first_create_timed_out_leaves_one_node(zk, zk_base, make_zk, fault_proxy):
    proxy = fault_proxy()
    client = make_zk(proxy.hosts, timeout=10)
    folder = zk_base + "/svc"
    registration = Registration(folder + "/member", b"me", Log())
    node = held_then_slow(proxy, client, lambda: registration.ensure(client, 1.5))
    assert one_node_after_the_dust(proxy, zk, folder) == [node.rsplit("/", 1)[1]]


def test_an_election_member_whose_first_create_timed_out_joins_once(zk, zk_base, make_zk, fault_proxy):
    proxy = fault_proxy()
    client = make_zk(proxy.hosts, timeout=10)
    pool = zk_base + "/pool"
    member = Member(pool, "A", Log())
    node = held_then_slow(proxy, client, lambda: member.join(Looper(client, 1.5)))
    assert one_node_after_the_dust(proxy, zk, pool) == [node.rsplit("/", 1)[1]]
