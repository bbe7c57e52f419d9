# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Text from ZooKeeper as a warning may show it on the operator's terminal.

Member names, field names and values are written by whoever can write a farm: a name may carry a
terminal escape sequence (retitle the window, clear the screen, hide the lines above), a bidi
override that shows `exe.txt` for `txt.exe`, or a megabyte of text. Shown through these, every
character that is not printable is escaped the way repr() escapes it, and the length is bounded.
"""

from __future__ import annotations

NAME_LIMIT = 100  # characters of one name or value shown
MESSAGE_LIMIT = 2000  # characters of one whole message shown


def _escaped(text):
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _cut(text, limit):
    return text if len(text) <= limit else "%s...(%d characters)" % (text[:limit], len(text))


def shown(text, limit=NAME_LIMIT):
    """*text* (a name) escaped and cut to *limit* characters, then how long it was."""
    text = text if isinstance(text, str) else str(text)
    if len(text) > limit:
        return "%s...(%d characters)" % (_escaped(text[:limit]), len(text))
    return _escaped(text)


def shown_repr(value, limit=NAME_LIMIT):
    """repr() of *value* (which escapes what is not printable) cut to *limit* characters."""
    if isinstance(value, str) and len(value) > limit:
        return "%r...(%d characters)" % (value[:limit], len(value))
    return _cut(repr(value), limit * 4)  # a short string's repr may be up to 4 times longer


def printable(message, limit=MESSAGE_LIMIT):
    """A whole message that may quote farm data (a member path, say): escaped and bounded."""
    return _escaped(_cut(message, limit))
