"""`farm join` with a DJB directory and values a file cannot hold as such (review of the typed-values
fix): a member made again keeps its types, the same value on both sides keeps ZooKeeper's type, and
text no file or file name can hold (lone surrogates) is refused without ending the member."""
from __future__ import annotations

import json
import signal
import time

from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for

TYPED = {"x": "1", "n": 5, "maint": None}


def start(zk_server, zk, zk_base, tmp_path, hosts=None, extra=()):
    farm_path, conf = zk_base + "/farm", tmp_path / "member"
    conf.mkdir()
    (conf / "x").write_text("1\n")
    zk.ensure_path(farm_path)
    member = Zkherd(["farm", "join", farm_path, str(conf), "--zk", hosts or zk_server.hosts, "--name", "m1",
                     "--poll", "0.1", *extra], tmp_path / "join.log")
    member.wait_log("joined the farm")
    return member, farm_path + "/m1", conf


def member_of(zk, node):
    return json.loads(zk.get(node)[0])


def set_typed(zk, node, conf):
    zk.set(node, json.dumps(TYPED).encode())
    wait_for(lambda: (conf / "n").exists() and (conf / "maint").exists(), 10)
    time.sleep(0.5)


def test_a_hand_deleted_member_is_made_again_with_its_types(zk_server, zk, zk_base, tmp_path):
    """Before: made again from the files, 5 became "5" and null "null" (truthy: `!maint` filters
    dropped the member)."""
    member, node, conf = start(zk_server, zk, zk_base, tmp_path)
    try:
        set_typed(zk, node, conf)
        zk.delete(node)
        wait_for(lambda: zk.exists(node) is not None, 10)
        time.sleep(0.5)
        assert member_of(zk, node) == TYPED
    finally:
        member.stop()


def test_a_member_made_again_after_an_expiry_keeps_its_types(zk_server, zk, zk_base, tmp_path, fault_proxy):
    proxy = fault_proxy()
    member, node, conf = start(zk_server, zk, zk_base, tmp_path, hosts=proxy.hosts, extra=("--session-timeout", "2"))
    try:
        set_typed(zk, node, conf)
        owner = zk.exists(node).ephemeralOwner
        proxy.blackhole()
        wait_for(lambda: zk.exists(node) is None, 15)
        proxy.reset_all()
        proxy.heal()
        wait_for(lambda: zk.exists(node) is not None and zk.exists(node).ephemeralOwner != owner, 20,
                 message=lambda: member.log()[-1500:])
        time.sleep(0.5)
        assert member_of(zk, node) == TYPED
    finally:
        member.stop()


def test_the_same_value_on_both_sides_keeps_zookeepers_type(zk_server, zk, zk_base, tmp_path):
    """n: 5 -> 7 in ZooKeeper and "7" in the file, both while the member is stopped: the same value
    in the file's terms; before, the file's string was kept and pushed."""
    member, node, conf = start(zk_server, zk, zk_base, tmp_path)
    try:
        zk.set(node, json.dumps({"x": "1", "n": 5}).encode())
        wait_for((conf / "n").exists, 10)
        time.sleep(0.5)
        member.signal(signal.SIGSTOP)
        try:
            zk.set(node, json.dumps({"x": "1", "n": 7}).encode())
            (conf / "n").write_text("7\n")
        finally:
            member.signal(signal.SIGCONT)
        time.sleep(1.5)
        got = member_of(zk, node)
        assert got == {"x": "1", "n": 7} and isinstance(got["n"], int), (got, member.log()[-1500:])
    finally:
        member.stop()


def test_a_lone_surrogate_value_is_refused_and_the_member_keeps_running(zk_server, zk, zk_base, tmp_path):
    """Valid JSON ("\\ud800") no file can hold: before, UnicodeEncodeError ended the member (exit 70).
    Now the member's data is refused as undecodable (as any invalid member is): the local side is the member."""
    member, node, conf = start(zk_server, zk, zk_base, tmp_path)
    try:
        zk.set(node, b'{"x": "1", "s": "\\ud800"}')
        member.wait_log("replacing the member with the local configuration")
        wait_for(lambda: member_of(zk, node) == {"x": "1"}, 10)
        time.sleep(0.5)
        assert member.proc.poll() is None, member.log()[-2000:]
        assert not member.has("Traceback|internal error"), member.log()[-2000:]
        zk.set(node, b'{"x": "1"}')  # the writer takes it back: the member syncs again
        (conf / "x").write_text("2\n")
        wait_for(lambda: member_of(zk, node).get("x") == "2", 10, message=lambda: member.log()[-1500:])
    finally:
        member.stop()


def test_a_lone_surrogate_field_name_is_refused_and_does_not_block_the_member(zk_server, zk, zk_base, tmp_path):
    """A key "\\udc80k" became a file whose name is not UTF-8: every later read of the directory was
    refused, also after the key was gone from ZooKeeper, and no local edit was pushed again."""
    member, node, conf = start(zk_server, zk, zk_base, tmp_path)
    try:
        zk.set(node, b'{"x": "1", "\\udc80k": "v"}')
        member.wait_log("replacing the member with the local configuration")
        zk.set(node, b'{"x": "1"}')
        time.sleep(1.0)
        (conf / "x").write_text("2\n")
        wait_for(lambda: member_of(zk, node).get("x") == "2", 10, message=lambda: member.log()[-1500:])
        assert sorted(p.name for p in conf.iterdir()) == ["x"]
    finally:
        member.stop()


def test_made_again_with_dotted_file_names_still_joins(zk_server, zk, zk_base, tmp_path):
    """Files `nginx` and `nginx.conf` (fields that clash as dotted names): the typed re-create's merge
    refused them and the member was never made again (the host left the farm); now it is made from
    the files as they are."""
    member, node, conf = start(zk_server, zk, zk_base, tmp_path)
    (conf / "nginx").write_text("on\n")
    (conf / "nginx.conf").write_text("x\n")
    try:
        time.sleep(0.5)
        zk.delete(node)
        wait_for(lambda: zk.exists(node) is not None, 10, message=lambda: member.log()[-2000:])
    finally:
        member.stop()


def test_sigkilled_member_restarted_keeps_types(zk_server, zk, zk_base, tmp_path):
    """A member killed and restarted within the session timeout finds its old node (n: 5) and
    replaces it: with the old node's types where the files still show them (before: n: "5")."""
    member, node, conf = start(zk_server, zk, zk_base, tmp_path, extra=("--session-timeout", "10"))
    zk.set(node, json.dumps({"x": "1", "n": 5}).encode())
    wait_for((conf / "n").exists, 10)
    time.sleep(0.5)
    member.kill()
    member.wait()
    assert zk.exists(node) is not None
    again = Zkherd(["farm", "join", zk_base + "/farm", str(conf), "--zk", zk_server.hosts, "--name", "m1",
                    "--poll", "0.1", "--session-timeout", "10"], tmp_path / "join2.log")
    try:
        again.wait_log("joined the farm")
        time.sleep(0.5)
        got = json.loads(zk.get(node)[0])
        assert got == {"x": "1", "n": 5}, got
    finally:
        again.stop()
