from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.zkherd.ops.plugins.filter.zookeeper import zookeeper_hosts


def test_the_ensemble_where_the_zookeeper_role_binds_it():
    hostvars = {"zk1": {"ansible_host": "10.0.0.11"},
                "zk2": {"ansible_host": "10.0.0.12", "zookeeper_client_port": 2281},
                "zk3": {"zookeeper_address": "zk3.example.com"}, "app": {}}
    groups = {"zookeeper": ["zk1", "zk2", "zk3"], "app": ["app"]}
    assert zookeeper_hosts(groups, hostvars) == "10.0.0.11:2181,10.0.0.12:2281,zk3.example.com:2181"
    assert zookeeper_hosts({"zk": ["zk1"]}, hostvars, "zk") == "10.0.0.11:2181"


def test_no_group_is_the_runners_default():
    assert zookeeper_hosts({}, {}) == "127.0.0.1:2181"
    assert zookeeper_hosts({"zookeeper": []}, {}) == "127.0.0.1:2181"
    assert zookeeper_hosts(None, {}) == "127.0.0.1:2181"


def test_addresses_and_tls():
    hostvars = {
        "a": {"ansible_host": "10.0.0.1", "zookeeper_client_address": ""},  # every address: its own
        "b": {"ansible_host": "10.0.0.2", "zookeeper_client_address": "0.0.0.0"},
        "c": {"zookeeper_address": "fd00::3"},
        "d": {"ansible_host": "10.0.0.4", "zookeeper_secure_client_port": 2281},  # TLS: the secure port
        "e": {"ansible_host": "10.0.0.5", "zookeeper_secure_client_port": "2281",
              "zookeeper_secure_client_address": "10.9.9.5", "zookeeper_client_address": "127.0.0.1"},
        "f": {"zookeeper_address": "127.0.0.1", "zookeeper_client_port": 25181},
        "g": {"zookeeper_address": "127.0.0.1", "zookeeper_client_port": 25181},  # the same: once
    }
    assert zookeeper_hosts({"zookeeper": list(hostvars)}, hostvars) == (
        "10.0.0.1:2181,10.0.0.2:2181,[fd00::3]:2181,10.0.0.4:2281,10.9.9.5:2281,127.0.0.1:25181")


def test_a_port_that_is_no_number():
    with pytest.raises(AnsibleFilterError, match="zookeeper_client_port of zk1"):
        zookeeper_hosts({"zookeeper": ["zk1"]}, {"zk1": {"zookeeper_client_port": "two"}})
