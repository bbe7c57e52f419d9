"""The load balancer templates the farm_export role ships (haproxy-backend.cfg.j2,
nginx-upstream.conf.j2), rendered by a real `zkherd farm export --format template` from a farm on a
real ZooKeeper: the members that are enabled and not in maintenance, with their address and port.
haproxy -c and nginx -t on the result run in the boxes (tests/support/consumercheck.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parents[2] / "roles/farm_export/files"
MEMBERS = {
    "box1": {"hostname": "box1", "address": "127.0.0.1", "port": "25681", "enabled": "1"},
    "box2": {"hostname": "box2", "address": "127.0.0.1", "port": "25682", "enabled": "0"},
    "box3": {"hostname": "box3", "address": "127.0.0.1", "port": "25683", "enabled": "1", "maint": "1"},
    "10.0.0.4": {},
}


def export_once(zk_server, farm, template, dest, *args):
    return subprocess.run([sys.executable, "-m", "zkherd", "farm", "export", farm, str(dest), "--zk", zk_server.hosts,
                           "--format", "template", "--template", str(TEMPLATES / template), "--once", *args],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def farm(zk, zk_base):
    for name, data in MEMBERS.items():
        zk.create("%s/web/%s" % (zk_base, name), json.dumps(data).encode(), makepath=True)
    return zk_base + "/web"


def test_the_haproxy_backend_lists_the_enabled_members(zk_server, farm, tmp_path):
    done = export_once(zk_server, farm, "haproxy-backend.cfg.j2", tmp_path / "web.cfg")
    assert done.returncode == 0, done.stderr
    servers = [line.split() for line in (tmp_path / "web.cfg").read_text().splitlines() if "server " in line]
    assert servers == [["server", "10.0.0.4", "10.0.0.4:80", "check", "weight", "100"],
                       ["server", "box1", "127.0.0.1:25681", "check", "weight", "100"]]
    assert "Traceback" not in done.stderr


def test_the_nginx_upstream_lists_the_enabled_members_in_a_shared_zone(zk_server, farm, tmp_path):
    done = export_once(zk_server, farm, "nginx-upstream.conf.j2", tmp_path / "web.conf")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "web.conf").read_text()
    name = farm.replace("/", "_").strip("_")
    assert "upstream %s {" % name in text and "zone %s 64k;" % name in text
    assert [line.strip() for line in text.splitlines() if line.strip().startswith("server ")] == [
        "server 10.0.0.4:80 weight=1;", "server 127.0.0.1:25681 weight=1;"]
    assert text.rstrip().endswith("}")


def test_a_bad_port_is_stopped_by_the_check_and_the_last_upstream_stays(zk_server, zk, farm, tmp_path):
    """What nginx -t and haproxy -c do in the boxes, here with a check that wants numeric ports."""
    dest = tmp_path / "web.conf"
    check = "! grep -E 'server [^ ]*:[0-9]*[^0-9 ;]|server [^ ]*:[0-9]+ [^w]' \"$ZKHERD_STAGED_FILE\""
    assert export_once(zk_server, farm, "nginx-upstream.conf.j2", dest, "--check-cmd", check).returncode == 0
    good = dest.read_text()
    zk.set(farm + "/box1", json.dumps(dict(MEMBERS["box1"], port="x y")).encode())
    done = export_once(zk_server, farm, "nginx-upstream.conf.j2", dest, "--check-cmd", check)
    assert done.returncode == 65, done.stderr
    assert "check command rejected the new export" in done.stderr
    assert dest.read_text() == good
