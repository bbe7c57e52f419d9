#!/usr/bin/env bash
# Outside collections that only the benchmarks, molecule and the demo use (community.general for
# the comparison with community.general.znode, community.docker for its nsenter connection), taken
# from the `ansible` package on PyPI (Galaxy is not reachable here) into .cache/ext-collections.
# Prints that collections path. Fast when done.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/ext-collections
stamp=$dest/.ansible-12
if [ ! -f "$stamp" ]; then
    echo "[ext-collections] fetching community.general and community.docker from the ansible package (PyPI)" >&2
    rm -rf .cache/ext-download "$dest" && mkdir -p .cache/ext-download "$dest"
    .venv/bin/python -m pip download -q --no-deps -d .cache/ext-download 'ansible>=12,<13' >&2
    .venv/bin/python - .cache/ext-download/ansible-*.whl "$dest" <<'PY'
import sys, zipfile
prefixes = ("ansible_collections/community/general/", "ansible_collections/community/docker/")
with zipfile.ZipFile(sys.argv[1]) as wheel:
    wheel.extractall(sys.argv[2], members=[n for n in wheel.namelist() if n.startswith(prefixes)])
PY
    rm -rf .cache/ext-download
    touch "$stamp"
fi
echo "$PWD/$dest"
