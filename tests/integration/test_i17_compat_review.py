"""Review 17 of the drop-ins (zkexec, zkdo, zkfarmer): the translations as the old tools parsed their
command lines (Go's flag package for zkdo, Ruby's optparse for zkexec, zkfarmer's own Conf() guess),
and a zkdo lock met by zkherd. Translations are checked in this process; the rest runs the front ends
as the console scripts they are installed as, against the test's ZooKeeper."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.runner import REPO
from zkherd.compat import zkdo, zkexec, zkfarmer

BIN = REPO / ".venv" / "bin"


def run(argv, **kwargs):
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=60, check=False,
                          **kwargs)


def test_zkdo_noblock_false_go_spelling():
    """Go's flag package takes -noblock=false (and =true); the front end exited 64 on it."""
    assert "--no-wait" not in zkdo.translate(["-lock", "/l", "-noblock=false", "--", "true"])


def test_zkdo_data_starting_with_dash():
    """Go: -data -1 (or a value starting with '-') is the flag's value; argparse refused it (64)."""
    assert zkdo.translate(["-register", "/r", "-data", "-x", "true"])[-1] == "true"


def test_zkexec_exec_value_starting_with_dash():
    """Ruby's optparse: --exec '-x' is a value; argparse refused it (64)."""
    zkexec.translate(["--exec", "-c 'echo hi'"])


@pytest.mark.parametrize("flag, wait", [("-noblock", False), ("-noblock=true", False), ("--noblock=T", False),
                                        ("-noblock=1", False), ("-noblock=false", True), ("--noblock=0", True)])
def test_zkdo_noblock_go_booleans(flag, wait):
    assert ("--no-wait" not in zkdo.translate(["-lock", "/l", flag, "--", "true"])) == wait


def test_zkdo_bad_boolean_exits_64():
    done = run(["zkdo", "-lock", "/l", "-noblock=maybe", "--", "true"])
    assert done.returncode == 64 and "-noblock" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("argv", [["-register", "/r", "-data", "-x", "cmd"], ["--register=/r", "--data=-x", "cmd"],
                                  ["-register", "/r", "-data=-x", "--", "cmd"]])
def test_zkdo_values_starting_with_dash(argv):
    out = zkdo.translate(argv)
    assert out[out.index("--data") + 1] == "-x" and out[-2:] == ["--", "cmd"]


def test_zkdo_zk_timeout_is_the_session_timeout():
    """zkdo.go: zk.Dial(servers, timeout) is gozk's recvTimeout, zookeeper_init's session timeout."""
    for argv in (["-zk-timeout", "7"], ["--zk-timeout=7"]):
        out = zkdo.translate([*argv, "-lock", "/l", "true"])
        assert out[:2] == ["--session-timeout", "7"] and "--connect-timeout" not in out
    docs = (REPO / "docs" / "migration.md").read_text()
    assert "| `-zk-timeout S` | `--session-timeout S`" in docs


@pytest.mark.parametrize("argv, words", [(["--exec", "-x"], ["-x"]), (["--exec=-x", "-s"], ["-x"]),
                                         (["-e", "-x y"], ["-x", "y"]), (["-s", "-e", "--silent"], ["--silent"])])
def test_zkexec_exec_values_starting_with_dash(argv, words):
    out = zkexec.translate(argv)
    assert out[out.index("--") + 1:] == words


@pytest.mark.parametrize("conf, fmt", [("f.yaml", "yaml"), ("f.yml", "yaml"), ("f.php", "php"), ("f.json", "json"),
                                       ("f.conf", "json")])
def test_zkfarmer_export_guesses_the_format(conf, fmt):
    out = zkfarmer.translate(["export", "/f", conf])
    assert out[out.index("--format") + 1] == fmt


@pytest.mark.parametrize("dest", ["-", "DIR"])
def test_zkfarmer_export_to_stdout_or_a_directory_exits_64(tmp_path, dest):
    """zkfarmer exported to stdout (`-`) or a DJB directory; zkherd farm export writes one file."""
    done = run(["zkfarmer", "export", "/f", str(tmp_path) if dest == "DIR" else dest], cwd=tmp_path)
    assert done.returncode == 64 and "Traceback" not in done.stderr
    assert ("stdout" if dest == "-" else "directory") in done.stderr and "zkherd farm export" in done.stderr


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_zkfarmer_version(flag):
    done = run(["zkfarmer", flag])
    assert done.returncode == 0 and "zkherd" in done.stdout and "zkfarmer" in done.stdout


def test_zkdo_lock_held_by_zkdo_is_a_clear_error(zk, zk_server, zk_base):
    """A zkdo holder's lock is one ephemeral node named PATH: zkherd cannot queue under it (ZooKeeper's
    NoChildrenForEphemerals) and says so, naming zkdo, with exit 64 (docs/migration.md)."""
    zk.create(zk_base + "/locks/svc", b"", ephemeral=True, makepath=True)
    done = run(["zkdo", "-zk", zk_server.hosts + zk_base, "-lock", "/locks/svc", "--", "true"])
    assert done.returncode == 64 and "Traceback" not in done.stderr
    assert "/locks/svc is an ephemeral znode" in done.stderr and "zkdo" in done.stderr
