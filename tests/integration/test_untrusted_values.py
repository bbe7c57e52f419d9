"""Values from ZooKeeper are untrusted input, and every result about them must be true (issue 12,
items 10-14), against a real ZooKeeper with real modules, lookups and `zkherd` processes:

- 1, 1.0 and true are three different values (znode, farm, farm join);
- an empty name is refused, never taken for its parent (farm, znode_tree, farm join --name, farm get/set);
- a 342-byte YAML "billion laughs" is refused, with a memory limit on every process so that a
  regression fails the test instead of taking the machine down;
- an export holds only what its format allows (a real PHP 8 includes it, a strict JSON parser reads it);
- diffs show every change; JSON null can be stored; the `auth` ACL scheme works in the modules.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest
from kazoo.security import make_digest_acl_credential

from tests.support import procs
from tests.support.playbook import run_playbook
from tests.support.runner import REPO, Zkherd
from tests.support.zkutil import wait_for

MEMORY_LIMIT = 1 << 30  # a healthy run needs under 400 MB; the bomb asks for 2.8 GB

# The classic "billion laughs": 342 bytes of YAML that expand to 9**9 (387 million) strings.
BOMB = "".join(['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'] + [
    "%s: &%s [%s]\n" % (cur, cur, ",".join(["*" + prev] * 9)) for prev, cur in zip("abcdefgh", "bcdefghi")])


def task(name, module, **args):
    return {"name": name, "zkherd.ops." + module: args, "ignore_errors": True}


def debug(name, expr):
    return {"name": name, "ansible.builtin.debug": {"msg": expr}, "ignore_errors": True}


def zkherd(*args, timeout=60):
    """A `zkherd` process with an address-space limit, as the tests of the memory bounds need."""
    return subprocess.run([sys.executable, "-m", "zkherd", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False, preexec_fn=_limit_memory)


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def stored(zk, path):
    return json.loads(zk.get(path)[0])


def strict_json(text):
    """Python's json as RFC 8259 says: no NaN, Infinity or -Infinity."""
    def refuse(name):
        raise ValueError("not JSON: %s" % name)

    return json.loads(text, parse_constant=refuse)


def test_bomb_is_342_bytes():
    assert len(BOMB.encode()) == 342


# 10. values compare with their types

def test_znode_compares_values_with_their_types(zk_server, zk, zk_base):
    path = zk_base + "/flags"
    zk.create(path, b'{"enabled": 1, "ratio": 1}')
    zk.create(zk_base + "/y", b"enabled: 1\n")
    run = run_playbook([
        task("true over 1", "znode", path=path, value_type="json", value={"enabled": True, "ratio": 1}),
        task("float over int", "znode", path=path, value_type="json", value={"enabled": True, "ratio": 1.0}),
        task("again", "znode", path=path, value_type="json", value={"ratio": 1.0, "enabled": True}),
        task("text again", "znode", path=path, value_type="json", value='{"ratio": 1.0, "enabled": true}'),
        task("yaml true over 1", "znode", path=zk_base + "/y", value_type="yaml", value={"enabled": True}),
    ], hosts=zk_server.hosts, extra_args=["--diff"])
    first = run["true over 1"]
    assert first["changed"], first
    assert stored(zk, path) == {"enabled": True, "ratio": 1} and stored(zk, path)["enabled"] is True
    assert '"enabled": 1' in first["diff"]["before"] and '"enabled": true' in first["diff"]["after"]
    assert run["float over int"]["changed"] and isinstance(stored(zk, path)["ratio"], float)
    assert not run["again"]["changed"] and not run["text again"]["changed"]  # key order is no change
    assert run["yaml true over 1"]["changed"] and zk.get(zk_base + "/y")[0] == b"enabled: true\n"


def test_farm_module_returns_what_zookeeper_holds(zk_server, zk, zk_base):
    farm = zk_base + "/db"
    zk.create(farm + "/m1", b'{"enabled": 1, "weight": 2}', makepath=True)
    run = run_playbook([
        task("set true", "farm", farm=farm, member="m1", set={"enabled": True}),
        task("set float", "farm", farm=farm, member="m1", set={"weight": 2.0}),
        task("again", "farm", farm=farm, member="m1", set={"enabled": True, "weight": 2.0}),
    ], hosts=zk_server.hosts)
    assert run["set true"]["changed"], run["set true"]
    assert stored(zk, farm + "/m1")["enabled"] is True
    assert run["set float"]["changed"] and isinstance(stored(zk, farm + "/m1")["weight"], float)
    assert not run["again"]["changed"]
    assert run["again"]["member"] == stored(zk, farm + "/m1")
    assert [type(v) for v in run["again"]["member"].values()] == [bool, float]


def test_farm_join_merges_values_with_their_types(zk_server, zk, zk_base, tmp_path):
    farm, conf = zk_base + "/web", tmp_path / "member.json"
    node = farm + "/10.0.0.1"
    zk.ensure_path(farm)
    conf.write_text('{"enabled": 1, "weight": 2}\n')
    member = Zkherd(["farm", "join", farm, str(conf), "--zk", zk_server.hosts, "--name", "10.0.0.1",
                     "--poll", "0.1"], tmp_path / "join.log")
    try:
        member.wait_log("joined the farm")
        zk.set(node, b'{"enabled": true, "weight": 2}')  # `zkherd.ops.farm set: {enabled: true}`
        wait_for(lambda: json.loads(conf.read_text())["enabled"] is True, 20,
                 message=lambda: "true in %s, has %s" % (conf, conf.read_text()))
        conf.write_text('{"enabled": true, "weight": 2.0}\n')  # a local edit of the type only
        wait_for(lambda: isinstance(stored(zk, node)["weight"], float), 20,
                 message=lambda: "2.0 in %s, has %s" % (node, zk.get(node)[0]))
        assert stored(zk, node) == {"enabled": True, "weight": 2.0}
        assert "Traceback" not in member.log()
    finally:
        member.stop()


# 11. empty names

def test_empty_names_are_refused(zk_server, zk, zk_base, tmp_path):
    farm = zk_base + "/farm"
    zk.create(farm, b"{}")
    run = run_playbook([
        task("farm member", "farm", farm=farm, member="", set={"enabled": "1"}),
        task("farm member create", "farm", farm=zk_base + "/new", member="", set={"a": "1"}, create=True),
        task("tree key", "znode_tree", path=zk_base + "/tree", tree={"ok": "1", "": "x"}),
        debug("znode lookup", "{{ lookup('zkherd.ops.znode', '') }}"),
        debug("farm lookup", "{{ query('zkherd.ops.farm', '') }}"),
    ], hosts=zk_server.hosts, play_vars={"zkherd_hosts": zk_server.hosts})
    for name in ("farm member", "farm member create", "tree key"):
        result = run[name]
        assert result["failed"] and result.get("error_kind") == "usage", (name, result)
        assert "empty" in result["msg"], (name, result["msg"])
    assert run["znode lookup"]["failed"] and "non-empty" in run["znode lookup"]["msg"]
    assert run["farm lookup"]["failed"] and "non-empty" in run["farm lookup"]["msg"]
    assert zk.get(farm)[0] == b"{}"  # the farm node itself is never taken for a member
    assert zk.exists(zk_base + "/new") is None and zk.exists(zk_base + "/tree") is None

    for args in (["get", farm + "/m", ""], ["set", farm + "/m", "", "1"], ["unset", farm + "/m", ""]):
        refused = zkherd("farm", *args, "--zk", zk_server.hosts)
        assert refused.returncode == 64, (args, refused.stderr)
        assert "bad field path ''" in refused.stderr and "Traceback" not in refused.stderr
    (tmp_path / "conf.json").write_text('{"a": "1"}')
    for name in ("", "a/b", ".."):
        join = zkherd("farm", "join", farm, str(tmp_path / "conf.json"), "--zk", zk_server.hosts, "--name", name,
                      timeout=30)
        assert join.returncode == 64, (name, join.stderr)
        assert "znode name" in join.stderr and "Traceback" not in join.stderr
    cron = zkherd("cron", "--election", zk_base + "/pool", "--name", "", "--zk", zk_server.hosts, "--", "true")
    assert cron.returncode == 64 and "must not be empty" in cron.stderr, cron.stderr
    assert zk.get_children(farm) == [] and zk.get(farm)[0] == b"{}"


# 12. data that explodes

def test_yaml_bomb_is_refused_by_modules_and_lookup(zk_server, zk, zk_base):
    bomb, other = zk_base + "/bomb", zk_base + "/other"
    zk.create(bomb, BOMB.encode())
    zk.create(other, BOMB.encode())
    run = run_playbook([
        task("info", "znode_info", path=bomb, value_type="yaml"),
        task("info tree", "znode_info", path=zk_base, value_type="yaml", recursive=True),
        task("znode read", "znode", path=bomb, value_type="yaml"),
        dict(task("znode replace", "znode", path=other, value_type="yaml", value={"a": 1}), diff=True),
        task("znode input", "znode", path=zk_base + "/input", value_type="yaml", value=BOMB),
        debug("lookup", "{{ lookup('zkherd.ops.znode', '%s', value_type='yaml') }}" % bomb),
    ], hosts=zk_server.hosts, play_vars={"zkherd_hosts": zk_server.hosts}, memory_limit=MEMORY_LIMIT, timeout=600)
    for name in ("info", "info tree", "lookup"):
        result = run[name]
        assert result["failed"], (name, result)
        assert "data of %s is not usable YAML: it expands to more than" % bomb in result["msg"], (name, result["msg"])
    assert run["info"]["error_kind"] == "usage"
    read = run["znode read"]
    assert not read["failed"] and not read["changed"] and read["value"] is None  # documented: null
    replace = run["znode replace"]
    assert replace["changed"] and replace["value"] == {"a": 1} and zk.get(other)[0] == b"a: 1\n"
    assert replace["diff"]["before"].startswith("a: &a [")  # what could not be decoded, as it is
    assert run["znode input"]["failed"] and "value is not usable YAML" in run["znode input"]["msg"]
    assert zk.exists(zk_base + "/input") is None
    assert "MemoryError" not in run.output


def test_yaml_bomb_is_refused_by_the_runner(zk_server, zk, zk_base, tmp_path):
    farm, conf = zk_base + "/farm", tmp_path / "member.yml"
    zk.ensure_path(farm)
    conf.write_text(BOMB)
    log = tmp_path / "join.log"
    proc = procs.spawn(["prlimit", "--as=%d" % MEMORY_LIMIT, sys.executable, "-m", "zkherd", "farm", "join", farm,
                        str(conf), "--zk", zk_server.hosts, "--name", "m1", "--poll", "0.1"], log, cwd=REPO)
    try:
        wait_for(lambda: "cannot sync the member" in log.read_text() or proc.poll() is not None, 60,
                 message=lambda: "a refusal in the log:\n" + log.read_text()[-2000:])
        text = log.read_text()
        assert proc.poll() is None, text[-2000:]  # still running, waiting for a good file
        assert "is not usable YAML: it expands to more than" in text and "Traceback" not in text
        conf.write_text("enabled: '1'\n")
        wait_for(lambda: zk.exists(farm + "/m1"), 20, message=lambda: "the member; log:\n" + log.read_text())
        assert stored(zk, farm + "/m1") == {"enabled": "1"}
    finally:
        procs.terminate(proc)

    config = tmp_path / "bomb.yml"
    config.write_text("zk:\n" + "".join("  - " + line.split(": ", 1)[1] for line in BOMB.splitlines(True)))
    refused = zkherd("farm", "ls", farm, "--config", str(config))
    assert refused.returncode == 64, refused.stderr
    assert "config file %s is not usable YAML: it expands to more than" % config in refused.stderr


# 13. exports a consumer can read

@pytest.fixture
def php():
    found = subprocess.run(["php", "-v"], capture_output=True, text=True, check=False)
    assert found.returncode == 0 and found.stdout.startswith("PHP 8"), "PHP 8 is needed (scripts/bootstrap.sh)"
    return "php"


def test_export_writes_only_what_the_format_allows(zk_server, zk, zk_base, tmp_path, php):
    farm = zk_base + "/db"
    zk.create(farm + "/1.2.3.4", b'{"w": Infinity, "x": {"n": NaN}, "big": 1e999, "low": -Infinity, "ok": 1.5}',
              makepath=True)
    zk.create(farm + "/1.2.3.5", b'{"w": 2, "x": {"n": 0.5}}')
    dest = tmp_path / "db.php"
    out = zkherd("farm", "export", farm, str(dest), "--format", "php", "--once", "--zk", zk_server.hosts)
    assert out.returncode == 0, out.stderr
    check = ("$m = include '%s'; $a = $m['1.2.3.4'];"
             "echo json_encode([is_infinite($a['w']) && $a['w'] > 0, is_nan($a['x']['n']), is_infinite($a['big']),"
             " $a['low'] < 0 && is_infinite($a['low']), $a['ok'], $m['1.2.3.5']['x']['n']]);" % dest)
    included = subprocess.run([php, "-r", check], capture_output=True, text=True, check=False)
    assert included.returncode == 0, included.stdout + included.stderr + dest.read_text()
    assert json.loads(included.stdout) == [True, True, True, True, 1.5, 0.5]

    dest = tmp_path / "db.json"
    out = zkherd("farm", "export", farm, str(dest), "--once", "--zk", zk_server.hosts)
    assert out.returncode == 0, out.stderr
    exported = strict_json(dest.read_text())
    assert exported["1.2.3.4"] == {"w": None, "x": {"n": None}, "big": None, "low": None, "ok": 1.5}
    assert exported["1.2.3.5"] == {"w": 2, "x": {"n": 0.5}}
    for field, shown in (("w", "Infinity"), ("x.n", "NaN"), ("big", "Infinity"), ("low", "-Infinity")):
        assert "WARNING member 1.2.3.4 field %s holds %s, which JSON cannot hold: exported as null" % (
            field, shown) in out.stderr, out.stderr

    template = tmp_path / "t.j2"
    template.write_text("{{ members | tojson }}\n")
    dest = tmp_path / "t.json"
    out = zkherd("farm", "export", farm, str(dest), "--format", "template", "--template", str(template), "--once",
                 "--zk", zk_server.hosts)
    assert out.returncode == 65 and "cannot render" in out.stderr and not dest.exists()


# 14. diffs that show the change; JSON null; the auth scheme

def test_diffs_show_every_change(zk_server, zk, zk_base):
    zk.create(zk_base + "/nl", b"a\n")
    zk.create(zk_base + "/bin", b"\xff\x00\x01")
    zk.create(zk_base + "/long", b"x" * 30000 + b"1")
    for leaf in ("sub/1", "sub/2/deep"):
        zk.create(zk_base + "/gone/" + leaf, b"v", makepath=True)
    run = run_playbook([
        task("newline", "znode", path=zk_base + "/nl", value="a"),
        task("binary", "znode", path=zk_base + "/bin", value_type="base64", value="/wAC"),
        task("long", "znode", path=zk_base + "/long", value="x" * 30000 + "2"),
        task("subtree", "znode", path=zk_base + "/gone", state="absent", recursive=True),
    ], hosts=zk_server.hosts, extra_args=["--diff"])
    for name in ("newline", "binary", "long"):
        diff = run[name]["diff"]
        assert run[name]["changed"] and diff["before"] != diff["after"], (name, diff)
    assert "sha256" in run["binary"]["diff"]["before"]
    before = run["subtree"]["diff"]["before"]
    for leaf in ("sub", "sub/1", "sub/2", "sub/2/deep"):
        assert "%s/gone/%s" % (zk_base, leaf) in before, before


def test_json_null_can_be_stored(zk_server, zk, zk_base):
    zk.create(zk_base + "/empty", b"")
    run = run_playbook([
        task("null", "znode", path=zk_base + "/empty", value_type="json", value="null"),
        task("again", "znode", path=zk_base + "/empty", value_type="json", value="null"),
        task("new", "znode", path=zk_base + "/new", value_type="json", value="null"),
    ], hosts=zk_server.hosts)
    assert run["null"]["changed"] and zk.get(zk_base + "/empty")[0] == b"null"
    assert not run["again"]["changed"] and run["again"]["value"] is None
    assert zk.get(zk_base + "/new")[0] == b"null"


def test_auth_acl_scheme_in_the_modules(zk_server, zk, zk_base, zk_admin):
    auth = "deployer:s3cret"
    own = ("digest", make_digest_acl_credential("deployer", "s3cret"))
    acl = [{"scheme": "auth", "perms": "rwcda"}, {"scheme": "world", "perms": "r"}]
    run = run_playbook([
        task("create", "znode", path=zk_base + "/mine", value="1", auth=auth, acl=acl),
        task("again", "znode", path=zk_base + "/mine", value="1", auth=auth, acl=acl),
        task("tree", "znode_tree", path=zk_base + "/t", tree={"a": "1"}, auth=auth, acl=acl),
        task("member", "farm", farm=zk_base + "/f", member="m", set={"a": "1"}, create=True, auth=auth, acl=acl),
        task("no credentials", "znode", path=zk_base + "/nocred", value="1", acl=acl),
    ], hosts=zk_server.hosts)
    assert run["create"]["changed"] and not run["again"]["changed"], run["again"]
    assert {"scheme": "digest", "id": own[1], "perms": ["read", "write", "create", "delete", "admin"]} in (
        run["create"]["acl"])
    for path in ("/mine", "/t/a", "/f/m"):
        acls = {(a.id.scheme, a.id.id, a.perms) for a in zk_admin.get_acls(zk_base + path)[0]}
        assert acls == {own + (31,), ("world", "anyone", 1)}, (path, acls)
    refused = run["no credentials"]
    assert refused["failed"] and refused["error_kind"] == "usage" and "auth" in refused["msg"]
    assert zk.exists(zk_base + "/nocred") is None
