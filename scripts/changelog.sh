#!/usr/bin/env bash
# Writes CHANGELOG.md from changelogs/ with antsibull-changelog (`make changelog`).
# Nothing is released yet: changelogs/changelog.yaml has no release, and antsibull-changelog only
# renders releases. So the coming release (galaxy.yml's version) is made with `antsibull-changelog
# release` in a scratch copy laid out as ansible_collections/zkherd/ops, `antsibull-changelog
# generate` renders it there, and only CHANGELOG.md comes back: the fragments stay in changelogs/fragments/ until the real release.
# Usage: scripts/changelog.sh [--check]   (--check: exit 1 when CHANGELOG.md is not what it would write)
set -euo pipefail
cd "$(dirname "$0")/.."
export LANG=C.UTF-8 LC_ALL=C.UTF-8 PATH=$PWD/.venv/bin:$PATH
root=$PWD
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
coll=$scratch/ansible_collections/zkherd/ops
mkdir -p "$coll"
for name in galaxy.yml meta plugins roles; do ln -s "$root/$name" "$coll/$name"; done
cp -r changelogs "$coll/changelogs"
version=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["version"])' galaxy.yml)
cd "$coll"
export ANSIBLE_COLLECTIONS_PATH=$scratch
# A fixed date: CHANGELOG.md does not show it, and changelog.yaml stays in the scratch copy.
antsibull-changelog release --version "$version" --date 1970-01-01 >"$scratch/release.log" 2>&1 \
    || { cat "$scratch/release.log" >&2; exit 1; }
antsibull-changelog generate
if [ "${1:-}" = --check ] && ! cmp -s CHANGELOG.md "$root/CHANGELOG.md"; then
    cp CHANGELOG.md "$root/CHANGELOG.md.new"
    echo "CHANGELOG.md is not up to date with changelogs/fragments/ (CHANGELOG.md.new is): run make changelog" >&2
    exit 1
fi
[ "${1:-}" = --check ] || cp CHANGELOG.md "$root/CHANGELOG.md"
