"""core/hostcodec.py raises what this Python's own `idna` codec raises for a bad ASCII name: the
same type, message and position (Python 3.13 made it a UnicodeEncodeError naming the label; the
matrix runs this on 3.9, 3.11 and 3.13, docs/testing.md)."""

from __future__ import annotations

import pytest

from zkherd.core import hostcodec


def _outcome(encode, name):
    try:
        return encode(name)
    except UnicodeError as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize("name", ["a" * 64, "a..b", ".a", "a." + "b" * 64, "b" * 64 + "..c", "ok." + "c" * 70,
                                  "a" * 63 + "." + "b" * 63 + ".", "x.y"])
def test_errors_match_the_real_codec(name):
    from encodings import idna

    assert _outcome(hostcodec._encode, name) == _outcome(idna.Codec().encode, name)  # noqa: SLF001
