#!/usr/bin/env bash
# A change to plugins/ or runner/ comes with a changelog fragment (changelogs/fragments/*.yml).
# "The change" is what lies between a base commit and the working tree (commits, staged, unstaged
# and new files), the base being the first of these that exists:
#   1. the merge base with $FRAGMENT_BASE (default: origin/main, else main), when it is not HEAD
#      itself (a branch checkout or a pull request);
#   2. the newest tag reachable from HEAD (everything since the last release);
#   3. the last commit that touched changelogs/ (a fresh clone of main with no tag; with no such
#      commit, the whole history).
# Exit 0: no such change, or a fragment was added or edited in the same range (a shallow clone of
# one commit: uncommitted changes only, said on stderr); 1: missing fragment.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
base=""
for ref in ${FRAGMENT_BASE:-origin/main main}; do
    git rev-parse -q --verify "$ref^{commit}" >/dev/null || continue
    mb=$(git merge-base HEAD "$ref" 2>/dev/null || true)
    [ -n "$mb" ] && [ "$mb" != "$(git rev-parse HEAD)" ] && base=$mb how="the merge base with $ref" && break
done
if [ -z "$base" ] && tag=$(git describe --tags --abbrev=0 2>/dev/null); then
    base=$tag how="tag $tag"
fi
if [ -z "$base" ]; then
    base=$(git log -1 --format=%H -- changelogs/)
    how="the last commit that touched changelogs/"
    # In a shallow clone the oldest commit shows every file as added, so it "touched changelogs/"
    # whatever it changed: from there on is what can be checked. When that commit is HEAD (depth 1)
    # nothing can be: say so rather than pass without looking.
    shallow=$(git rev-parse --git-path shallow)
    if [ -n "$base" ] && [ -f "$shallow" ] && grep -qx "$base" "$shallow"; then
        if [ "$base" = "$(git rev-parse HEAD)" ]; then
            echo "changelog fragments: a shallow clone of one commit without \$FRAGMENT_BASE or a tag: only" \
                 "uncommitted changes can be checked; fetch more history (git fetch --deepen=50)" >&2
            how="HEAD (a shallow clone of one commit: uncommitted changes only)"
        else
            how="the oldest commit of this shallow clone (fetch more history to check further back)"
        fi
    fi
fi
if [ -z "$base" ]; then
    base=$(git hash-object -t tree /dev/null) how="the start of the history"
fi
changed=$( { git diff --name-only "$base" --; git ls-files -o --exclude-standard; } | sort -u)
code=$(grep -E '^(plugins|runner)/' <<<"$changed" || true)
fragments=$(grep -E '^changelogs/fragments/[^/]+\.ya?ml$' <<<"$changed" || true)
if [ -n "$code" ] && [ -z "$fragments" ]; then
    echo "changelog fragment missing: these files changed since $how (${base:0:12}) and no" \
         "changelogs/fragments/*.yml was added or edited:" >&2
    while read -r name; do echo "  $name"; done <<<"$code" | head -n 20 >&2
    echo "add one, for example changelogs/fragments/<branch>.yml with" \
         "'minor_changes: [\"what changed, for whom\"]', or add this change to the fragment an earlier" \
         "commit made (see docs/testing.md)" >&2
    exit 1
fi
echo "changelog fragments: ok (since $how)"
