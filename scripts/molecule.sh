#!/usr/bin/env bash
# The molecule scenario on real systemd: boots three systemd-nspawn boxes (the root file system is
# built once and cached, see tests/support/boxes.py), converges playbooks/site.yml there twice
# (idempotence), verifies, and powers the boxes off, also when interrupted.
#   scripts/molecule.sh [test|converge|verify|destroy|...]   (default: test)
set -euo pipefail
cd "$(dirname "$0")/.."
export LANG=C.UTF-8 LC_ALL=C.UTF-8 PATH=$PWD/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH; ANSIBLE_COLLECTIONS_PATH=$PWD/.cache/collections:$(scripts/ext-collections.sh)
export ZKHERD_BOX_WHEELS; ZKHERD_BOX_WHEELS=$(scripts/box-wheels.sh)
export ZKHERD_BOXES_STATE=${ZKHERD_BOXES_STATE:-$PWD/.cache/molecule-boxes}
mkdir -p "$ZKHERD_BOXES_STATE"
[ -f "$ZKHERD_BOXES_STATE/inventory.yml" ] || echo '{}' >"$ZKHERD_BOXES_STATE/inventory.yml"
python -m tests.support.boxes build >/dev/null
action=${1:-test}
if [ "$action" = test ]; then
    trap 'python -m tests.support.boxes down --state "$ZKHERD_BOXES_STATE"' EXIT
fi
molecule "$action"
