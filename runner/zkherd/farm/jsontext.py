"""The JSON export of a farm, made from one cached piece per member: a change of one member among
a thousand encodes that member again and joins the pieces, instead of encoding the whole farm
(Python's json encodes an indented document in pure Python: about 2.5 ms for 1,000 members).

The text is exactly `json.dumps(members, indent=4, allow_nan=False) + "\\n"` of the members with
NaN and infinities made null (export.finite): json.dumps indents a nested value by its level, and
no JSON string holds a raw newline, so a member encoded alone becomes its piece by indenting every
line after the first by four spaces."""

from __future__ import annotations

import json


class JsonText:
    def __init__(self, finite):
        self.finite = finite  # value -> the value with NaN and infinities as None
        self.pieces = {}  # name -> (the member's doc, '"name": {...}' indented for level 1)

    def render(self, members):
        """The export's text of {name: doc} (in the order given)."""
        if not members:
            return "{}\n"
        pieces = {}
        for name, doc in members.items():
            cached = self.pieces.get(name)
            if cached is None or cached[0] is not doc:  # a member read again is a new object
                member = json.dumps(self.finite(doc), indent=4, allow_nan=False).replace("\n", "\n    ")
                cached = (doc, "    %s: %s" % (json.dumps(name), member))
            pieces[name] = cached
        self.pieces = pieces  # members that left (or are filtered out) are forgotten
        return "{\n%s\n}\n" % ",\n".join(piece for _doc, piece in pieces.values())
