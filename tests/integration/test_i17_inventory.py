"""The farm inventory plugin with the docs' own haproxy member (issue 17): a `port` field gives no
"Found variable using reserved name" warning from Ansible, and the plugin's page speaks of no
`error_kind` (inventory plugins have none: that is for modules' task results)."""

from __future__ import annotations

import json
import subprocess

from tests.integration.test_inventory_trust import BIN, ansible_env, list_inventory, one_line, plain, write_source
from tests.support.playbook import REPO


def test_member_with_port(zk_server, zk, zk_base, tmp_path):
    farm = zk_base + "/services/web"
    zk.create(farm + "/10.0.0.5", json.dumps({"port": "8080", "enabled": "1", "name": "web-1"}).encode(),
              makepath=True)
    source = write_source(tmp_path, {"hosts": zk_server.hosts, "farms": [farm],
                                     "keyed_groups": [{"key": "farm_enabled", "prefix": "enabled"}],
                                     "compose": {"web_port": "farm_port | int"}})
    inventory, stderr = list_inventory(source)
    assert "reserved name" not in one_line(stderr), stderr
    host = plain(inventory["_meta"]["hostvars"]["10.0.0.5"])
    assert host["farm_port"] == "8080" and host["web_port"] == 8080
    assert host["zkherd_member_data"]["port"] == "8080"
    assert "port" not in host
    assert "10.0.0.5" in inventory["enabled_1"]["hosts"]

    # without a prefix, port stays out, said once by the plugin in its own words
    inventory, stderr = list_inventory(write_source(tmp_path, {"hosts": zk_server.hosts, "farms": [farm],
                                                               "vars_prefix": ""}))
    text = one_line(stderr)
    assert "Found variable using reserved name" not in text, stderr
    assert "port" in text and "10.0.0.5" in text, stderr
    host = plain(inventory["_meta"]["hostvars"]["10.0.0.5"])
    assert "port" not in host and host["enabled"] == "1"


def test_inventory_page_has_no_error_kind():
    page = subprocess.run([str(BIN / "ansible-doc"), "-t", "inventory", "zkherd.ops.farm"], cwd=REPO,
                          env=ansible_env(), capture_output=True, text=True, timeout=120, check=True).stdout
    assert "error_kind" not in page
    assert "error_kind" not in (REPO / "docs/plugins/farm_inventory.md").read_text()
    module = subprocess.run([str(BIN / "ansible-doc"), "-t", "module", "zkherd.ops.znode"], cwd=REPO,
                            env=ansible_env(), capture_output=True, text=True, timeout=120, check=True).stdout
    assert "error_kind" in module  # modules keep it
