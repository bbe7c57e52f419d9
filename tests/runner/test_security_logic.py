"""Security logic of the runner without ZooKeeper: --acl becomes the client's default ACL,
mirrored directories and DJB directories are written only inside themselves. Against real
servers: tests/integration/test_security.py."""

from __future__ import annotations

import os

import pytest

from zkherd import cli, config
from zkherd.common import acl
from zkherd.common.connection import ZkError, make_client
from zkherd.mirror import safe_join

BOB = acl.digest_id("bob", "pw")


def test_acl_option_and_config_key_become_the_default_acl_of_the_client(tmp_path, monkeypatch):
    monkeypatch.delenv("ZKHERD_AUTH", raising=False)
    values = cli.parse(["run", "--acl", "auth::rwcda", "--acl", "world:anyone:r", "--auth", "bob:pw", "--", "true"])
    settings = config.connection_settings(values)
    assert settings.default_acl == [("auth", "", 31), ("world", "anyone", 1)]
    client = make_client(settings)
    assert sorted((a.id.scheme, a.id.id, a.perms) for a in client.default_acl) == settings.default_acl
    conf = tmp_path / "c.yml"
    conf.write_text("acl:\n  - digest:%s:rwcda\n  - ip:10.0.0.0/8:r\n" % BOB)
    values = cli.parse(["farm", "join", "/f", str(tmp_path), "--config", str(conf)])
    assert config.connection_settings(values).default_acl == [("digest", BOB, 31), ("ip", "10.0.0.0/8", 1)]
    assert make_client(config.connection_settings(cli.parse(["pool", "ls", "--election", "/e"]))).default_acl is None


def test_acl_errors_are_usage_errors(capsys, monkeypatch):
    monkeypatch.delenv("ZKHERD_AUTH", raising=False)
    assert cli.main(["run", "--acl", "auth::rwcda", "--", "true"]) == 64
    assert "needs --auth-file" in capsys.readouterr().err
    assert cli.main(["run", "--acl", "digest:bob:plain-password:rwcda", "--", "true"]) == 64
    err = capsys.readouterr().err
    assert "never the password" in err and "plain-password" not in err


def test_safe_join_inside(tmp_path):
    assert safe_join(str(tmp_path), "a/b.conf") == str(tmp_path / "a" / "b.conf")
    assert safe_join(str(tmp_path), ["x", "y"]) == str(tmp_path / "x" / "y")
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "dir")  # LOCAL_DIR itself may be a link (the operator's choice)
    assert safe_join(str(tmp_path / "dir"), "f") == str(tmp_path / "dir" / "f")


@pytest.mark.parametrize("rel", ["..", "../x", "a/../../x", ".", "a//b", "", "/etc/passwd", ["/etc", "passwd"],
                                 ["a/b"], ["nul\0"]])
def test_safe_join_refuses_names_that_are_not_plain(tmp_path, rel):
    with pytest.raises(ZkError, match="is not a plain file name"):
        safe_join(str(tmp_path / "d"), rel)


def test_safe_join_refuses_a_symlinked_folder_inside(tmp_path):
    local, elsewhere = tmp_path / "local", tmp_path / "elsewhere"
    local.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, local / "conf.d")
    with pytest.raises(ZkError, match="a folder on the way is a symlink"):
        safe_join(str(local), "conf.d/app.conf")
    os.symlink(local, local / "self")  # even one that stays inside
    with pytest.raises(ZkError, match="a folder on the way is a symlink"):
        safe_join(str(local), "self/app.conf")
