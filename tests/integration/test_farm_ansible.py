"""The Ansible side of farms against a real ZooKeeper: modules zkherd.ops.farm and farm_info,
the farm lookup, the farm inventory plugin (ansible-inventory --list, with its cache), and the
shared compare-and-set of a member under a real race."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.playbook import REPO, run_playbook
from zkherd.common import farm as farmcodec
from zkherd.common.connection import ZkError

DB1 = {"hostname": "db-01.example.com", "enabled": "0", "mysql": {"replication_delay": "0"}}
DB2 = {"hostname": "db-02.example.com", "enabled": "1", "mysql": {"replication_delay": "1"}}


@pytest.fixture
def db_farm(zk, zk_base):
    """The zkfarmer README's farm: /services/db with members 1.2.3.4 and 1.2.3.5."""
    path = zk_base + "/services/db"
    zk.create(path + "/1.2.3.4", json.dumps(DB1).encode(), makepath=True)
    zk.create(path + "/1.2.3.5", json.dumps(DB2).encode())
    return path


def member(zk, node):
    return json.loads(zk.get(node)[0])


def farm_task(name, **args):
    return {"name": name, "zkherd.ops.farm": args, "ignore_errors": True}


def test_farm_module_set_unset_check_diff_idempotent(zk_server, zk, db_farm):
    node = db_farm + "/1.2.3.4"
    out = {"enabled": "1", "maint": {"reason": "kernel"}}
    run = run_playbook([
        dict(farm_task("check", farm=db_farm, member="1.2.3.4", set={"enabled": "1"}), check_mode=True),
        farm_task("set", farm=db_farm, member="1.2.3.4", set={"enabled": "1", "maint.reason": "kernel"}),
        farm_task("rerun", farm=db_farm, member="1.2.3.4", set={"enabled": "1", "maint.reason": "kernel"}),
        farm_task("unset", farm=db_farm, member="1.2.3.4", unset=["maint", "never.there"]),
        farm_task("unset again", farm=db_farm, member="1.2.3.4", unset=["maint"]),
    ], hosts=zk_server.hosts, extra_args=["--diff"])
    assert run["check"]["changed"] and run["check"]["member"]["enabled"] == "1"
    set_ = run["set"]
    assert set_["changed"] and set_["member"] == dict(DB1, **out) and set_["path"] == node
    assert '"enabled": "0"' in set_["diff"]["before"] and '"reason": "kernel"' in set_["diff"]["after"]
    assert not run["rerun"]["changed"] and "diff" not in run["rerun"]
    assert run["unset"]["changed"] and not run["unset again"]["changed"]
    got = member(zk, node)
    assert got == dict(DB1, enabled="1") and list(got) == ["hostname", "enabled", "mysql"]  # key order kept
    assert member(zk, db_farm + "/1.2.3.5") == DB2  # the other member untouched


def test_farm_module_errors_and_create(zk_server, zk, db_farm, zk_admin):
    zk.create(db_farm + "/broken", b"{not json")
    run = run_playbook([
        farm_task("missing", farm=db_farm, member="9.9.9.9", set={"enabled": "1"}),
        dict(farm_task("create check", farm=db_farm, member="static", set={"enabled": "1"}, create=True),
             check_mode=True),
        farm_task("create", farm=db_farm, member="static", set={"enabled": "1", "a.b": 2}, create=True),
        farm_task("create locked", farm=db_farm, member="locked", set={"a": "1"}, create=True, auth="bob:pw",
                  acl=[{"scheme": "digest", "username": "bob", "password": "pw"}]),
        farm_task("broken", farm=db_farm, member="broken", set={"enabled": "1"}),
        farm_task("value not dict", farm=db_farm, member="1.2.3.4", set={"hostname.x": "1"}),
        farm_task("both", farm=db_farm, member="1.2.3.4", set={"a": "1"}, unset=["a"]),
        farm_task("bad field", farm=db_farm, member="1.2.3.4", set={"a..b": "1"}),
        farm_task("slash", farm=db_farm, member="a/b", set={"a": "1"}),
    ], hosts=zk_server.hosts)
    assert run["missing"]["failed"] and run["missing"]["error_kind"] == "no_node"
    assert "member %s/9.9.9.9 does not exist" % db_farm in run["missing"]["msg"]
    assert run["create check"]["changed"] and run["create check"]["created"]
    assert run["create"]["changed"] and run["create"]["created"]
    assert member(zk, db_farm + "/static") == {"enabled": "1", "a": {"b": 2}}
    assert zk.exists(db_farm + "/static").ephemeralOwner == 0
    assert run["create locked"]["created"]
    locked = zk_admin.get_acls(db_farm + "/locked")[0]
    assert [(a.id.scheme, a.id.id.split(":")[0]) for a in locked] == [("digest", "bob")]
    assert run["broken"]["failed"] and "does not hold valid JSON" in run["broken"]["msg"]
    assert zk.get(db_farm + "/broken")[0] == b"{not json"  # never overwritten
    assert run["value not dict"]["failed"] and "hostname is a value, not a dict" in run["value not dict"]["msg"]
    assert run["both"]["failed"] and "both set and unset: a" in run["both"]["msg"]
    assert run["bad field"]["failed"] and run["bad field"]["error_kind"] == "usage"
    assert run["slash"]["failed"] and "must not contain '/'" in run["slash"]["msg"]
    assert member(zk, db_farm + "/1.2.3.4") == DB1


def test_farm_info_and_lookup(zk_server, zk, db_farm, zk_base):
    web = zk_base + "/services/web"
    zk.create(web + "/10.0.0.1", json.dumps({"hostname": "web-1", "enabled": "1", "port": 8080}).encode(),
              makepath=True)
    zk.create(web + "/10.0.0.2", json.dumps({"hostname": "web-2", "enabled": "0"}).encode())
    zk.create(db_farm + "/broken", b"[1]")
    haproxy = ("{% for m in query('zkherd.ops.farm', '" + web + "', filter='enabled=1') %}"
               "server {{ m.data.hostname }} {{ m.name }}:{{ m.data.port | default(80) }} check\n{% endfor %}")
    run = run_playbook([
        {"name": "info", "zkherd.ops.farm_info": {"farm": db_farm}},
        {"name": "info filtered", "zkherd.ops.farm_info": {"farm": db_farm,
                                                           "filter": "enabled=1,mysql.replication_delay<10"}},
        {"name": "info missing", "zkherd.ops.farm_info": {"farm": zk_base + "/nope"}, "ignore_errors": True},
        {"name": "info bad filter", "zkherd.ops.farm_info": {"farm": db_farm, "filter": "!a=1"},
         "ignore_errors": True},
        {"name": "two farms", "ansible.builtin.debug": {
            "msg": "{{ query('zkherd.ops.farm', '%s', '%s', filter='enabled=1') }}" % (db_farm, web)}},
        {"name": "haproxy", "ansible.builtin.debug": {"msg": haproxy}},
        {"name": "lookup missing", "ansible.builtin.debug": {"msg": "{{ query('zkherd.ops.farm', '/nope') }}"},
         "ignore_errors": True},
    ], hosts=zk_server.hosts, play_vars={"zkherd_hosts": zk_server.hosts})
    info = run["info"]
    assert info["members"] == {"1.2.3.4": DB1, "1.2.3.5": DB2} and not info["changed"]
    assert len(info["problems"]) == 1 and "broken holds JSON, but not an object" in info["problems"][0]
    assert any("broken" in w for w in info.get("warnings", []))
    assert run["info filtered"]["members"] == {"1.2.3.5": DB2}
    assert run["info missing"]["failed"] and run["info missing"]["error_kind"] == "no_node"
    assert run["info bad filter"]["failed"] and "bad filter" in run["info bad filter"]["msg"]
    assert run["two farms"]["msg"] == [
        {"farm": db_farm, "name": "1.2.3.5", "data": DB2},
        {"farm": web, "name": "10.0.0.1", "data": {"hostname": "web-1", "enabled": "1", "port": 8080}}]
    assert run["haproxy"]["msg"] == "server web-1 10.0.0.1:8080 check\n"
    assert run["lookup missing"]["failed"] and "/nope" in run["lookup missing"]["msg"]


def inventory(tmp_path, config, *args):
    source = tmp_path / "test.zkherd_farm.yml"
    source.write_text(yaml.safe_dump(dict({"plugin": "zkherd.ops.farm"}, **config)))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), LANG="C.UTF-8", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(source), "--list",
                           *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def plain(value):
    """ansible-inventory --list marks strings that are never templated {"__ansible_unsafe": text}."""
    if isinstance(value, dict) and set(value) == {"__ansible_unsafe"}:
        return value["__ansible_unsafe"]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return [plain(v) for v in value] if isinstance(value, list) else value


def test_inventory_plugin(zk_server, zk, db_farm, zk_base, tmp_path):
    zk.create(db_farm + "/broken", b"{")
    web = zk_base + "/services/web-eu"
    zk.create(web + "/10.0.0.1", json.dumps({"hostname": "web-1", "enabled": "1"}).encode(), makepath=True)
    listed, stderr = inventory(tmp_path, {
        "hosts": zk_server.hosts, "farms": [db_farm, web], "group_prefix": "farm_",
        "compose": {"delay": "farm_mysql.replication_delay | default(0) | int"},
        "groups": {"lagging": "(zkherd_member_data.mysql.replication_delay | default(0) | int) > 0"},
        "keyed_groups": [{"key": "farm_enabled", "prefix": "enabled"}],
    })
    assert sorted(listed["farm_db"]["hosts"]) == ["1.2.3.4", "1.2.3.5"]
    assert listed["farm_web_eu"]["hosts"] == ["10.0.0.1"]
    assert listed["lagging"]["hosts"] == ["1.2.3.5"]
    assert listed["enabled_0"]["hosts"] == ["1.2.3.4"]
    assert sorted(listed["enabled_1"]["hosts"]) == ["1.2.3.5", "10.0.0.1"]
    assert listed["_meta"]["hostvars"]["1.2.3.5"]["farm_hostname"] == {"__ansible_unsafe": "db-02.example.com"}
    hostvars = plain(listed["_meta"]["hostvars"])
    assert hostvars["1.2.3.5"] == dict({"farm_" + k: v for k, v in DB2.items()}, delay=1, zkherd_farm=db_farm,
                                       zkherd_farms=[db_farm], zkherd_member="1.2.3.5",
                                       zkherd_member_path=db_farm + "/1.2.3.5", zkherd_member_data=DB2)
    assert "broken" in stderr and "broken" not in hostvars

    named = inventory(tmp_path, {"hosts": zk_server.hosts, "farms": [db_farm], "hostname_field": "hostname",
                                 "filter": "enabled=1", "vars_prefix": "db_"})[0]
    assert named["db"]["hosts"] == ["db-02.example.com"]
    hostvars = plain(named["_meta"]["hostvars"])
    assert hostvars["db-02.example.com"]["ansible_host"] == "1.2.3.5"
    assert hostvars["db-02.example.com"]["db_enabled"] == "1" and "enabled" not in hostvars["db-02.example.com"]


def test_inventory_cache_and_errors(zk_server, zk, db_farm, tmp_path, fault_proxy):
    proxy = fault_proxy()  # the same connection string, then unreachable
    cached = {"hosts": proxy.hosts, "farms": [db_farm], "cache": True, "connect_timeout": 1,
              "cache_plugin": "ansible.builtin.jsonfile", "cache_connection": str(tmp_path / "cache")}
    first = inventory(tmp_path, cached)[0]
    zk.delete(db_farm + "/1.2.3.5")
    again = inventory(tmp_path, cached)[0]  # from the cache: ZooKeeper's change is not seen
    assert sorted(again["db"]["hosts"]) == sorted(first["db"]["hosts"]) == ["1.2.3.4", "1.2.3.5"]
    flushed = inventory(tmp_path, cached, "--flush-cache")[0]
    assert flushed["db"]["hosts"] == ["1.2.3.4"]
    proxy.close()  # ZooKeeper down
    down = inventory(tmp_path, cached)[0]
    assert down["db"]["hosts"] == ["1.2.3.4"]  # the cache still serves

    source = tmp_path / "bad.zkherd_farm.yml"
    for config, message in (({"hosts": "127.0.0.1:1", "connect_timeout": 1, "farms": [db_farm]},
                             "cannot connect to ZooKeeper"),
                            ({"hosts": zk_server.hosts, "farms": [db_farm + "/nope"]}, "does not exist"),
                            ({"hosts": zk_server.hosts, "farms": [db_farm], "filter": "a<b"}, "bad filter")):
        source.write_text(yaml.safe_dump(dict({"plugin": "zkherd.ops.farm"}, **config)))
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(source), "--list"],
                              cwd=REPO, env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                                                 LANG="C.UTF-8", ANSIBLE_INVENTORY_UNPARSED_FAILED="1"),
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode != 0 and message in proc.stderr, (config, proc.stderr)


def test_update_member_races_are_merged_or_reported(zk, zk_base):
    """Another writer changes the member between our read and our write: our change is applied on
    top of theirs; when it happens on every attempt, the update fails and nothing is written."""
    node = zk_base + "/farm/m1"
    zk.create(node, json.dumps({"a": "1"}).encode(), makepath=True)
    races = []

    def racing(times, mine):
        def change(doc):
            if len(races) < times:
                races.append(1)
                current = member(zk, node)
                zk.set(node, json.dumps(dict(current, other=len(races))).encode())
            return farmcodec.set_field(doc, "mine", mine)
        return change

    _before, after = farmcodec.update_member(zk, node, racing(2, "x"))
    assert member(zk, node) == {"a": "1", "other": 2, "mine": "x"} == after and len(races) == 2
    races.clear()
    with pytest.raises(ZkError) as lost:
        farmcodec.update_member(zk, node, racing(farmcodec.RETRIES, "y"))
    assert lost.value.kind == "version" and "changed 5 times" in lost.value.message
    assert member(zk, node) == {"a": "1", "other": farmcodec.RETRIES, "mine": "x"}  # theirs kept, ours not lost
