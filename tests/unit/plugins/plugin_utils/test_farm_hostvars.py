from __future__ import annotations

import pytest

from ansible_collections.zkherd.ops.plugins.plugin_utils.farm_hostvars import Claims, HostVarRules, host_name_problem


@pytest.mark.parametrize("name", ["10.0.0.1", "fe80::1", "db-01.example.com", "db_1", "web1.", "2001:db8::7"])
def test_host_names(name):
    assert host_name_problem(name) is None


@pytest.mark.parametrize("name", ["-oProxyCommand=id", ".hidden", "a b", "x'y", "$(id)", "a;b", "", "a\nb", 7, None,
                                  "a" * 254, "ex\u00e4mple"])
def test_not_host_names(name):
    assert host_name_problem(name)


def test_prefix_is_applied_before_the_check():
    found, problems = HostVarRules("ansible_", []).variables({"ssh_common_args": "x", "x": 1})
    assert found == {} and len(problems) == 2  # ansible_x is refused as well
    found, problems = HostVarRules("", []).variables({"port": 1, "Ansible_Host": "h", "zkherd_farm": "/f", "a": 2})
    assert found == {"a": 2} and len(problems) == 3
    assert not [p for p in problems if "zkherd_farm" in p.split(";")[0] and "trusted_vars" in p]


def test_trusted_vars():
    rules = HostVarRules("farm_", ["ansible_host", "ansible_port"])
    found, problems = rules.variables({"ansible_host": "10.0.0.1", "ansible_port": 2222, "ansible_user": "u"})
    assert found == {"ansible_host": "10.0.0.1", "ansible_port": 2222, "farm_ansible_user": "u"} and not problems
    found, problems = rules.variables({"ansible_host": "-oProxyCommand=id"})
    assert found == {} and "not a host name" in problems[0]
    for bad in ("zkherd_member", "hostvars", "a-b", ""):
        with pytest.raises(ValueError, match="trusted_vars"):
            HostVarRules("", [bad])


def test_warnings_show_field_names_escaped_and_bounded():
    problems = HostVarRules("", []).variables({"ansible_\x1b[2J": 1, "ansible_" + "A" * 5000: 2})[1]
    assert all("\x1b" not in p and len(p) < 1000 for p in problems), problems
    assert "field ansible_\\x1b[2J refused" in problems[0]


def test_claims():
    claims = Claims(["db1", "localhost"])
    for host, member in (("db1", "198.51.100.66"), ("web-1", "10.0.0.1"), ("web-1", "10.0.0.3"),
                         ("web-2", "10.0.0.2"), ("web-2", "10.0.0.2"), ("127.0.0.1", "10.0.0.4")):
        claims.add(host, member)
    assert "another inventory source" in claims.not_owned("db1")
    assert "members 10.0.0.1 and 10.0.0.3 both name" in claims.not_owned("web-1")
    assert claims.not_owned("web-2") is None  # one member, in one farm or several
    assert claims.left_out("127.0.0.1") and claims.left_out("::1") and claims.left_out("localhost") is None
    assert claims.left_out("web-2") is None
    many = Claims([])
    for i in range(9):
        many.add("h", "10.0.0.%d" % i)
    assert "10.0.0.4 and 4 more all name" in many.not_owned("h")
