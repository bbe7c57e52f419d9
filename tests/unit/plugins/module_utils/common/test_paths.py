from __future__ import annotations

import pytest

from ansible_collections.zkherd.ops.plugins.module_utils.common import paths


@pytest.mark.parametrize("path", ["/", "/a", "/a/b-c_d.e", "/.hidden", "/a/..b", "/été"])
def test_valid_paths(path):
    assert paths.validate(path) == path


@pytest.mark.parametrize(
    "path, reason",
    [
        ("", "non-empty"),
        ("a/b", "must start with '/'"),
        ("/a/", "must not end with '/'"),
        ("/a//b", "empty node name"),
        ("/a/./b", "relative name"),
        ("/a/..", "relative name"),
        ("/a\x00b", "U+0000"),
        ("/a\x1fb", "U+001F"),
        ("/a\ufff5", "U+FFF5"),
    ],
)
def test_invalid_paths_say_why(path, reason):
    with pytest.raises(paths.PathError, match=reason.replace("+", r"\+").replace(".", r"\.")):
        paths.validate(path)


def test_helpers():
    assert paths.ancestors("/a/b/c") == ["/a", "/a/b"]
    assert paths.ancestors("/a") == []
    assert paths.join("/", "a") == "/a"
    assert paths.join("/a", "b") == "/a/b"
    assert paths.parent("/a/b") == "/a"
    assert paths.parent("/a") == "/"
    assert paths.depth("/") == 0 and paths.depth("/a/b") == 2
    assert paths.relative("/a", "/a/b/c") == "b/c"
    assert paths.relative("/", "/x") == "x"
    assert paths.is_system("/zookeeper/quota") and not paths.is_system("/zookeeperx")
    with pytest.raises(paths.PathError):
        paths.validate_name("a/b")
    with pytest.raises(paths.PathError):
        paths.validate_name("..")
    with pytest.raises(paths.PathError, match="must not be empty"):
        paths.validate_name("")  # '/' + '' would be the parent itself
