"""`farm join`: a member changed in ZooKeeper between our create and our watch on it. The read
before the create could set no watch on a missing node, and the watch set after it fires only for
later changes: before, such a change never reached CONF (seen as test_hole6 failing under load)."""

from __future__ import annotations

import json

from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for


def test_a_change_between_the_create_and_the_watch_reaches_conf(zk, zk_base, tmp_path, fault_proxy):
    farm, conf = zk_base + "/farm", tmp_path / "member.json"
    conf.write_text('{"a": "x"}\n')
    zk.ensure_path(farm)
    proxy = fault_proxy()
    proxy.before_request("exists", nth=1, then="blackhole")  # the watch after the create is held
    member = Zkherd(["farm", "join", farm, str(conf), "--zk", proxy.hosts, "--name", "m1", "--session-timeout", "10"],
                    tmp_path / "j.log")
    try:
        assert proxy.wait_fired(1, 15)
        wait_for(lambda: zk.exists(farm + "/m1"), 5)
        zk.set(farm + "/m1", json.dumps({"a": "y"}).encode())  # before our watch is set
        proxy.heal()
        wait_for(lambda: json.loads(conf.read_text()) == {"a": "y"}, 10, message=lambda: member.log()[-2000:])
        assert "Traceback" not in member.log()
    finally:
        member.stop()


def test_an_empty_folder_made_in_a_djb_member_reaches_zookeeper(zk_server, zk, zk_base, tmp_path):
    """An empty folder is the field {}: its mkdir changes no file, and the stamp that decides whether
    CONF changed (also under inotify) must see it. Found by the final review: before, never pushed."""
    farm, conf = zk_base + "/farm", tmp_path / "member"
    conf.mkdir()
    (conf / "x").write_text("1\n")
    zk.ensure_path(farm)
    member = Zkherd(["farm", "join", farm, str(conf), "--zk", zk_server.hosts, "--name", "m1"], tmp_path / "j.log")
    try:
        member.wait_log("joined the farm")
        (conf / "e").mkdir()
        wait_for(lambda: json.loads(zk.get(farm + "/m1")[0]).get("e") == {}, 5, message=lambda: member.log()[-2000:])
        (conf / "e").rmdir()
        wait_for(lambda: "e" not in json.loads(zk.get(farm + "/m1")[0]), 5, message=lambda: member.log()[-2000:])
    finally:
        member.stop()
