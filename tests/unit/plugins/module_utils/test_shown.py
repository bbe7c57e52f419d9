from __future__ import annotations

from ansible_collections.zkherd.ops.plugins.module_utils.shown import printable, shown, shown_repr


def test_unprintable_characters_are_escaped():
    assert shown("a\x1b]0;x\x07b") == "a\\x1b]0;x\\x07b"
    assert shown("txt\u202eexe") == "txt\\u202eexe"  # a bidi override
    assert shown("a\nb\tc\x00") == "a\\nb\\tc\\x00"
    assert shown("db-1.example.com") == "db-1.example.com" and shown("h\u00e4") == "h\u00e4"  # printable stays
    assert printable("member /f/x\u202ey: bad\x1b[2J") == "member /f/x\\u202ey: bad\\x1b[2J"


def test_lengths_are_bounded():
    assert shown("A" * 5000) == "A" * 100 + "...(5000 characters)"
    assert shown("\x1b" * 5000).startswith("\\x1b" * 100) and shown("\x1b" * 5000).endswith("(5000 characters)")
    assert shown_repr("x" * 5000) == repr("x" * 100) + "...(5000 characters)"
    assert shown_repr("a'b") == repr("a'b") and shown_repr(7) == "7"
    assert len(shown_repr(list(range(10000)))) < 500
    assert len(printable("y" * 10 ** 6)) < 2100
