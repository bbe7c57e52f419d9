"""`zkherd farm ls|get|set|unset` against a real ZooKeeper, with the zkfarmer README's example."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.runner import REPO

DB1 = {"hostname": "db-01.example.com", "enabled": "0", "mysql": {"replication_delay": "0"}}
DB2 = {"hostname": "db-02.example.com", "enabled": "1", "mysql": {"replication_delay": "1"}}


def farm(hosts, *args):
    return subprocess.run([sys.executable, "-m", "zkherd", "farm", *args, "--zk", hosts], cwd=REPO,
                          capture_output=True, text=True, timeout=30, check=False)


def test_the_seed_example(zk_server, zk, zk_base):
    services = zk_base + "/services"
    for name in ("db", "cache", "search", "soft"):
        zk.create(services + "/" + name, makepath=True)
    zk.create(services + "/db/1.2.3.4", json.dumps(DB1).encode())
    zk.create(services + "/db/1.2.3.5", json.dumps(DB2).encode())
    listing = farm(zk_server.hosts, "ls", services)
    assert listing.returncode == 0 and listing.stdout.split() == ["cache", "db", "search", "soft"]
    fields = farm(zk_server.hosts, "ls", services + "/db", "--fields", "hostname,enabled")
    assert fields.stdout.splitlines() == ["1.2.3.4          hostname=db-01.example.com, enabled=0",
                                          "1.2.3.5          hostname=db-02.example.com, enabled=1"]
    got = farm(zk_server.hosts, "get", services + "/db/1.2.3.4", "enabled")
    assert (got.returncode, got.stdout) == (0, "0\n")
    assert farm(zk_server.hosts, "get", services + "/db/1.2.3.5", "mysql.replication_delay").stdout == "1\n"
    assert farm(zk_server.hosts, "set", services + "/db/1.2.3.4", "enabled", "1").returncode == 0
    assert json.loads(zk.get(services + "/db/1.2.3.4")[0])["enabled"] == "1"
    assert farm(zk_server.hosts, "set", services + "/db/1.2.3.4", "mysql.replication_delay", "3").returncode == 0
    assert json.loads(zk.get(services + "/db/1.2.3.4")[0])["mysql"] == {"replication_delay": "3"}
    assert farm(zk_server.hosts, "unset", services + "/db/1.2.3.4", "enabled").returncode == 0
    assert "enabled" not in json.loads(zk.get(services + "/db/1.2.3.4")[0])


def test_errors(zk_server, zk, zk_base):
    db = zk_base + "/db"
    zk.create(db + "/good", json.dumps(DB1).encode(), makepath=True)
    zk.create(db + "/broken", b"{not json")
    listing = farm(zk_server.hosts, "ls", db, "--fields", "hostname")
    assert listing.returncode == 65
    assert listing.stdout == "good             hostname=db-01.example.com\n"  # the others still listed
    assert "skipping member %s/broken does not hold valid JSON" % db in listing.stderr
    missing = farm(zk_server.hosts, "get", db + "/good", "nope")
    assert missing.returncode == 1 and "has no field nope" in missing.stderr
    assert farm(zk_server.hosts, "unset", db + "/good", "nope").returncode == 1
    broken = farm(zk_server.hosts, "set", db + "/broken", "enabled", "1")
    assert broken.returncode == 65 and zk.get(db + "/broken")[0] == b"{not json"  # never overwritten
    absent = farm(zk_server.hosts, "get", db + "/absent", "x")
    assert absent.returncode == 1 and "does not exist" in absent.stderr
    assert farm("127.0.0.1:1", "ls", db, "--connect-timeout", "1").returncode == 69
    assert farm(zk_server.hosts, "ls", "relative").returncode == 64
