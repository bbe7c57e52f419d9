"""Pure logic of the runner (no ZooKeeper): option parsing, config merging, lock lines, fencing
arithmetic, exit codes. Behaviour is tested against real servers in tests/integration."""

from __future__ import annotations

import json
import os
import signal

import pytest

from zkherd import cli
from zkherd.commands import run as runcmd
from zkherd.core import argtypes, exits, fence, session
from zkherd.core import settings as config
from zkherd.recipes import lock
from zkherd.run.child import exit_code


def test_lines_and_what_a_waiter_watches():
    children = ["lock-0000000007", "run-0000000008", "lock-0000000002", "run-0000000003", "other", "lock-0000000010"]
    assert lock.in_order(children, "lock-") == ["lock-0000000002", "lock-0000000007", "lock-0000000010"]
    assert lock.in_order(children, "run-") == ["run-0000000003", "run-0000000008"]
    line = ["a0", "a1", "a2", "a3"]
    assert lock._ahead(line, "a0", 1) == [] and lock._ahead(line, "a3", 1) == ["a2"]
    assert lock._ahead(line, "a1", 2) == [] and lock._ahead(line, "a3", 2) == ["a1", "a2"]


def test_exit_codes_of_children():
    assert exit_code(3 << 8) == 3  # exited with 3
    assert exit_code(signal.SIGKILL) == 137  # killed by SIGKILL


def test_fence_margin_and_stop_cap():
    assert fence.margin(10) == pytest.approx(1.05)
    assert fence.stop_time(10.0, 10.0) == pytest.approx(2.95)  # 0.4 T - margin: the leader's proof may be 0.4 T old
    assert fence.stop_time(1.0, 10.0) == 1.0


def test_parse_and_config_precedence(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("zk: file:1\nlock: /from-file\nstop-timeout: 3\ncommand: [a, b]\n")
    values = cli.parse(["run", "--config", str(cfg), "--zk", "cli:2", "--", "x", "--y"])
    assert values["zk"] == "cli:2" and values["lock"] == "/from-file" and values["stop_timeout"] == 3
    assert values["command"] == ["x", "--y"]  # the command line beats the file for the command too
    opts = runcmd.check_run(values)
    assert opts.stop_signal == signal.SIGTERM and opts.slots == 1 and opts.data == b""


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("- a list\n")
    with pytest.raises(config.ConfigError, match="mapping"):
        config.load_file(str(bad))
    with pytest.raises(config.ConfigError, match="cannot read config file"):
        config.load_file(str(tmp_path / "missing.yml"))
    with pytest.raises(config.ConfigError, match="unknown option"):
        config.merge({}, {"lokc": 1}, cli.DEFAULTS)


def test_config_keys_are_the_commands_long_options(tmp_path):
    """`format:` and `on-change:` in a farm join file are its --format and --on-change (stored
    under other names); an option the command does not take is an error, not ignored."""
    cfg = tmp_path / "join.yml"
    cfg.write_text("zk: h:1\nformat: dir\non-change: make reload\npoll: 2\n")
    values = cli.parse(["farm", "join", "--config", str(cfg), "/farm", str(tmp_path)])
    assert (values["conf_format"], values["on_change_cmd"], values["poll"], values["zk"]) == \
        ("dir", "make reload", 2, "h:1")
    cfg.write_text("lock: /x\ncommand: [a]\n")
    with pytest.raises(config.ConfigError, match="zkherd farm export takes no option.s. command, lock"):
        cli.parse(["farm", "export", "--config", str(cfg), "/farm", str(tmp_path / "dest")])


def test_the_wheel_holds_every_package_of_the_runner():
    """pyproject.toml names its packages: one left out is missing from the wheel the runner role
    installs (zkherd.core, .run... were, after the split into packages)."""
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(__file__).resolve().parents[2]
    named = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"zkherd." + ".".join(d.relative_to(root / "runner/zkherd").parts)
             for d in (root / "runner/zkherd").rglob("*") if (d / "__init__.py").is_file()}
    assert found | {"zkherd", "zkherd.common"} <= named


def test_commands_agree_on_the_defaults_they_share():
    """Each command module (commands/*) names its options' defaults; where two take the same
    option (--id, --stop-timeout, --file-mode...), the default is the same: cli merges them."""
    for first in cli.COMMANDS:
        for other in cli.COMMANDS:
            for key in set(first.DEFAULTS) & set(other.DEFAULTS):
                assert first.DEFAULTS[key] == other.DEFAULTS[key], (first.__name__, other.__name__, key)
    assert set(cli.BY_NAME) == {"run", "elect", "is-leader", "pool", "cron", "barrier", "farm", "render", "tree", "get",
                                "set", "ls", "rm", "status", "drain", "undrain"}


def test_every_command_help_points_to_the_global_options_once(capsys):
    """`zkherd --help` lists the connection options and every command (farm join and export too);
    a command's help does not repeat them, it points to `zkherd --help`."""
    with pytest.raises(SystemExit):
        cli.parse(["--help"])
    top = capsys.readouterr().out
    assert "--session-timeout" in top and "farm join|export|ls|get|set|unset" in top
    for argv in (["run"], ["cron"], ["farm", "join"], ["barrier"], ["is-leader"]):
        with pytest.raises(SystemExit) as exc:
            cli.parse([*argv, "--help"])
        assert exc.value.code == exits.OK
        text = capsys.readouterr().out
        assert "--session-timeout" in text and "zkherd --help" in text  # the pointer, not the option
        assert "--tls-ca" not in text and "--zk HOSTS" not in text


@pytest.mark.parametrize("value, expected",
                         [("TERM", signal.SIGTERM), ("sigint", signal.SIGINT), ("9", signal.SIGKILL)])
def test_signals(value, expected):
    assert argtypes.parse_signal(value) == expected


def test_data_from_file_and_credentials_file(tmp_path, monkeypatch):
    data = tmp_path / "d"
    data.write_bytes(b"\x00bin")
    assert runcmd.read_data("@" + str(data)) == b"\x00bin"
    data.write_bytes(b"x" * 1_000_001)  # more than a znode holds: refused, not read whole
    with pytest.raises(config.ConfigError, match="--data file .* is bigger than 1000000 bytes"):
        runcmd.read_data("@" + str(data))
    big = tmp_path / "big.yml"
    with open(big, "wb") as handle:
        handle.truncate(8 << 30)  # sparse: 8 GiB without disk
    with pytest.raises(config.ConfigError, match="config file .* is bigger than 8000000 bytes"):
        config.load_file(str(big))
    secret = tmp_path / "cred"
    secret.write_text("user:pw\n")
    secret.chmod(0o600)
    monkeypatch.delenv("ZKHERD_AUTH", raising=False)
    assert config.connection_settings({"auth_file": str(secret)}).auth == "user:pw"
    monkeypatch.setenv("ZKHERD_AUTH", "env:pw")
    assert config.connection_settings({}).auth == "env:pw"
    assert os.environ["ZKHERD_AUTH"] == "env:pw"


def test_farm_join_merge_keeps_both_sides():
    from zkherd.farm.join import flatten, merge

    base = {"enabled": "0", "mysql": {"delay": "0"}, "role": "db"}
    local = {"enabled": "1", "mysql": {"delay": "0"}, "role": "db"}  # echo 1 > enabled
    remote = {"enabled": "0", "mysql": {"delay": "5"}}  # farm set mysql.delay 5, farm unset role
    merged, conflicts = merge(base, local, remote)
    assert merged == {"enabled": "1", "mysql": {"delay": "5"}} and conflicts == []
    merged, conflicts = merge(base, dict(local, role="web"), dict(remote, role="cache"))
    assert merged["role"] == "web" and conflicts == ["role"]  # both changed it: local wins, and says so
    assert flatten({"a": {"b": {"c": 1}}, "d": {}, "e.f": 2}) == {("a", "b", "c"): 1, ("d",): {}, ("e.f",): 2}


def test_farm_join_flatten_counts_the_names_of_the_fields(monkeypatch):
    from zkherd.common.farm import FarmError
    from zkherd.farm import join

    monkeypatch.setattr(join, "MAX_FIELD_NAMES", 6)
    assert join.flatten({"a": {"b": {"c": 1, "d": 2}}}) == {("a", "b", "c"): 1, ("a", "b", "d"): 2}  # 6 names
    with pytest.raises(FarmError, match="nest too many names to merge: more than 6 in all, at a.b.e"):
        join.flatten({"a": {"b": {"c": 1, "d": 2, "e": 3}}})


def test_farm_join_merge_compares_with_types():
    from zkherd.farm.join import merge

    base = {"enabled": 1, "weight": 2}
    merged, conflicts = merge(base, base, {"enabled": True, "weight": 2})  # farm set enabled true
    assert merged == {"enabled": True, "weight": 2} and merged["enabled"] is True and conflicts == []
    merged, conflicts = merge(base, {"enabled": 1, "weight": 2.0}, base)  # a local edit of the type only
    assert isinstance(merged["weight"], float) and conflicts == []
    merged, conflicts = merge(base, {"enabled": 1.0, "weight": 2}, {"enabled": True, "weight": 2})
    assert conflicts == ["enabled"] and isinstance(merged["enabled"], float)  # both changed it, differently


def test_a_failed_version_record_must_name_a_version_older_than_itself():
    from zkherd.run.failedversion import recorded_version

    def record(version):
        return json.dumps({"version": version, "reason": "x"}).encode()

    assert recorded_version(record(41), 42) == (41, None)
    assert recorded_version(record(0), 42) == (0, None)
    for bad, why in ((42, "newer than the record"), (2 ** 62, "newer than the record"), (-1, "negative"),
                     ("41", "not a number"), (True, "not a number"), (None, "not a number"), (4.5, "not a number")):
        version, reason = recorded_version(record(bad), 42)
        assert version is None and why in reason, (bad, reason)
    assert recorded_version(b"[1]", 42)[1] == "it is not a JSON object"
    assert recorded_version(b"", 42)[1] == "it is not a JSON object"
    assert recorded_version(b"\xff", 42)[1] == "it is not UTF-8 text"
    assert recorded_version(b"{", 42)[1].startswith("it is not valid JSON")
    assert recorded_version(b"[" * 200000 + b"]" * 200000, 42)[1] == "it is not usable JSON: nested too deeply"


def test_a_failed_version_record_newer_than_what_this_host_read_is_refused():
    from zkherd.run.failedversion import FailedVersions

    warnings = []

    class Log:
        def warning(self, message, **fields):
            warnings.append(message)

    record = FailedVersions("/roll", "me", Log())
    assert record.check(None, 10) is None and record.check(10, 10) == 10 and record.check(3, 10) == 3
    assert not warnings
    assert record.check(11, 10) is None
    assert len(warnings) == 1 and "newer than any configuration this host read (newest: 10)" in warnings[0]
    record.check(11, 10)
    assert len(warnings) == 1  # once per record


def test_only_nodes_that_no_session_owns_are_foreign():
    """0 (persistent) and Long.MIN_VALUE (container) are nobody's; a session of a server with id 255
    (high byte 0xFF, as TTL nodes have too) is a live session: its nodes are waited for."""
    from zkherd.recipes.foreign import is_foreign

    class Stat:
        def __init__(self, owner):
            self.ephemeralOwner = owner

    assert is_foreign(Stat(0)) and is_foreign(Stat(-(2 ** 63)))
    for owner in (0x100000123456789, -0x00FFFFFFFFFFFFFF, 0x7FF0000000000001, -1):  # 0xFF.. is negative as a long
        assert not is_foreign(Stat(owner)), hex(owner)


def test_lines_take_only_ascii_sequence_numbers():
    children = ["lock-0000000002", "lock-" + "\u00b2" * 10, "lock-000000000\u0661", "lock-0000000001", "lock-1"]
    assert lock.in_order(children, "lock-") == ["lock-0000000001", "lock-0000000002"]


def test_whose_node_it_is_is_not_told_without_a_connection():
    """kazoo's client_id is None while it has no live connection: a ConnectionLoss (tried again),
    not a TypeError."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import ConnectionLoss

    class Stat:
        ephemeralOwner = 0x100000123456789

    client = KazooClient("127.0.0.1:1")  # never started: no live connection
    with pytest.raises(ConnectionLoss):
        session.ours(client, Stat())


def test_names_with_an_attempt_token_keep_the_order_of_their_sequence():
    """lock-TOKEN-NNNNNNNNNN (this version) and lock-NNNNNNNNNN (older runners, a hand-made node)
    sort into one line by the sequence alone; a token never matches another attempt's names."""
    from zkherd.recipes import sequential

    token = sequential.new_token()
    assert len(token) == 16 and token != sequential.new_token()
    mine = sequential.tagged("lock-", token) + "0000000005"
    children = ["lock-ffffffffffffffff-0000000009", mine, "lock-0000000002", "run-%s-0000000006" % token,
                "lock-%s-000000001" % token]
    assert lock.in_order(children, "lock-") == ["lock-0000000002", mine, "lock-ffffffffffffffff-0000000009"]
    ours = sequential.made_as(sequential.tagged("lock-", token))
    assert [c for c in children if ours(c)] == [mine]
    registered = sequential.made_as("svc-")
    assert registered("svc-0000000001")
    assert not registered("svc-x-0000000001") and not registered("svc-" + "\u00b2" * 10)


def test_whose_create_may_have_happened():
    from kazoo import exceptions as ke

    from zkherd.recipes.sequential import nothing_made

    for answered in (ke.NoAuthError(), ke.NodeExistsError(), ke.SessionExpiredError()):
        assert nothing_made(answered)
    for unknown in (ke.ConnectionLoss(), ke.OperationTimeoutError(), TimeoutError(), RuntimeError()):
        assert not nothing_made(unknown)
