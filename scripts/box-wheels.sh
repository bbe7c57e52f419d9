#!/usr/bin/env bash
# The runner's dependencies as wheels (and setuptools for building zkherd's own wheel), for the
# runner role's offline install (runner_wheel_dir) on the demo's and molecule's boxes, which run
# the same Python as .venv. Prints the folder. Fast when done.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/box-wheels
# pyproject's dependencies (prometheus-client: the runners' --metrics-listen/--metrics-file), and
# setuptools. The marker holds this list: a folder made for another list is made again.
specs=('kazoo>=2.9' 'jinja2>=3' 'pyyaml>=6' 'prometheus-client>=0.17' 'setuptools>=77')
if [ "$(cat "$dest/.done" 2>/dev/null)" != "${specs[*]}" ]; then
    echo "[box-wheels] downloading ${specs[*]} wheels into $dest" >&2
    rm -rf "$dest" && mkdir -p "$dest"
    .venv/bin/python -m pip download -q --only-binary=:all: -d "$dest" "${specs[@]}" >&2
    echo "${specs[*]}" > "$dest/.done"
fi
echo "$PWD/$dest"
