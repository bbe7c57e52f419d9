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


def test_preview_and_pretty():
    assert codec.preview(b"\xff\xfe") == "<binary, 2 bytes>"
    assert codec.preview(b"x" * 300).endswith("... (300 bytes)")
    assert codec.pretty(b'{"b":1,"a":2}', "json") == '{\n  "a": 2,\n  "b": 1\n}'
    assert codec.pretty(b"{bad", "json") == "{bad"
