"""The farm inventory plugin treats farm data as untrusted (docs/security.md, "Farm data never
steers Ansible"): member fields never become connection, reserved, magic or zkherd_* variables,
host names from farm data are plain host names or addresses, and the inventory cache is keyed by
the cluster and the farms. Real ZooKeeper, real ansible-inventory and ansible-playbook, real ssh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.playbook import REPO

BIN = Path(sys.executable).parent


def ansible_env(**extra):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), LANG="C.UTF-8", ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_TIMEOUT="5",
               ANSIBLE_INVENTORY_UNPARSED_FAILED="1")
    env.update(extra)
    return env


def write_source(tmp_path, config, name="farm.zkherd_farm.yml"):
    source = tmp_path / name
    source.write_text(yaml.safe_dump(dict({"plugin": "zkherd.ops.farm"}, **config)))
    return source


def list_inventory(source, *args):
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(source), "--list", *args], cwd=REPO,
                          env=ansible_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def plain(value):
    """ansible-inventory --list marks strings that are never templated {"__ansible_unsafe": text}."""
    if isinstance(value, dict) and set(value) == {"__ansible_unsafe"}:
        return value["__ansible_unsafe"]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return [plain(v) for v in value] if isinstance(value, list) else value


def one_line(text):
    return " ".join(text.split())  # Ansible wraps long warnings


def test_member_fields_never_run_commands_on_the_controller(zk_server, zk, zk_base, tmp_path):
    """Two ways in through member data, both tried with a real play against the farm group: ssh's
    ProxyCommand through ansible_ssh_common_args, and a shell command in the become program of a local
    connection. Neither command runs; each refused field is a warning naming member and field."""
    farm = zk_base + "/services/web"
    by_ssh, by_local = tmp_path / "pwned-by-ssh", tmp_path / "pwned-by-local"
    zk.create(farm + "/127.0.0.2", json.dumps({
        "enabled": "1",
        "ansible_ssh_common_args": "-o ProxyCommand=\"sh -c 'id > %s'\"" % by_ssh,
    }).encode(), makepath=True)
    zk.create(farm + "/127.0.0.3", json.dumps({
        "enabled": "1",
        "ansible_connection": "local",
        "ansible_become": True, "ansible_become_method": "su", "ansible_become_user": "nobody",
        "ansible_become_exe": "id > %s; su" % by_local,
    }).encode())
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "web", "gather_facts": False,
                                     "tasks": [{"ansible.builtin.ping": {}}]}]))
    for prefix in ("farm_", ""):  # the default, and no prefix at all
        source = write_source(tmp_path, {"hosts": zk_server.hosts, "farms": [farm], "vars_prefix": prefix})
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(source), str(play)], cwd=REPO,
                              env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)
        output = one_line(proc.stdout + proc.stderr)
        assert "127.0.0.2" in output and "127.0.0.3" in output, output  # the play did try both hosts
        assert not by_ssh.exists(), "ProxyCommand from farm data ran: %s" % by_ssh.read_text()
        assert not by_local.exists(), "the become program from farm data ran: %s" % by_local.read_text()

        listed, stderr = list_inventory(source)
        hostvars = plain(listed["_meta"]["hostvars"])
        for host in ("127.0.0.2", "127.0.0.3"):
            assert not [name for name in hostvars[host] if name.startswith("ansible_")], hostvars[host]
        assert hostvars["127.0.0.3"][prefix + "enabled"] == "1"
        assert hostvars["127.0.0.3"]["zkherd_member_data"]["ansible_connection"] == "local"  # data, not a setting
    warnings = one_line(stderr)  # without a prefix, each refused field is named
    for member, field in (("127.0.0.2", "ansible_ssh_common_args"), ("127.0.0.3", "ansible_connection"),
                          ("127.0.0.3", "ansible_become_exe")):
        assert "member %s/%s: field %s refused" % (farm, member, field) in warnings, warnings


def test_fields_go_under_a_prefix_and_what_is_refused_says_so(zk_server, zk, zk_base, tmp_path):
    """By default every field is farm_FIELD and the whole member is zkherd_member_data: the
    haproxy example's `port` no longer trips Ansible's reserved-name warning. Without a prefix,
    ansible_*, reserved names (port, environment, vars), magic variables and zkherd_* are refused -
    also when the prefix itself spells them; trusted_vars lets exact names through, never zkherd_*."""
    farm = zk_base + "/services/web"
    data = {"hostname": "web-1", "port": 8080, "enabled": "1", "ansible_host": "10.9.9.9", "ANSIBLE_USER": "x",
            "environment": {"PATH": "/evil"}, "vars": {}, "inventory_hostname": "other", "hostvars": {},
            "groups": {}, "zkherd_farm": "/elsewhere", "ssh_common_args": "-o ProxyCommand=id", "a-b": "ok"}
    zk.create(farm + "/10.0.0.1", json.dumps(data).encode(), makepath=True)

    listed, stderr = list_inventory(write_source(tmp_path, {"hosts": zk_server.hosts, "farms": [farm]}))
    host = plain(listed["_meta"]["hostvars"]["10.0.0.1"])
    assert {k: v for k, v in host.items() if k.startswith("farm_")} == {"farm_" + k: v for k, v in data.items()}
    assert host["zkherd_member_data"] == data and host["zkherd_farm"] == farm
    assert "reserved name" not in stderr and "refusing" not in stderr, stderr
    assert not [k for k in host if k.startswith("ansible_")]

    listed, stderr = list_inventory(write_source(tmp_path, {"hosts": zk_server.hosts, "farms": [farm],
                                                            "vars_prefix": ""}))
    host = plain(listed["_meta"]["hostvars"]["10.0.0.1"])
    assert {k: v for k, v in host.items() if not k.startswith("zkherd_")} == {
        "hostname": "web-1", "enabled": "1", "ssh_common_args": "-o ProxyCommand=id", "a-b": "ok"}
    assert host["zkherd_farm"] == farm  # the plugin's own, not the member's
    assert "reserved name" not in stderr, stderr  # refused by us first, with what to do
    warnings = one_line(stderr)
    for field in ("port", "ansible_host", "ANSIBLE_USER", "environment", "vars", "inventory_hostname", "hostvars",
                  "groups", "zkherd_farm"):
        assert "member %s/10.0.0.1: field %s " % (farm, field) in warnings, (field, warnings)
    assert "trusted_vars" in warnings and "zkherd_member_data" in warnings  # what to do

    listed, stderr = list_inventory(write_source(tmp_path, {"hosts": zk_server.hosts, "farms": [farm],
                                                            "vars_prefix": "ansible_"}))
    host = plain(listed["_meta"]["hostvars"]["10.0.0.1"])
    assert not [k for k in host if k.lower().startswith("ansible_")], host  # ansible_ssh_common_args refused
    assert "field ssh_common_args (variable ansible_ssh_common_args)" in one_line(stderr), stderr

    listed, stderr = list_inventory(write_source(tmp_path, {"hosts": zk_server.hosts, "farms": [farm],
                                                            "trusted_vars": ["ansible_host", "port"]}))
    host = plain(listed["_meta"]["hostvars"]["10.0.0.1"])
    assert host["ansible_host"] == "10.9.9.9" and host["port"] == 8080 and host["farm_hostname"] == "web-1"
    assert "ANSIBLE_USER" not in host and "farm_ANSIBLE_USER" in host

    for bad in (["zkherd_farm"], ["hostvars"], ["not a name"]):
        source = write_source(tmp_path, {"hosts": zk_server.hosts, "farms": [farm], "trusted_vars": bad})
        proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(source), "--list"], cwd=REPO,
                              env=ansible_env(), capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode != 0 and "trusted_vars" in proc.stderr, (bad, proc.stderr)


def test_host_names_from_farm_data_must_be_plain(zk_server, zk, zk_base, tmp_path):
    """A member name or hostname_field value that is no host name or address (an ssh option, spaces,
    quotes, shell characters) is skipped with a warning; the rest of the farm is listed."""
    farm = zk_base + "/services/db"
    members = {"10.0.0.1": {"hostname": "db-1.example.com"}, "fe80::1": {"hostname": "db-2"},
               "-oProxyCommand=id": {}, "a b": {}, "x'y": {}, "$(id)": {},
               "10.0.0.5": {"hostname": "-oProxyCommand=id"}, "10.0.0.6": {"hostname": "db;id"},
               "10.0.0.7": {"hostname": "db-7"}, "10.0.0.8": {}}
    for name, data in members.items():
        zk.create(farm + "/" + name, json.dumps(data).encode(), makepath=True)
    listed, stderr = list_inventory(write_source(tmp_path, {"hosts": zk_server.hosts, "farms": [farm]}))
    assert sorted(listed["db"]["hosts"]) == ["10.0.0.1", "10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8", "fe80::1"]
    warnings = one_line(stderr)
    for name in ("-oProxyCommand=id", "a b", "x'y", "$(id)"):
        assert "member %s/%s: %r is not a host name" % (farm, name, name) in warnings, (name, warnings)

    listed, stderr = list_inventory(write_source(tmp_path, {"hosts": zk_server.hosts, "farms": [farm],
                                                            "hostname_field": "hostname"}))
    assert sorted(listed["db"]["hosts"]) == ["10.0.0.8", "db-1.example.com", "db-2", "db-7"]
    hostvars = plain(listed["_meta"]["hostvars"])
    assert hostvars["db-7"]["ansible_host"] == "10.0.0.7" and hostvars["db-2"]["ansible_host"] == "fe80::1"
    warnings = one_line(stderr)
    for name, value in (("10.0.0.5", "-oProxyCommand=id"), ("10.0.0.6", "db;id")):
        assert "member %s/%s: %r is not a host name" % (farm, name, value) in warnings, (name, warnings)


def test_inventory_cache_is_keyed_by_cluster_and_farms(zk_server, zk, zk_base, tmp_path):
    """With a real jsonfile cache: adding a farm to the source reads it (no KeyError), and pointing
    the source at another cluster (here another chroot) never serves the first one's members."""
    for chroot, member in (("/a", "10.0.0.1"), ("/b", "10.0.0.2")):
        zk.create(zk_base + chroot + "/services/db/" + member, b'{"enabled": "1"}', makepath=True)
    zk.create(zk_base + "/a/services/web/10.0.1.1", b'{"enabled": "1"}', makepath=True)
    cache = {"cache": True, "cache_plugin": "ansible.builtin.jsonfile", "cache_connection": str(tmp_path / "cache")}
    on_a = dict(cache, hosts=zk_server.hosts + zk_base + "/a", farms=["/services/db"])
    assert list_inventory(write_source(tmp_path, on_a))[0]["db"]["hosts"] == ["10.0.0.1"]

    on_b = dict(on_a, hosts=zk_server.hosts + zk_base + "/b")
    assert list_inventory(write_source(tmp_path, on_b))[0]["db"]["hosts"] == ["10.0.0.2"]

    listed = list_inventory(write_source(tmp_path, dict(on_a, farms=["/services/db", "/services/web"])))[0]
    assert listed["db"]["hosts"] == ["10.0.0.1"] and listed["web"]["hosts"] == ["10.0.1.1"]

    zk.delete(zk_base + "/a/services/db/10.0.0.1")  # the cache of the first source still serves it
    assert list_inventory(write_source(tmp_path, on_a))[0]["db"]["hosts"] == ["10.0.0.1"]


def list_sources(*sources, host=None):
    """ansible-inventory over several sources, parsed in the order given (as `-i A -i B`, or the
    sorted files of an inventory folder): --list, or --host HOST."""
    args = [str(BIN / "ansible-inventory")]
    for source in sources:
        args += ["-i", str(source)]
    args += ["--host", host] if host else ["--list"]
    proc = subprocess.run(args, cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return plain(json.loads(proc.stdout)), proc.stderr


def test_farm_data_never_changes_the_connection_of_a_host_it_did_not_make(zk_server, zk, zk_base, tmp_path):
    """The review's H2: a static inventory defines db1 (ansible_host 192.0.2.10); a farm member named
    198.51.100.66 holding {"hostname": "db1"} used to set db1's ansible_host to its own name, so every
    play against db1 went to the member's address. Now a host that another source defines, a host two
    members claim, and the controller's own names never get a connection from farm data: the member
    joins the farm's group with farm_* variables only (or is left out, for localhost), and a warning
    names what was withheld."""
    farm = zk_base + "/services/web"
    members = {
        "198.51.100.66": {"hostname": "db1", "role": "evil"},  # names a host of the static source
        "198.51.100.67": {"hostname": "db2", "ansible_host": "198.51.100.67", "ansible_port": 2222},
        "10.0.0.1": {"hostname": "web-1"}, "198.51.100.68": {"hostname": "web-1"},  # two members, one host
        "10.0.0.2": {"hostname": "web-2"},  # a host of this farm alone: its address is the member name
        "198.51.100.69": {"hostname": "localhost"},  # Ansible's implicit localhost: the controller
    }
    for name, data in members.items():
        zk.create(farm + "/" + name, json.dumps(data).encode(), makepath=True)
    static = tmp_path / "01-static.yml"
    static.write_text(yaml.safe_dump({"all": {"hosts": {"db1": {"ansible_host": "192.0.2.10"}, "db2": None}}}))
    source = write_source(tmp_path, {"hosts": zk_server.hosts, "farms": [farm], "hostname_field": "hostname",
                                     "trusted_vars": ["ansible_host", "ansible_port"]},
                          name="02-web.zkherd_farm.yml")

    db1, stderr = list_sources(static, source, host="db1")
    assert db1["ansible_host"] == "192.0.2.10", db1  # before the fix: 198.51.100.66
    assert db1["farm_role"] == "evil" and db1["zkherd_member"] == "198.51.100.66"  # farm data is merged
    listed, stderr = list_sources(static, source)
    hostvars = listed["_meta"]["hostvars"]
    assert hostvars["db1"]["ansible_host"] == "192.0.2.10"
    assert "ansible_host" not in hostvars["db2"] and "ansible_port" not in hostvars["db2"], hostvars["db2"]
    assert hostvars["db2"]["zkherd_member_data"]["ansible_port"] == 2222  # still readable as data
    assert "ansible_host" not in hostvars["web-1"], hostvars["web-1"]  # neither member's address
    assert hostvars["web-2"]["ansible_host"] == "10.0.0.2"  # unchanged for a host the farm alone defines
    assert sorted(listed["web"]["hosts"]) == ["db1", "db2", "web-1", "web-2"]
    assert "localhost" not in hostvars and "localhost" not in json.dumps(listed["web"]), listed
    warnings = one_line(stderr)
    for member, text in (("198.51.100.66", "names db1, a host that another inventory source defines"),
                         ("198.51.100.67", "names db2, a host that another inventory source defines"),
                         ("198.51.100.68", "names web-1, which members 10.0.0.1 and 198.51.100.68 both name"),
                         ("198.51.100.69", "names localhost")):
        assert "member %s/%s: %s" % (farm, member, text) in warnings, (member, warnings)

    # the farm source alone: nothing else defines db1, so the member's address is used as before
    alone = list_sources(source, host="db1")[0]
    assert alone["ansible_host"] == "198.51.100.66"


def test_warnings_never_print_raw_names_from_farm_data(zk_server, zk, zk_base, tmp_path):
    """Field names and host names from farm data reach the operator's terminal only escaped (no
    terminal escape sequence, no bidi override) and bounded in length."""
    farm = zk_base + "/services/web"
    escape = "\x1b]0;owned\x07\x1b[2J"
    data = {"ansible_" + escape: 1, "ansible_\u202etxt.exe": 2, "ansible_" + "A" * 5000: 3}
    zk.create(farm + "/10.0.0.1", json.dumps(data).encode(), makepath=True)
    zk.create(farm + "/10.0.0.2", json.dumps({"hostname": "web" + escape + "x" * 5000}).encode())
    zk.create(farm + "/b\u202eexe.txt", b"not json")
    stderr = list_inventory(write_source(tmp_path, {"hosts": zk_server.hosts, "farms": [farm], "vars_prefix": "",
                                                    "hostname_field": "hostname"}))[1]
    assert "\x1b" not in stderr and "\x07" not in stderr and "\u202e" not in stderr, repr(stderr)[:3000]
    assert "A" * 500 not in stderr and "x" * 500 not in stderr, repr(stderr)[:3000]
    warnings = one_line(stderr)
    assert "field ansible_\\x1b]0;owned\\x07\\x1b[2J refused" in warnings, warnings  # shown, escaped
    assert "field ansible_\\u202etxt.exe refused" in warnings, warnings
    assert "member %s/10.0.0.2: 'web\\x1b]0;owned" % farm in warnings, warnings
    assert "b\\u202eexe.txt" in warnings, warnings
