"""The zkherd.ops.znode lookup against a real ZooKeeper."""

from __future__ import annotations

from tests.support.playbook import run_playbook


def fact(name, expr):
    return {"name": name, "ansible.builtin.debug": {"msg": expr}, "ignore_errors": True}


def test_many_terms_decoding_children_default(zk_server, zk, zk_base):
    zk.create(zk_base + "/a", b"alpha")
    zk.create(zk_base + "/j", b'{"k": [1, 2]}')
    zk.create(zk_base + "/y", b"k: v\n")
    zk.create(zk_base + "/dir/x", b"", makepath=True)
    zk.create(zk_base + "/dir/w", b"")
    b = zk_base
    run = run_playbook([
        fact("many", "{{ query('zkherd.ops.znode', '%s/a', '%s/j') }}" % (b, b)),
        fact("json", "{{ lookup('zkherd.ops.znode', '%s/j', value_type='json') }}" % b),
        fact("yaml", "{{ lookup('zkherd.ops.znode', '%s/y', value_type='yaml') }}" % b),
        fact("children", "{{ query('zkherd.ops.znode', '%s/dir', children=true) }}" % b),
        fact("default", "{{ query('zkherd.ops.znode', '%s/a', '%s/missing', default='dflt') }}" % (b, b)),
        fact("missing", "{{ lookup('zkherd.ops.znode', '%s/missing') }}" % b),
        fact("malformed", "{{ lookup('zkherd.ops.znode', '%s/a', value_type='json') }}" % b),
        fact("bad path", "{{ lookup('zkherd.ops.znode', 'relative') }}"),
    ], play_vars={"zkherd_hosts": zk_server.hosts})
    assert run["many"]["msg"] == ["alpha", '{"k": [1, 2]}']
    assert run["json"]["msg"] == {"k": [1, 2]}
    assert run["yaml"]["msg"] == {"k": "v"}
    assert run["children"]["msg"] == [["w", "x"]]
    assert run["default"]["msg"] == ["alpha", "dflt"]
    assert run["missing"]["failed"] and "%s/missing does not exist" % b in run["missing"]["msg"]
    assert run["malformed"]["failed"] and "data of %s/a is not valid JSON" % b in run["malformed"]["msg"]
    assert run["bad path"]["failed"] and "must start with '/'" in run["bad path"]["msg"]


def test_connection_options_from_vars_env_and_errors(zk_server, zk, zk_base):
    zk.create(zk_base + "/v", b"val")
    from kazoo.security import make_digest_acl

    zk.create(zk_base + "/locked", b"hidden", acl=[make_digest_acl("bob", "pw", all=True)])
    expr = "{{ lookup('zkherd.ops.znode', '/v') }}"
    run = run_playbook([
        fact("chroot var", expr),
        fact("auth var", "{{ lookup('zkherd.ops.znode', '/locked') }}"),
        fact("no auth", "{{ lookup('zkherd.ops.znode', '/locked', auth='bob:wrong') }}"),
        fact("unreachable", "{{ lookup('zkherd.ops.znode', '/v', hosts='127.0.0.1:1', connect_timeout=1) }}"),
    ], play_vars={"zkherd_hosts": zk_server.hosts + zk_base, "zkherd_auth": "bob:pw"})
    assert run["chroot var"]["msg"] == "val"
    assert run["auth var"]["msg"] == "hidden"
    assert run["no auth"]["failed"] and "not authorized to read" in run["no auth"]["msg"]
    assert run["unreachable"]["failed"] and "cannot connect to ZooKeeper at 127.0.0.1:1" in run["unreachable"]["msg"]

    from_env = run_playbook([fact("env", expr)], env={"ZKHERD_HOSTS": zk_server.hosts + zk_base})
    assert from_env["env"]["msg"] == "val"
