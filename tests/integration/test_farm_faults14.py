"""Issue 14, farm join and farm export never end with a traceback: every ZooKeeper error is a retry
or a clear message with its exit code. Against a real ZooKeeper and real `zkherd` processes:
the farm folder deleted by hand, a member the exporter may not read, a farm folder the member may
not join, a member holding bytes that are not JSON, a member deleted between the listing and its
read. (Lost replies and session expiry of `farm join`: test_robustness14.py hole 5.)"""

from __future__ import annotations

import json
import time

from kazoo.security import make_digest_acl

from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for


def join(hosts, farm, conf, log, name="m1"):
    return Zkherd(["farm", "join", farm, str(conf), "--zk", hosts, "--session-timeout", "10", "--name", name,
                   "--poll", "0.1"], log)


def export(hosts, farm, dest, log, *extra):
    return Zkherd(["farm", "export", farm, str(dest), "--zk", hosts, "--session-timeout", "10", *extra], log)


def exported(dest):
    try:
        return json.loads(dest.read_text())
    except (OSError, ValueError):
        return None


def clean(*runners):
    for runner in runners:
        assert "Traceback" not in runner.log(), runner.log()[-3000:]
        assert runner.proc.poll() is None, "zkherd %s exited: %s" % (runner.args[:2], runner.log()[-2000:])


def test_the_farm_folder_deleted_by_hand_comes_back_on_both_sides(zk_server, zk, zk_base, tmp_path):
    farm, conf, dest = zk_base + "/farm", tmp_path / "m.json", tmp_path / "farm.json"
    conf.write_text(json.dumps({"role": "web"}))
    zk.create(farm + "/other", b'{"role": "db"}', makepath=True)
    member = join(zk_server.hosts, farm, conf, tmp_path / "j.log")
    exporter = export(zk_server.hosts, farm, dest, tmp_path / "e.log")
    try:
        wait_for(lambda: (exported(dest) or {}).get("m1") == {"role": "web"}, 20)
        zk.delete(farm, recursive=True)  # an operator's deleteall
        wait_for(lambda: zk.exists(farm + "/m1"), 20, message=lambda: member.log()[-2000:])
        zk.create(farm + "/other", b'{"role": "db"}')
        wait_for(lambda: exported(dest) == {"m1": {"role": "web"}, "other": {"role": "db"}}, 20,
                 message=lambda: exporter.log()[-2000:])
    finally:
        clean(member, exporter)
        member.stop()
        exporter.stop()


def test_a_member_holding_bytes_that_are_not_json_is_written_again_from_the_local_side(
        zk_server, zk, zk_base, tmp_path):
    farm, conf = zk_base + "/farm", tmp_path / "m.json"
    conf.write_text(json.dumps({"role": "web"}))
    zk.ensure_path(farm)
    member = join(zk_server.hosts, farm, conf, tmp_path / "j.log")
    try:
        member.wait_log("joined the farm")
        for garbage in (b"\xff\xfe not utf-8", b"{not json", b"[1, 2]"):
            zk.set(farm + "/m1", garbage)
            wait_for(lambda: zk.get(farm + "/m1")[0] == b'{"role": "web"}', 20,
                     message=lambda: member.log()[-2000:])
        assert json.loads(conf.read_text()) == {"role": "web"}  # the last good local state is kept
        assert member.has("does not hold valid JSON") and member.has("not an object")
    finally:
        clean(member)
        member.stop()


def test_export_skips_a_member_that_is_not_utf8_and_takes_it_back_once_mended(zk_server, zk, zk_base, tmp_path):
    farm, dest = zk_base + "/farm", tmp_path / "farm.json"
    zk.create(farm + "/a", b'{"n": 1}', makepath=True)
    zk.create(farm + "/b", b"\xff\xfe\xfd")
    exporter = export(zk_server.hosts, farm, dest, tmp_path / "e.log")
    try:
        wait_for(lambda: exported(dest) == {"a": {"n": 1}}, 20)
        exporter.wait_log("skipping member .*/b does not hold valid JSON")
        zk.set(farm + "/b", b'{"n": 2}')
        wait_for(lambda: exported(dest) == {"a": {"n": 1}, "b": {"n": 2}}, 20)
    finally:
        clean(exporter)
        exporter.stop()


def test_export_skips_a_member_it_may_not_read(zk_server, zk, zk_base, tmp_path):
    farm, dest = zk_base + "/farm", tmp_path / "farm.json"
    zk.create(farm + "/a", b'{"n": 1}', makepath=True)
    zk.create(farm + "/secret", b'{"n": 2}', acl=[make_digest_acl("owner", "pw", all=True)])
    exporter = export(zk_server.hosts, farm, dest, tmp_path / "e.log")
    try:
        wait_for(lambda: exported(dest) == {"a": {"n": 1}}, 20, message=lambda: exporter.log()[-2000:])
        exporter.wait_log("skipping member .*/secret.*(denied|NoAuth|not allowed)")
        zk.create(farm + "/c", b'{"n": 3}')  # the export goes on
        wait_for(lambda: exported(dest) == {"a": {"n": 1}, "c": {"n": 3}}, 20)
    finally:
        clean(exporter)
        exporter.stop()


def test_a_member_that_may_not_join_exits_77_with_a_message(zk_server, zk, zk_base, tmp_path):
    farm, conf = zk_base + "/locked", tmp_path / "m.json"
    conf.write_text(json.dumps({"role": "web"}))
    zk.create(farm, b"", acl=[make_digest_acl("owner", "pw", all=True)], makepath=True)
    member = join(zk_server.hosts, farm, conf, tmp_path / "j.log")
    assert member.wait(timeout=30) == 77, member.log()
    assert "Traceback" not in member.log() and member.has("denied|not allowed|NoAuth"), member.log()


def test_a_member_deleted_between_the_listing_and_its_read(zk_server, zk, zk_base, tmp_path, fault_proxy):
    farm, dest = zk_base + "/farm", tmp_path / "farm.json"
    zk.create(farm + "/a", b'{"n": 1}', makepath=True)
    proxy = fault_proxy()
    exporter = export(proxy.hosts, farm, dest, tmp_path / "e.log")
    try:
        wait_for(lambda: exported(dest) == {"a": {"n": 1}}, 20)
        proxy.before_request("get_data", nth=1, then="blackhole")  # the read of the new member, after the listing
        zk.create(farm + "/gone", b'{"n": 2}')
        assert proxy.wait_fired(1, 15)
        zk.delete(farm + "/gone")
        time.sleep(0.3)
        proxy.heal()
        zk.create(farm + "/b", b'{"n": 3}')
        wait_for(lambda: exported(dest) == {"a": {"n": 1}, "b": {"n": 3}}, 30, message=lambda: exporter.log()[-2000:])
    finally:
        clean(exporter)
        exporter.stop()


def test_a_member_too_big_for_zookeeper_says_so(zk_server, zk, zk_base, tmp_path):
    farm, conf = zk_base + "/farm", tmp_path / "m.json"
    conf.write_text(json.dumps({"f%05d" % i: "v" * 40 for i in range(20000)}))  # 1.08 MB: above jute.maxbuffer
    member = join(zk_server.hosts, farm, conf, tmp_path / "j.log")
    try:
        member.wait_log("the member is bigger than ZooKeeper takes by default .*bytes=1080000", timeout=20)
        conf.write_text(json.dumps({"role": "web"}))  # made smaller: it joins
        wait_for(lambda: zk.exists(farm + "/m1"), 30, message=lambda: member.log()[-2000:])
    finally:
        clean(member)
        member.stop()
