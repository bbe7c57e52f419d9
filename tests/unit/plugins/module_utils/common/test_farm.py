from __future__ import annotations

import pytest

from ansible_collections.zkherd.ops.plugins.module_utils.common import farm

DOC = {"hostname": "db-01.example.com", "enabled": "0", "mysql": {"replication_delay": "0"}}


def test_seed_directory_becomes_the_seed_json(tmp_path):
    (tmp_path / "hostname").write_text("db-01.example.com\n")
    (tmp_path / "enabled").write_text("0\n")
    (tmp_path / "mysql").mkdir()
    (tmp_path / "mysql" / "replication_delay").write_text("0\n")
    (tmp_path / ".swp").write_text("editor junk")
    assert farm.read_dir(str(tmp_path)) == DOC


def test_codec():
    assert farm.decode_member(farm.encode_member(DOC)) == DOC
    with pytest.raises(farm.FarmError, match="does not hold valid JSON"):
        farm.decode_member(b"{oops", "member /f/x")
    with pytest.raises(farm.FarmError, match="not an object"):
        farm.decode_member(b"[1, 2]")


def test_a_member_that_no_utf8_can_carry_is_refused_naming_the_field():
    with pytest.raises(farm.FarmError, match="lone surrogate.* in the field a.b"):
        farm.decode_member(b'{"a": {"b": ["x", "\\ud800"]}}', "member /f/x")
    with pytest.raises(farm.FarmError, match="field name that is not UTF-8 text .* below a"):
        farm.decode_member(b'{"a": {"\\udc80k": 1}}')
    pair = farm.decode_member(b'{"e": "\\ud83d\\ude00"}')  # a surrogate pair is one character
    assert pair == {"e": "\U0001f600"}


def test_what_json_cannot_carry_names_the_field():
    import datetime
    assert farm.json_problem({"a": [1, 2.5, True, None, {"b": "c"}]}) is None
    assert "a date in the field since" in farm.json_problem({"since": datetime.date(2020, 1, 1)})
    assert "not text (a bool at the top level)" in farm.json_problem({True: 1})
    assert "not text (a float below a.b)" in farm.json_problem({"a": {"b": {1.5: 1}}})
    assert "too long for JSON text in the field n" in farm.json_problem({"n": 16 ** 5000})
    forged = farm.json_problem({"\x1b[2J\nzkherd: forged": "\ud800"})
    assert "\n" not in forged and "\x1b" not in forged and "\\x1b[2J\\nzkherd: forged" in forged


def test_dotted_paths():
    assert farm.get_field(DOC, "mysql.replication_delay") == "0"
    with pytest.raises(KeyError):
        farm.get_field(DOC, "mysql.nope")
    changed = farm.set_field(DOC, "mysql.replication_delay", "5")
    assert changed["mysql"]["replication_delay"] == "5" and DOC["mysql"]["replication_delay"] == "0"
    assert farm.set_field({}, "a.b.c", "1") == {"a": {"b": {"c": "1"}}}
    assert "enabled" not in farm.unset_field(DOC, "enabled")
    with pytest.raises(farm.FarmError, match="is a value, not a dict"):
        farm.set_field(DOC, "enabled.x", "1")
    with pytest.raises(farm.FarmError, match="bad field path"):
        farm.get_field(DOC, "a..b")
    assert farm.check_field("mysql.replication_delay") == "mysql.replication_delay"
    for bad in ("", ".a", "a.", "a..b"):
        with pytest.raises(farm.FarmError, match="bad field path"):
            farm.check_field(bad)


@pytest.mark.parametrize("expression, expected", [
    ("enabled=0", True), ("enabled=1", False), ("enabled!=1", True), ("!maint", True), ("maint", False),
    ("mysql.replication_delay<10", True), ("mysql.replication_delay>=1", False), ("hostname", True),
    ("enabled=0,!maint,mysql.replication_delay<10", True), ("enabled=0,hostname=other", False), ("", True),
])
def test_filters(expression, expected):
    assert farm.matches(DOC, farm.parse_filter(expression)) is expected


def test_bad_filters():
    for bad in ("a<b", "!a=1", "=x"):
        with pytest.raises(farm.FarmError):
            farm.parse_filter(bad)


def test_ls_line_is_zkfarmers():
    assert farm.ls_line("1.2.3.4", DOC, ["hostname", "enabled"]) == \
        "1.2.3.4          hostname=db-01.example.com, enabled=0"


def test_a_dotted_path_reaches_a_key_that_holds_a_dot():
    """A DJB file nginx.conf is the field nginx.conf: names one per level first (the path as it always
    read), runs of names joined by "." where that leads nowhere."""
    doc = {"nginx.conf": "a", "m": {"r.d": 0}}
    assert farm.get_field(doc, "nginx.conf") == "a" and farm.get_field(doc, "m.r.d") == 0
    assert farm.set_field(doc, "nginx.conf", "z")["nginx.conf"] == "z"
    assert "nginx.conf" not in farm.unset_field(doc, "nginx.conf")
    assert farm.set_field({"nginx.conf": {}}, "nginx.conf.x", 1) == {"nginx.conf": {"x": 1}}
    assert farm.set_field({"a": {}}, "a.b.c", 1) == {"a": {"b": {"c": 1}}}  # a name per level below
    with pytest.raises(KeyError):
        farm.get_field(doc, "nginx.conf.x")


def test_a_path_that_always_read_one_name_per_level_still_does():
    """Both shapes in one member (review): the nested one, as before; the dotted key where it is alone."""
    doc = {"a.b": {"x": 1}, "a": {"b": {"c": 5}}}
    assert farm.get_field(doc, "a.b.c") == 5 and farm.get_field(doc, "a.b.x") == 1
    assert farm.set_field(doc, "a.b.c", 6) == {"a.b": {"x": 1}, "a": {"b": {"c": 6}}}
    assert farm.unset_field(doc, "a.b.c") == {"a.b": {"x": 1}, "a": {"b": {}}}
    assert farm.get_field({"a.b": 1, "a": {"b": 2}}, "a.b") == 2
    assert farm.set_field({"a.b": "v", "a": {"b": {"c": 5}}}, "a.b.c", 6)["a"]["b"]["c"] == 6
    # a path naming nothing goes below the deepest dict its names reach, a joined route included
    assert farm.set_field({"a": {"b": 1}, "a.b": {}}, "a.b.c", 1) == {"a": {"b": 1}, "a.b": {"c": 1}}
