"""`zkherd farm join` against a real ZooKeeper: the zkfarmer README's directory example, both ways,
the merge rule, and a SIGKILLed member leaving an export."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.runner import REPO, Zkherd
from tests.support.zkutil import wait_for

SEED = {"hostname": "db-01.example.com", "enabled": "0", "mysql": {"replication_delay": "0"}}


def seed_dir(base):
    base.mkdir()
    (base / "hostname").write_text("db-01.example.com\n")
    (base / "enabled").write_text("0\n")
    (base / "mysql").mkdir()
    (base / "mysql" / "replication_delay").write_text("0\n")
    return base


def join(hosts, farm, conf, name, log, *extra):
    return Zkherd(["farm", "join", farm, str(conf), "--zk", hosts, "--session-timeout", "1.5", "--name", name,
                   "--poll", "0.1", *extra], log)


def test_seed_directory_both_ways(zk_server, zk, zk_base, tmp_path):
    farm, conf = zk_base + "/services/db", seed_dir(tmp_path / "db")
    zk.ensure_path(farm)
    member = join(zk_server.hosts, farm, conf, "1.2.3.4", tmp_path / "j.log",
                  "--on-change", "echo changed >> %s" % (tmp_path / "hook"))
    member.wait_log("joined the farm")
    assert json.loads(zk.get(farm + "/1.2.3.4")[0]) == SEED
    assert zk.exists(farm + "/1.2.3.4").ephemeralOwner != 0

    (conf / "enabled").write_text("1\n")  # echo 1 > enabled
    wait_for(lambda: json.loads(zk.get(farm + "/1.2.3.4")[0])["enabled"] == "1")

    result = subprocess.run([sys.executable, "-m", "zkherd", "farm", "set", farm + "/1.2.3.4",
                             "mysql.replication_delay", "5", "--zk", zk_server.hosts], cwd=REPO, check=False)
    assert result.returncode == 0
    wait_for(lambda: (conf / "mysql" / "replication_delay").read_text() == "5\n")
    wait_for((tmp_path / "hook").exists)
    assert json.loads(zk.get(farm + "/1.2.3.4")[0])["enabled"] == "1"  # nothing lost on either side
    member.stop()
    wait_for(lambda: zk.exists(farm + "/1.2.3.4") is None)


def test_killed_member_leaves_the_export(zk_server, zk, zk_base, tmp_path):
    farm = zk_base + "/web"
    zk.ensure_path(farm)
    (tmp_path / "a.json").write_text('{"enabled": "1"}')
    (tmp_path / "b.json").write_text('{"enabled": "1"}')
    a = join(zk_server.hosts, farm, tmp_path / "a.json", "10.0.0.1", tmp_path / "a.log")
    b = join(zk_server.hosts, farm, tmp_path / "b.json", "10.0.0.2", tmp_path / "b.log")
    dest = tmp_path / "export.json"
    exporter = Zkherd(["farm", "export", farm, str(dest), "--zk", zk_server.hosts], tmp_path / "e.log")
    wait_for(lambda: dest.exists() and len(json.loads(dest.read_text())) == 2)
    b.kill()
    wait_for(lambda: list(json.loads(dest.read_text())) == ["10.0.0.1"], timeout=10)
    a.stop()
    exporter.stop()
