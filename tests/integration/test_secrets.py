"""Secrets (docs/security.md, "Credentials: the auth file and error messages"): the runner refuses
a credentials file that others may read, as ssh refuses a loose key, and no error message - of the
runner, of argparse, of a config file, of a module or lookup - ever repeats a secret. Real
`zkherd` processes and a real ZooKeeper; every case uses one distinctive secret and looks for it
in everything the process wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.playbook import REPO, run_playbook

SECRET = "Zq7-s3cret-XKCD-936"


def leaks(text):
    """Whether *text* shows the secret, in any case (PyYAML's float error lowercases it)."""
    return SECRET.lower() in text.lower()


def zkherd(args, tmp_path, env=None, config=None):
    """Run `zkherd ARGS` to its end: (exit code, stdout + stderr)."""
    if config is not None:
        path = tmp_path / "conf.yml"
        path.write_text(config)
        args = [args[0], "--config", str(path), *args[1:]]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ZKHERD_")}
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "zkherd", *args], cwd=REPO, env=full_env, capture_output=True,
                          timeout=120, check=False)
    return proc.returncode, (proc.stdout + proc.stderr).decode("utf-8", "replace")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620, 0o602], ids="{:04o}".format)
def test_a_credentials_file_others_may_access_is_refused(zk_server, tmp_path, mode):
    auth = tmp_path / "auth"
    auth.write_text("alice:%s\n" % SECRET)
    auth.chmod(mode)
    link = tmp_path / "link-to-auth"  # the mode of the file opened counts, not of the link
    link.symlink_to(auth)
    for args, config, named in ((["--auth-file", str(auth)], None, auth), (["--auth-file", str(link)], None, link),
                                ([], "auth_file: %s\n" % auth, auth)):
        code, out = zkherd(["run", "--zk", zk_server.hosts, *args, "--", "true"], tmp_path, config=config)
        assert code == 64, out
        assert "credentials file %s" % named in out and "mode %04o" % mode in out, out
        assert "chmod 600 %s" % named in out, out
        assert not leaks(out) and "Traceback" not in out


# The runner role writes the file 0600; systemd's LoadCredential= hands it to a service 0400.
@pytest.mark.parametrize("mode", [0o600, 0o400], ids="{:04o}".format)
def test_a_private_credentials_file_is_used(zk_server, zk_base, tmp_path, mode):
    auth = tmp_path / "auth"
    auth.write_text("alice:%s\n" % SECRET)
    auth.chmod(mode)
    code, out = zkherd(["run", "-vvv", "--zk", zk_server.hosts, "--auth-file", str(auth), "--acl", "auth::rwcda",
                        "--lock", zk_base + "/lock", "--", "true"], tmp_path)
    assert code == 0, out
    assert not leaks(out)


BAD_COMMAND_LINES = {
    "acl digest with the password as perms": ["--acl", "digest:alice:" + SECRET],
    "acl digest without user": ["--acl", "digest:" + SECRET],
    "acl digest, password instead of hash": ["--acl", "digest:alice:%s:rwcda" % SECRET],
    "acl scheme typo": ["--acl", "diegst:alice:%s:rwcda" % SECRET],
    "acl not a spec": ["--acl", "[digest, alice, %s]" % SECRET],
    "auth without user": ["--auth", SECRET],
    "auth abbreviated ambiguously": ["--au=alice:" + SECRET],
    "auth option misspelt": ["--auht=alice:" + SECRET],
}


@pytest.mark.parametrize("case", sorted(BAD_COMMAND_LINES))
def test_command_line_errors_never_echo_a_secret(tmp_path, case):
    code, out = zkherd(["run", "--zk", "127.0.0.1:1", "--connect-timeout", "1", *BAD_COMMAND_LINES[case], "--",
                        "true"], tmp_path)
    assert code == 64, out
    assert not leaks(out) and "Traceback" not in out, out


BAD_CONFIG_FILES = {
    "auth as a list": "auth: [alice, %s]\n" % SECRET,
    "auth as a mapping": "auth: {alice: %s}\n" % SECRET,
    "auth quote not closed": 'zk: 127.0.0.1:1\nauth: "alice:%s\nacl: []\n' % SECRET,
    "auth with a tab": "auth: alice:%s\tzk: x\n" % SECRET,
    "auth tagged int": "auth: !!int %s\n" % SECRET,
    "auth tagged float": "auth: !!float %s\n" % SECRET,
    "acl scheme holding the entry": 'acl: [{scheme: "digest:alice:%s"}]\n' % SECRET,
    "acl entry as a list": "acl: [[digest, alice, %s]]\n" % SECRET,
    "acl digest id with a password": "acl: [{scheme: digest, id: 'alice:%s'}]\n" % SECRET,
    "acl digest, password as perms": "acl: ['digest:alice:%s']\n" % SECRET,
    "acl as a set": "acl: !!set {'digest:alice:%s': null}\n" % SECRET,
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIG_FILES))
def test_config_file_errors_never_echo_a_secret(tmp_path, case):
    code, out = zkherd(["run", "--zk", "127.0.0.1:1", "--connect-timeout", "1", "--", "true"], tmp_path,
                       config=BAD_CONFIG_FILES[case])
    assert code == 64, out
    assert not leaks(out) and "Traceback" not in out, out


@pytest.mark.parametrize("content", ["%s\n" % SECRET, "alice:%s\nbob:other\n" % SECRET, ":%s\n" % SECRET])
def test_malformed_credentials_are_refused_without_echo(tmp_path, content):
    auth = tmp_path / "auth"
    auth.write_text(content)
    auth.chmod(0o600)
    code, out = zkherd(["run", "--zk", "127.0.0.1:1", "--connect-timeout", "1", "--auth-file", str(auth), "--",
                        "true"], tmp_path)
    assert code == 64 and "credentials file %s" % auth in out and "USER:PASSWORD" in out, out
    assert not leaks(out)
    code, out = zkherd(["run", "--zk", "127.0.0.1:1", "--connect-timeout", "1", "--", "true"], tmp_path,
                       env={"ZKHERD_AUTH": content.strip()})
    assert code == 64 and "ZKHERD_AUTH" in out and not leaks(out), out


def test_credentials_that_are_no_utf8_are_a_usage_error(zk_server, tmp_path):
    """Bytes from argv that are not UTF-8 reached kazoo's connection thread: a traceback, and the
    child started without the credentials."""
    proc = subprocess.run([sys.executable, "-m", "zkherd", "run", "--zk", zk_server.hosts, "--connect-timeout", "5",
                           b"--auth", b"alice:\xff" + SECRET.encode(), "--", "true"], cwd=REPO,
                          capture_output=True, timeout=120, check=False)
    out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    assert proc.returncode == 64, out
    assert "UTF-8" in out and "Traceback" not in out and not leaks(out), out


def test_modules_and_lookups_never_echo_a_secret(zk_server, zk_base):
    run = run_playbook([
        {"name": "digest id holding a password", "ignore_errors": True, "zkherd.ops.znode": {
            "path": zk_base + "/x", "value": "v", "acl": [{"scheme": "digest", "id": "alice:" + SECRET}]}},
        {"name": "auth without user", "ignore_errors": True,
         "zkherd.ops.znode_info": {"path": zk_base, "auth": SECRET}},
        {"name": "lookup auth without user", "ignore_errors": True,
         "ansible.builtin.debug": {"msg": "{{ lookup('zkherd.ops.znode', '%s') }}" % zk_base},
         "vars": {"zkherd_auth": SECRET}},
    ], hosts=zk_server.hosts, play_vars={"zkherd_hosts": zk_server.hosts})
    digest = run["digest id holding a password"]
    assert digest["failed"] and digest["error_kind"] == "usage" and "BASE64" in digest["msg"], digest
    assert run["auth without user"]["failed"] and run["auth without user"]["error_kind"] == "usage"
    assert run["lookup auth without user"]["failed"]
    for name in ("digest id holding a password", "auth without user", "lookup auth without user"):
        # (the task's own arguments, `invocation`, are the playbook's text, which Ansible shows as it is)
        assert not leaks(json.dumps({k: v for k, v in run[name].items() if k != "invocation"})), run[name]
