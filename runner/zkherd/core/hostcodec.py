"""The `idna` codec without its weight for ASCII host names. CPython encodes every host name it
resolves with the `idna` codec, and that module (with stringprep and unicodedata) stays in memory
for the life of the runner: about 420 KiB, for names that are ASCII nearly always. install() puts a
codec first in line that does for ASCII what `encodings.idna` does for it (the same checks, the
same bytes) and hands anything else - and every decode - to the real one, imported only then."""

from __future__ import annotations

import codecs
import sys


def _real():
    from encodings import idna  # noqa: PLC0415  # only for a name that is not ASCII

    return idna.Codec()


def _encode(text, errors="strict"):
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        return _real().encode(text, errors)
    if errors != "strict":
        raise UnicodeError("unsupported error handling " + errors)  # as encodings.idna says
    labels = data.split(b".")
    bad = [(i, 1, "label empty") for i, label in enumerate(labels[:-1]) if not label]
    bad += [(i, len(label), "label too long") for i, label in enumerate(labels) if len(label) >= 64]
    if bad:
        if sys.version_info < (3, 13):
            last = all(0 < len(label) < 64 for label in labels[:-1])
            raise UnicodeError("label too long" if last else "label empty or too long")
        # Python 3.13 names the first bad label (empty ones first), as a UnicodeEncodeError
        i, width, reason = bad[0]
        start = sum(len(label) + 1 for label in labels[:i])
        raise UnicodeEncodeError("idna", text, start, start + width, reason)
    return data, len(text)


def _decode(data, errors="strict"):
    return _real().decode(data, errors)


def _search(name):
    return codecs.CodecInfo(_encode, _decode, name="idna") if name == "idna" else None


def install():
    """Put the light codec before the standard search (Python 3.10+; before, nothing changes)."""
    import encodings  # noqa: PLC0415

    if not hasattr(codecs, "unregister"):
        return
    codecs.unregister(encodings.search_function)
    codecs.register(_search)
    codecs.register(encodings.search_function)
