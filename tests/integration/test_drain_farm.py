"""`zkherd farm drain|undrain`: a member marked drained (by a real `farm join`) is left out of
`farm export` by default, kept with --include-drained, filterable in templates; undrain brings it
back. The mark reaches the member's local file (join syncs both ways)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.runner import REPO, Zkherd
from tests.support.zkutil import wait_for


def zkherd(*args):
    done = subprocess.run([sys.executable, "-m", "zkherd", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=30, check=False, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert "Traceback" not in done.stderr, done.stderr
    return done


def exported(hosts, farm, dest, *extra):
    done = zkherd("--zk", hosts, "farm", "export", farm, str(dest), "--once", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(dest.read_text())


def test_farm_drain_hides_the_member_from_export(zk_server, zk, zk_base, tmp_path):
    hosts, farm, dest = zk_server.hosts, zk_base + "/web", tmp_path / "web.json"
    conf = tmp_path / "h1.json"
    conf.write_text(json.dumps({"port": 80}))
    zk.create(farm + "/h2", json.dumps({"port": 81}).encode(), makepath=True)
    join = Zkherd(["farm", "join", "--zk", hosts, farm, str(conf), "--name", "h1"], tmp_path / "join.log")
    try:
        wait_for(lambda: zk.exists(farm + "/h1"))
        assert set(exported(hosts, farm, dest)) == {"h1", "h2"}
        for _twice in range(2):  # idempotent
            done = zkherd("--zk", hosts, "farm", "drain", farm, "--host", "h1")
            assert done.returncode == 0, done.stderr
        assert json.loads(zk.get(farm + "/h1")[0]) == {"port": 80, "drained": True}
        assert set(exported(hosts, farm, dest)) == {"h2"}
        assert set(exported(hosts, farm, dest, "--include-drained")) == {"h1", "h2"}
        wait_for(lambda: json.loads(conf.read_text()).get("drained") is True)  # kept over a restart of join
        template = tmp_path / "lb.j2"
        template.write_text('{% for name in farm("' + farm + '", filter="!drained") %}{{ name }} {% endfor %}')
        done = zkherd("--zk", hosts, "render", "%s=%s" % (template, tmp_path / "lb.conf"), "--once")
        assert done.returncode == 0 and (tmp_path / "lb.conf").read_text() == "h2 ", done.stderr
        assert zkherd("--zk", hosts, "farm", "undrain", farm, "--host", "h1").returncode == 0
        assert zkherd("--zk", hosts, "farm", "undrain", farm, "--host", "h1").returncode == 0
        assert set(exported(hosts, farm, dest)) == {"h1", "h2"}
        assert zkherd("--zk", hosts, "farm", "drain", farm, "--host", "nobody").returncode == 1
        assert zkherd("--zk", hosts, "farm", "drain", farm).returncode == 64
    finally:
        join.stop()
