#!/usr/bin/env bash
# The README's test command (`make test`) runs this after scripts/bootstrap.sh.
# Steps: lint (ruff, ansible-lint), units and sanity (ansible-test), integration (pytest against
# real ZooKeeper servers the tests start), molecule (the roles on three systemd-nspawn boxes).
# Runs every step, then prints one summary line.
# Usage: scripts/test.sh [lint|units|sanity|integration|molecule]...   (default: all)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export LANG=C.UTF-8 LC_ALL=C.UTF-8 ANSIBLE_CONFIG=$PWD/ansible.cfg
export PATH=$PWD/.venv/bin:$PATH

passed=() failed=()
step() {
    local name=$1; shift
    echo "=== $name: $*"
    local start=$SECONDS
    if "$@"; then passed+=("$name"); else failed+=("$name"); fi
    echo "=== $name took $((SECONDS - start)) s"
}

pytest_logged() {
    local log=$1; shift
    python -m pytest "$@" 2>&1 | tee "$log"
}

# antsibull-docs wants the collection under ansible_collections/: bootstrap's link in .cache/collections
docs_lint() {
    (cd .cache/collections/ansible_collections/zkherd/ops &&
        ANSIBLE_COLLECTIONS_PATH=$PWD/../../.. antsibull-docs lint-collection-docs --plugin-docs .)
}

run() {
    case $1 in
        lint)
            step ruff ruff check .
            step ansible-lint ansible-lint --offline
            step plugin-docs python scripts/plugin_docs.py --check
            step changelog-lint antsibull-changelog lint
            step changelog-fragment scripts/fragment_check.sh
            step docs-lint docs_lint
            ;;
        units) step ansible-test-units scripts/ansible-test.sh units ;;
        sanity) step ansible-test-sanity scripts/ansible-test.sh sanity ;;
        # Three workers on 2 cores, a test file each at a time: the tests mostly wait on ZooKeeper, timeouts
        # and children (two workers left the CPU half idle), and the suite has a 20-minute budget
        # (docs/testing.md). --durations names the slow ones in CI's log.
        # Its output is kept in .test-logs/ too: the names of failed tests are printed again at the very
        # end, where a CI log's tail shows them.
        integration) mkdir -p .test-logs
                     step integration pytest_logged .test-logs/integration.log tests/runner tests/integration -q \
                         -n 3 --dist loadfile --durations=15 ;;
        molecule) step molecule scripts/molecule.sh test ;;
        *) echo "unknown step $1" >&2; exit 64 ;;
    esac
}

for what in "${@:-lint units integration molecule sanity}"; do
    for one in $what; do run "$one"; done
done

echo "steps passed: ${passed[*]:-none}"
[ ${#failed[@]} -eq 0 ] || echo "steps failed: ${failed[*]}"
if [[ " ${failed[*]} " == *" integration "* ]]; then grep -E '^(FAILED|ERROR) ' .test-logs/integration.log; fi
echo "steps: ${#passed[@]} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
