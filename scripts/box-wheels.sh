#!/usr/bin/env bash
# The runner's dependencies as wheels (and setuptools for building zkherd's own wheel), for the
# runner role's offline install (runner_wheel_dir) on the demo's and molecule's boxes, which run
# the same Python as .venv. Prints the folder. Fast when done.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/box-wheels
if [ ! -f "$dest/.done" ] || ! ls "$dest"/prometheus_client-*.whl >/dev/null 2>&1; then
    echo "[box-wheels] downloading kazoo, jinja2, pyyaml, prometheus-client and setuptools wheels into $dest" >&2
    rm -rf "$dest" && mkdir -p "$dest"
    .venv/bin/python -m pip download -q --only-binary=:all: -d "$dest" \
        'kazoo>=2.9' 'jinja2>=3' 'pyyaml>=6' 'prometheus-client>=0.16' 'setuptools>=77' >&2
    touch "$dest/.done"
fi
echo "$PWD/$dest"
