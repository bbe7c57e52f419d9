"""The `idna` codec without its weight for ASCII host names. CPython encodes every host name it
resolves with the `idna` codec, and that module (with stringprep and unicodedata) stays in memory
for the life of the runner: about 420 KiB, for names that are ASCII nearly always. install() puts a
codec first in line that does for ASCII what `encodings.idna` does for it (the same checks, the
same bytes) and hands anything else - and every decode - to the real one, imported only then."""

from __future__ import annotations

import codecs


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
    if any(not 0 < len(label) < 64 for label in labels[:-1]) or len(labels[-1]) >= 64:
        raise UnicodeError("label empty or too long")
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
