"""Security logic of the runner without ZooKeeper: --acl becomes the client's default ACL,
mirrored directories and DJB directories are written only inside themselves, the cron lock's
folder is private. Against real servers: tests/integration/test_security.py,
test_local_folders.py and test_cron_lock.py."""

from __future__ import annotations

import os

import pytest

from zkherd import cli
from zkherd.common import acl
from zkherd.common.connection import ZkError, make_client
from zkherd.configfiles.install import FileSet, LocalFileError, Target
from zkherd.core import settings as config
from zkherd.recipes import cronlock

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


def test_names_from_zookeeper_stay_below_the_folder(tmp_path):
    assert Target.below(str(tmp_path), "a/b.conf").path == str(tmp_path / "a" / "b.conf")
    assert Target.below(str(tmp_path), ["x", "y"]).path == str(tmp_path / "x" / "y")
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "dir")  # LOCAL_DIR itself may be a link (the operator's choice)
    files = FileSet()
    files.stage(Target.below(str(tmp_path / "dir"), "f"), b"x")
    files.install()
    assert (tmp_path / "real" / "f").read_bytes() == b"x"


@pytest.mark.parametrize("rel", ["..", "../x", "a/../../x", ".", "a//b", "", "/etc/passwd", ["/etc", "passwd"],
                                 ["a/b"], ["nul\0"]])
def test_names_that_are_not_plain_are_refused(tmp_path, rel):
    with pytest.raises(ZkError, match="is not a plain file name"):
        Target.below(str(tmp_path / "d"), rel)


def test_a_symlinked_folder_inside_is_refused(tmp_path):
    local, elsewhere = tmp_path / "local", tmp_path / "elsewhere"
    local.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, local / "conf.d")
    os.symlink(local, local / "self")  # even one that stays inside
    for rel in ("conf.d/app.conf", "self/app.conf"):
        files = FileSet()
        with pytest.raises(LocalFileError, match="refusing to write %s/%s: .* is a symlink" % (local, rel)):
            files.stage(Target.below(str(local), rel), b"x")
        files.discard()
    assert list(elsewhere.iterdir()) == [] and sorted(p.name for p in local.iterdir()) == ["conf.d", "self"]


def test_the_cron_lock_folder_is_private():
    assert cronlock.run_dir({"ZKHERD_RUN_DIR": "/srv/locks"}, euid=0) == "/srv/locks"
    assert cronlock.run_dir({}, euid=0) == "/run/zkherd"
    assert cronlock.run_dir({"XDG_RUNTIME_DIR": "/run/user/1000"}, euid=1000) == "/run/user/1000/zkherd"
    with pytest.raises(ZkError, match="set ZKHERD_RUN_DIR") as refused:  # never /tmp
        cronlock.run_dir({"TMPDIR": "/tmp"}, euid=1000)
    assert refused.value.kind == "usage"


def test_a_cron_lock_folder_that_others_can_write_is_refused(tmp_path):
    private = tmp_path / "private"
    os.close(cronlock.open_run_dir(str(private)))  # made 0700
    assert oct(private.stat().st_mode & 0o7777) == "0o700"
    for mode in (0o770, 0o1777):
        private.chmod(mode)
        with pytest.raises(ZkError, match="writable by others"):
            cronlock.open_run_dir(str(private))
