"""Render the collection's plugin documentation (the DOCUMENTATION, EXAMPLES and RETURN that
ansible-doc shows) as markdown pages in docs/plugins/, so the docs never drift from the code.

    python scripts/plugin_docs.py          write the pages
    python scripts/plugin_docs.py --check  exit 1 if a page is out of date (run by make test)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "plugins"
PLUGIN_TYPES = ("module", "lookup", "inventory")


def ansible_doc(*args):
    bin_dir = Path(sys.executable).parent
    return subprocess.run([str(bin_dir / "ansible-doc"), *args], cwd=REPO, check=True, capture_output=True,
                          text=True).stdout


def plain(text):
    """ansible-doc markup -> markdown: O(x)/V(x)/C(x)/RV(x)/E(x) -> `x`, M(x)/P(x) -> x, I(x) -> *x*."""
    text = re.sub(r"\b(?:O|V|C|RV|E)\(([^()]*(?:\([^()]*\)[^()]*)*)\)", r"`\1`", str(text))
    text = re.sub(r"\b(?:M|P)\(([^)]*)\)", r"\1", text)
    text = re.sub(r"\bI\(([^)]*)\)", r"*\1*", text)
    text = re.sub(r"\bU\(([^)]*)\)", r"<\1>", text)
    return text.replace("|", "\\|").replace("\n", " ")


def paragraphs(value):
    return [plain(v) for v in (value if isinstance(value, list) else [value]) if v]


def option_rows(options, prefix=""):
    for name in sorted(options):
        spec = options[name]
        facts = [spec.get("type", "str")]
        if spec.get("required"):
            facts.append("required")
        if spec.get("default") is not None:
            facts.append("default: `%s`" % json.dumps(spec["default"]))
        if spec.get("choices"):
            facts.append("choices: %s" % ", ".join("`%s`" % c for c in spec["choices"]))
        if spec.get("aliases"):
            facts.append("aliases: %s" % ", ".join(spec["aliases"]))
        for source in ("env", "vars"):
            if spec.get(source):
                facts.append("%s: %s" % (source, ", ".join("`%s`" % e["name"] for e in spec[source])))
        yield "| `%s%s` | %s | %s |" % (prefix, name, "<br>".join(facts), " ".join(paragraphs(spec.get("description"))))
        for key in ("suboptions", "contains"):
            if spec.get(key):
                yield from option_rows(spec[key], prefix + name + ".")


def page(fqcn, kind, data):
    doc = data["doc"]
    lines = ["# %s (%s)" % (fqcn, kind), "", plain(doc.get("short_description", "")), ""]
    lines += ["- %s" % p for p in paragraphs(doc.get("description"))] + [""]
    if doc.get("requirements"):
        lines += ["Requirements: " + "; ".join(paragraphs(doc["requirements"])), ""]
    lines += ["## Options", "", "| option | type and defaults | description |", "|---|---|---|"]
    lines += list(option_rows(doc.get("options", {}))) + [""]
    if doc.get("notes"):
        lines += ["## Notes", ""] + ["- %s" % n for n in paragraphs(doc["notes"])] + [""]
    if data.get("examples"):
        lines += ["## Examples", "", "```yaml", data["examples"].strip("\n"), "```", ""]
    returns = data.get("return") or {}
    if returns:
        lines += ["## Return values", "", "| key | type | description |", "|---|---|---|"]
        for name in sorted(returns):
            spec = returns[name]
            desc = " ".join(paragraphs(spec.get("description")))
            if spec.get("returned"):
                desc += " Returned: %s." % plain(spec["returned"])
            lines.append("| `%s` | %s | %s |" % (name, spec.get("type", ""), desc))
        lines.append("")
    lines.append("Generated from the plugin's own documentation by `scripts/plugin_docs.py`; "
                 "`ansible-doc -t %s %s` shows the same." % (kind, fqcn))
    return "\n".join(lines) + "\n"


def pages():
    result = {}
    for kind in PLUGIN_TYPES:
        names = sorted(json.loads(ansible_doc("--list", "--json", "-t", kind, "zkherd.ops")))
        if not names:
            continue
        docs = json.loads(ansible_doc("--json", "-t", kind, *names))
        for fqcn in names:
            result[OUT / ("%s_%s.md" % (fqcn.split(".")[-1], kind))] = page(fqcn, kind, docs[fqcn])
    return result


def main():
    wanted = pages()
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    if "--check" in sys.argv:
        for path in stale:
            print("out of date: %s (run: make docs)" % path.relative_to(REPO))
        sys.exit(1 if stale else 0)
    OUT.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.write_text(wanted[path])
        print("wrote", path.relative_to(REPO))


if __name__ == "__main__":
    main()
