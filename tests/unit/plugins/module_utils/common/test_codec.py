from __future__ import annotations

import pytest

from ansible_collections.zkherd.ops.plugins.module_utils.common import codec


def test_raw_roundtrip_and_scalars():
    assert codec.encode("héllo", "raw") == ("héllo".encode(), None)
    assert codec.encode(5, "raw")[0] == b"5"
    assert codec.encode(True, "raw")[0] == b"true"
    assert codec.decode("héllo".encode(), "raw") == "héllo"
    assert codec.decode(None, "raw") == ""


def test_raw_refuses_structures():
    with pytest.raises(codec.CodecError, match="use value_type=json or yaml"):
        codec.encode({"a": 1}, "raw")


def test_json_string_is_kept_as_written_and_compared_structurally():
    data, value = codec.encode('{"b": 1, "a": [1, 2]}', "json")
    assert data == b'{"b": 1, "a": [1, 2]}'
    assert value == {"a": [1, 2], "b": 1}
    assert codec.same(b'{"a":[1,2],"b":1}', data, value, "json")
    assert not codec.same(b'{"a":[1,3],"b":1}', data, value, "json")


def test_structures_serialize_with_sorted_keys():
    assert codec.encode({"b": 1, "a": 2}, "json")[0] == b'{"a":2,"b":1}'
    assert codec.encode({"b": 1, "a": 2}, "yaml")[0] == b"a: 2\nb: 1\n"


def test_yaml_compares_structurally():
    data, value = codec.encode({"x": [1, 2]}, "yaml")
    assert codec.same(b"x: [1, 2]\n", data, value, "yaml")


def test_malformed_json_in_znode_is_a_change_not_a_crash():
    data, value = codec.encode({"a": 1}, "json")
    assert not codec.same(b"{not json", data, value, "json")


def test_malformed_json_errors_name_the_place():
    with pytest.raises(codec.CodecError, match="data of /x is not valid JSON"):
        codec.decode(b"{oops", "json", "data of /x")
    with pytest.raises(codec.CodecError, match="value is not valid JSON"):
        codec.encode("{oops", "json")
    with pytest.raises(codec.CodecError, match="not valid YAML"):
        codec.decode(b"a: [1", "yaml")


def test_empty_structured_data_is_null():
    assert codec.decode(b"", "json") is None
    assert codec.decode(b"  \n", "yaml") is None


def test_binary():
    blob = bytes(range(256))
    text = codec.decode(blob, "base64")
    assert codec.encode(text, "base64")[0] == blob
    with pytest.raises(codec.CodecError, match="binary"):
        codec.decode(blob, "raw")
    with pytest.raises(codec.CodecError, match="not valid base64"):
        codec.encode("***", "base64")


def test_preview_names_a_digest_for_binary_and_cut_data():
    assert codec.preview(b"\xff\xfe") == "<binary, 2 bytes, sha256 %s>" % codec.digest(b"\xff\xfe")
    assert codec.preview(b"\xff\x00\x01") != codec.preview(b"\xff\x00\x02")  # same length, other bytes
    assert codec.preview(b"x" * 300).endswith("... (300 bytes, sha256 %s)" % codec.digest(b"x" * 300))


def test_diff_text_shows_every_change():
    assert codec.diff_text(b'{"b":1,"a":2}', "json") == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert codec.diff_text(b"{bad", "json") == "{bad\n\\ No newline at end of file\n"
    assert codec.diff_text(b"a\n", "raw") == "a\n"
    assert codec.diff_text(b"a", "raw") == "a\n\\ No newline at end of file\n"
    assert codec.diff_text(b'{"a": 1}', "json") != codec.diff_text(b'{"a": true}', "json")
    assert codec.diff_text(b"", "json") == ""
    long_one, long_two = codec.diff_text(b"x" * 50 + b"1", "raw", 20), codec.diff_text(b"x" * 50 + b"2", "raw", 20)
    assert long_one != long_two and long_one.endswith(")\n") and "No newline" not in long_one


@pytest.mark.parametrize("left, right", [
    (1, True), (1, 1.0), (0, False), (1.0, True), ({"a": 1}, {"a": True}), ([1], [1.0]), (None, False),
    ("1", 1), ({1: "x"}, {True: "x"}), ({"a": [1, {"b": 0}]}, {"a": [1, {"b": False}]}), (0.0, -0.0),
    ([1, 2], [2, 1]), ({"a": 1}, {"a": 1, "b": 1}),
])
def test_equal_tells_types_apart(left, right):
    assert not codec.equal(left, right) and not codec.equal(right, left)  # whatever Python's == says


@pytest.mark.parametrize("left, right", [
    ({"b": 1, "a": [1.5, None]}, {"a": [1.5, None], "b": 1}), (float("nan"), float("nan")), ("x", "x"),
    ((1, 2), [1, 2]), ({}, {}),
])
def test_equal_ignores_key_order(left, right):
    assert codec.equal(left, right) and codec.equal(right, left)


def test_same_compares_with_types():
    data, value = codec.encode({"enabled": True}, "json")
    assert not codec.same(b'{"enabled": 1}', data, value, "json")
    assert codec.same(b'{"enabled": true}', data, value, "json")
    data, value = codec.encode("null", "json")  # JSON null is a document; an empty znode holds none
    assert not codec.same(b"", data, value, "json") and codec.same(b"null", data, value, "json")


BOMB = "".join(['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'] + [
    "%s: &%s [%s]\n" % (cur, cur, ",".join(["*" + prev] * 9)) for prev, cur in zip("abcdefgh", "bcdefghi")])


@pytest.mark.parametrize("text", [
    BOMB,
    "a: &a [x]\nb: &b [*a, *a]\n" + "".join("k%d: &k%d [*%s, *%s]\n" % (i, i, p, p) for i, p in enumerate(
        ["b"] + ["k%d" % j for j in range(29)])),  # doubling 31 times
    "".join("m%d: &m%d {<<: [*m%d, *m%d], k%d: 1}\n" % (i, i, i - 1, i - 1, i) if i else "m0: &m0 {k: 1}\n"
            for i in range(40)),  # merge keys
    "a: &a [*a]\n",  # an alias inside what it names
])
def test_yaml_that_expands_is_refused(text):
    with pytest.raises(codec.CodecError, match="data of /x is not usable YAML: it expands to more than 4000000"):
        codec.decode(text.encode(), "yaml", "data of /x")
    with pytest.raises(codec.CodecError, match="value is not usable YAML"):
        codec.encode(text, "yaml")


def test_honest_anchors_and_big_documents_load():
    assert codec.load_yaml("base: &b {x: 1}\nweb: {<<: *b, y: 2}\n", "f") == {
        "base": {"x": 1}, "web": {"x": 1, "y": 2}}
    big = "".join("key%d: %s\n" % (i, "v" * 40) for i in range(20000))  # about 1 MB, a full znode
    assert len(codec.load_yaml(big, "f")) == 20000
