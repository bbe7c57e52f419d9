"""Issue 17, the command line a new user meets: the real `zkherd` (python -m zkherd), its output and
exit codes.

- `zkherd run ./cmd args` without `--`: a hint to put the command after `--`, exit 64;
- every help lists every subcommand (`farm join`, `export`, `drain`, ...), from the parser itself;
- a command's help shows the connection options once, in `zkherd --help`, and a pointer;
- `farm get NODE` / `farm get FARM --host MEMBER` without a field print the whole member (JSON),
  against a real ZooKeeper.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from tests.support.runner import REPO
from zkherd import cli

MEMBER = {"hostname": "db-01.example.com", "enabled": "0", "mysql": {"replication_delay": "0"}}


def zkherd(*args, hosts=None):
    zk = ("--zk", hosts) if hosts else ()
    return subprocess.run([sys.executable, "-m", "zkherd", *args, *zk], cwd=REPO, capture_output=True,
                          text=True, timeout=30, check=False, env={"COLUMNS": "100", "LANG": "C.UTF-8",
                                                                   "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("command", ["run", "cron"])
def test_a_command_without_the_double_dash_gets_a_hint(command):
    args = [command, "--lock", "/x"] if command == "run" else [command, "--election", "/p"]
    result = zkherd(*args, "./cmd", "args")
    assert result.returncode == 64, result
    assert "Traceback" not in result.stderr
    assert "put the command after --: zkherd %s [OPTIONS] -- ./cmd args" % command in result.stderr, result.stderr
    assert result.stderr.startswith("usage: zkherd %s " % command), result.stderr  # its usage, not the global one
    assert "--session-timeout" not in result.stderr


def test_a_bad_option_before_the_double_dash_is_not_told_to_use_it():
    result = zkherd("run", "--lok", "/x", "--", "./cmd")
    assert result.returncode == 64
    assert "unrecognized arguments: --lok /x" in result.stderr
    assert "put the command after --" not in result.stderr
    assert result.stderr.startswith("usage: zkherd run ")


def test_other_commands_name_their_own_usage_for_extra_words():
    result = zkherd("ls", "/a", "/b")
    assert result.returncode == 64 and "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: zkherd ls ") and "unrecognized arguments: /b" in result.stderr
    assert "after --" not in result.stderr


def nested_commands():
    """{"farm": ["ls", "export", ...], ...}: every command with commands below it, from the parser."""
    found = {}
    top = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    for name, parser in top.choices.items():
        for action in parser._actions:  # noqa: SLF001
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                found[name] = list(action.choices)
    return found


def test_every_help_lists_every_subcommand():
    nested = nested_commands()
    assert {"farm", "tree"} <= set(nested)
    assert {"join", "export", "ls", "get", "set", "unset", "drain", "undrain"} == set(nested["farm"])
    top = zkherd("--help")
    assert top.returncode == 0
    lines = {line.split()[0]: line for line in top.stdout.splitlines() if line.startswith("    ") and line.split()}
    for command, subs in nested.items():
        assert command in lines
        line = lines[command]
        assert sorted(line.split()[2].rstrip(":").split("|")) == sorted(subs), line  # `farm join|...:` all
        own = zkherd(command, "--help")
        assert own.returncode == 0
        assert "usage: zkherd %s [-h] %s ..." % (command, "|".join(subs)) in own.stdout, own.stdout
        for sub in subs:
            assert "\n    %s " % sub in own.stdout, (sub, own.stdout)


def test_the_connection_options_are_shown_once():
    top = zkherd("--help").stdout
    assert "ZooKeeper connection" in top and "--session-timeout S" in top
    parsers = [["run"], ["cron"], ["farm"], ["farm", "get"], ["farm", "join"], ["tree", "load"], ["get"]]
    for words in parsers:
        text = zkherd(*words, "--help").stdout
        assert "--session-timeout" not in text.replace("(--zk, --session-timeout,", ""), (words, text)
        assert "--tls-ca" not in text and "ZooKeeper connection" not in text, (words, text)
        assert "are listed by `zkherd --help`" in text, (words, text)
    # still taken after the command, and from --config
    assert zkherd("farm", "ls", "/x", "--session-timeout", "3", "--connect-timeout", "1",
                  hosts="127.0.0.1:1").returncode == 69


def test_farm_get_prints_a_whole_member(zk_server, zk, zk_base):
    db = zk_base + "/db"
    zk.create(db + "/1.2.3.4", json.dumps(MEMBER).encode(), makepath=True)
    zk.create(db + "/broken", b"{not json")
    whole = zkherd("farm", "get", db + "/1.2.3.4", hosts=zk_server.hosts)
    assert whole.returncode == 0, whole.stderr
    assert json.loads(whole.stdout) == MEMBER
    by_host = zkherd("farm", "get", db, "--host", "1.2.3.4", hosts=zk_server.hosts)
    assert (by_host.returncode, by_host.stdout) == (0, whole.stdout)
    field = zkherd("farm", "get", db, "--host", "1.2.3.4", "mysql.replication_delay", hosts=zk_server.hosts)
    assert (field.returncode, field.stdout) == (0, "0\n")
    sub = zkherd("farm", "get", db + "/1.2.3.4", "mysql", hosts=zk_server.hosts)  # an object field: JSON
    assert sub.returncode == 0 and json.loads(sub.stdout) == {"replication_delay": "0"}
    assert zkherd("farm", "get", db + "/1.2.3.4", "enabled", hosts=zk_server.hosts).stdout == "0\n"  # unchanged
    absent = zkherd("farm", "get", db, "--host", "nope", hosts=zk_server.hosts)
    assert absent.returncode == 1 and "does not exist" in absent.stderr
    broken = zkherd("farm", "get", db + "/broken", hosts=zk_server.hosts)
    assert broken.returncode == 65 and "Traceback" not in broken.stderr
    bad = zkherd("farm", "get", db, "--host", "a/b", hosts=zk_server.hosts)
    assert bad.returncode == 64 and "Traceback" not in bad.stderr
    helptext = zkherd("farm", "get", "--help").stdout
    assert "[FIELD]" in helptext and "--host" in helptext and "whole member" in helptext
