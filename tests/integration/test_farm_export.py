"""`zkherd farm export` against a real ZooKeeper: the zkfarmer shapes, one read per change,
--min-members, a malformed member, templates."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

from tests.support.runner import REPO, Zkherd
from tests.support.zkutil import wait_for

DB1 = {"hostname": "db-01.example.com", "enabled": "0", "mysql": {"replication_delay": "0"}}
DB2 = {"hostname": "db-02.example.com", "enabled": "0", "mysql": {"replication_delay": "1"}}

SEED_PHP = '''<?php
return array
(
    "1.2.3.4" => array
    (
        "hostname" => "db-01.example.com",
        "enabled" => "0",
        "mysql" => array("replication_delay" => "0"),
    ),
    "1.2.3.5" => array
    (
        "hostname" => "db-02.example.com",
        "enabled" => "0",
        "mysql" => array("replication_delay" => "1"),
    ),
);
'''


def export(hosts, *args):
    return subprocess.run([sys.executable, "-m", "zkherd", "farm", "export", *args, "--zk", hosts], cwd=REPO,
                          capture_output=True, text=True, timeout=30, check=False)


def make_farm(zk, path):
    zk.create(path + "/1.2.3.4", json.dumps(DB1).encode(), makepath=True)
    zk.create(path + "/1.2.3.5", json.dumps(DB2).encode())


def test_seed_php_and_json_shapes(zk_server, zk, zk_base, tmp_path):
    make_farm(zk, zk_base + "/db")
    php = export(zk_server.hosts, zk_base + "/db", str(tmp_path / "database.php"), "--format", "php", "--once")
    assert php.returncode == 0, php.stderr
    assert (tmp_path / "database.php").read_text() == SEED_PHP
    js = export(zk_server.hosts, zk_base + "/db", str(tmp_path / "db.json"), "--once")
    assert js.returncode == 0 and json.loads((tmp_path / "db.json").read_text()) == {"1.2.3.4": DB1, "1.2.3.5": DB2}
    template = tmp_path / "upstream.j2"
    template.write_text("upstream db {\n{% for ip, m in members.items() %}  server {{ ip }}:3306;\n{% endfor %}}\n")
    tpl = export(zk_server.hosts, zk_base + "/db", str(tmp_path / "upstream.conf"), "--format", "template",
                 "--template", str(template), "--filter", "mysql.replication_delay<1", "--once")
    assert tpl.returncode == 0, tpl.stderr
    assert (tmp_path / "upstream.conf").read_text() == "upstream db {\n  server 1.2.3.4:3306;\n}\n"


def test_follows_the_farm_with_one_read_per_change(zk_server, zk, zk_base, tmp_path):
    farm, dest = zk_base + "/web", tmp_path / "web.json"
    for i in range(50):
        zk.create("%s/10.0.0.%d" % (farm, i), json.dumps({"enabled": "1", "n": str(i)}).encode(), makepath=True)
    runner = Zkherd(["farm", "export", farm, str(dest), "--zk", zk_server.hosts, "--min-members", "40",
                     "--on-change", "echo changed >> %s" % (tmp_path / "hook")], tmp_path / "e.log")
    runner.wait_log("export written")
    reads_before = int(re.findall(r"reads=(\d+)", runner.log())[-1])
    zk.set(farm + "/10.0.0.7", json.dumps({"enabled": "0", "n": "7"}).encode())
    wait_for(lambda: json.loads(dest.read_text())["10.0.0.7"]["enabled"] == "0")
    runner.wait_log("export written", count=2)
    assert int(re.findall(r"reads=(\d+)", runner.log())[-1]) - reads_before == 1  # one read, not fifty
    wait_for((tmp_path / "hook").exists)

    zk.create(farm + "/10.0.0.99", b"{broken")  # reported and left out, not fatal
    runner.wait_log("skipping member .*10.0.0.99 does not hold valid JSON")
    for i in range(15):  # the farm shrinks below --min-members: the last file stays
        zk.delete("%s/10.0.0.%d" % (farm, i))
    runner.wait_log("fewer members than --min-members; keeping the last file")
    # writes are on the leading edge: the first deletes may be written one by one, never fewer than 40
    time.sleep(0.3)
    assert 40 <= len(json.loads(dest.read_text())) <= 50
    assert runner.proc.poll() is None
    runner.stop()


def test_errors(zk_server, zk, zk_base, tmp_path):
    make_farm(zk, zk_base + "/db")
    bad = tmp_path / "bad.j2"
    bad.write_text("{% for x in %}")
    result = export(zk_server.hosts, zk_base + "/db", str(tmp_path / "o"), "--format", "template", "--template",
                    str(bad), "--once")
    assert result.returncode == 64 and "template" in result.stderr
    missing = export(zk_server.hosts, zk_base + "/nope", str(tmp_path / "o"), "--once")
    assert missing.returncode == 69 and "does not exist" in missing.stderr
    rejected = export(zk_server.hosts, zk_base + "/db", str(tmp_path / "r.json"), "--check-cmd", "false", "--once")
    assert rejected.returncode == 65 and not (tmp_path / "r.json").exists()
