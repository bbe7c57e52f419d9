"""The shared connection options over TLS against a secureClientPort: modules, lookups, the inventory
plugin and the runner; a wrong CA is refused with the reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.playbook import REPO, run_playbook
from tests.support.runner import Zkherd
from tests.support.tls import make_tls_files


def test_modules_and_lookup_over_tls(make_zk_server, tmp_path):
    good = make_tls_files(tmp_path / "good")
    other = make_tls_files(tmp_path / "other")  # a CA that did not sign the server's certificate
    server = make_zk_server(keystore=good.keystore, truststore=good.cert, ssl_client_auth="need")
    tls = {"hosts": server.secure_hosts, "tls_ca": str(good.cert), "tls_cert": str(good.cert),
           "tls_key": str(good.key), "connect_timeout": 3}
    run = run_playbook([
        {"name": "write", "zkherd.ops.znode": {"path": "/tls/x", "value": "over tls"}},
        {"name": "read", "ansible.builtin.debug": {"msg": "{{ lookup('zkherd.ops.znode', '/tls/x') }}"}},
        {"name": "wrong ca", "zkherd.ops.znode_info": {"path": "/tls/x", "tls_ca": str(other.cert)},
         "ignore_errors": True},
        {"name": "no client cert", "zkherd.ops.znode_info": {"path": "/tls/x", "tls_cert": None, "tls_key": None},
         "ignore_errors": True},
    ], defaults=tls, play_vars={"zkherd_hosts": server.secure_hosts, "zkherd_tls_ca": str(good.cert),
                                "zkherd_tls_cert": str(good.cert), "zkherd_tls_key": str(good.key)})
    assert run["write"]["changed"], run.output
    assert run["read"]["msg"] == "over tls"
    for name in ("wrong ca", "no client cert"):
        assert run[name]["failed"] and run[name]["error_kind"] == "connect", name
        assert "cannot connect to ZooKeeper at %s" % server.secure_hosts in run[name]["msg"]
    assert "CERTIFICATE_VERIFY_FAILED" in run["wrong ca"]["msg"]  # the reason, not just a timeout


def test_runner_farm_lookup_and_inventory_over_tls(make_zk_server, tmp_path):
    """`zkherd run` holds a lock over TLS, `zkherd farm join` keeps a member; the farm lookup and the
    farm inventory plugin read it over TLS; a runner given the wrong CA exits 69 naming the
    certificate problem."""
    good = make_tls_files(tmp_path / "good")
    other = make_tls_files(tmp_path / "other")
    server = make_zk_server(keystore=good.keystore, truststore=good.cert, ssl_client_auth="need")
    tls_args = ["--zk", server.secure_hosts, "--tls-ca", str(good.cert), "--tls-cert", str(good.cert),
                "--tls-key", str(good.key), "--session-timeout", "2"]
    runner = Zkherd(["run", *tls_args, "--lock", "/tls/lock", "--", "sleep", "1000"], tmp_path / "run.log")
    (tmp_path / "member.json").write_text('{"enabled": "1"}')
    member = Zkherd(["farm", "join", *tls_args, "/tls/farm", str(tmp_path / "member.json"), "--name", "10.0.0.9"],
                    tmp_path / "join.log")
    runner.wait_log("started child")
    member.wait_log("joined the farm")
    assert runner.has("lock acquired lock=/tls/lock")

    tls_vars = {"zkherd_hosts": server.secure_hosts, "zkherd_tls_ca": str(good.cert),
                "zkherd_tls_cert": str(good.cert), "zkherd_tls_key": str(good.key)}
    lookup = "{{ query('zkherd.ops.farm', '/tls/farm') }}"
    run = run_playbook([{"name": "lookup", "ansible.builtin.debug": {"msg": lookup}}], play_vars=tls_vars)
    assert run["lookup"]["msg"] == [{"farm": "/tls/farm", "name": "10.0.0.9", "data": {"enabled": "1"}}], run.output

    source = tmp_path / "tls.zkherd_farm.yml"
    source.write_text(yaml.safe_dump({"plugin": "zkherd.ops.farm", "hosts": server.secure_hosts, "farms": ["/tls/farm"],
                                      "tls_ca": str(good.cert), "tls_cert": str(good.cert), "tls_key": str(good.key)}))
    listed = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(source), "--list"],
                            cwd=REPO, env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), LANG="C.UTF-8",
                                               ANSIBLE_INVENTORY_UNPARSED_FAILED="1"),
                            capture_output=True, text=True, timeout=120, check=False)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["farm"]["hosts"] == ["10.0.0.9"]

    wrong = Zkherd(["run", "--zk", server.secure_hosts, "--tls-ca", str(other.cert), "--tls-cert", str(good.cert),
                    "--tls-key", str(good.key), "--connect-timeout", "3", "--", "true"], tmp_path / "wrong.log")
    assert wrong.wait() == 69
    line = wrong.wait_log("ERROR cannot connect to ZooKeeper.*")
    assert server.secure_hosts in line and "CERTIFICATE_VERIFY_FAILED" in line, line
    assert not wrong.has("started child")
    member.stop()
    runner.stop()
