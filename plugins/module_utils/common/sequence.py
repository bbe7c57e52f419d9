# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names of sequential znodes (PREFIX[TOKEN-]NNNNNNNNNN), parsed strictly: one rule for the
runner's recipes and the drain flags (the modules and `zkherd drain` read lock lines too). Anyone
who may write a folder can plant a name: a suffix that is not ten ASCII digits is no sequence."""

from __future__ import annotations

import re

DIGITS = 10
_SEQUENCE = re.compile("[0-9]{10}")  # ASCII digits only: int() refuses '²', str.isdigit() does not


def is_sequence(text):
    return _SEQUENCE.fullmatch(text) is not None


def in_order(children, prefix):
    """The children named PREFIX ... + a sequence number, in order (the token, if any, between)."""
    return sorted((c for c in children if c.startswith(prefix) and is_sequence(c[-DIGITS:])),
                  key=lambda name: int(name[-DIGITS:]))
