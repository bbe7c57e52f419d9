#!/usr/bin/env bash
# The README's test command (`make test`) runs this after scripts/bootstrap.sh.
# Steps: lint (ruff, ansible-lint), units and sanity (ansible-test), integration (pytest against
# real ZooKeeper servers the tests start), molecule (the roles on three systemd-nspawn boxes), and the
# matrix: ansible-test on the newest ansible-core and Python 3.13, the runner's tests on Pythons 3.9 and
# 3.13 (docs/testing.md). Two steps at a time where that fills the 2 cores: sanity beside the
# integration tests, the matrix beside molecule (one ansible-playbook at a time, about one core).
# Not molecule beside the integration tests: each starved the other (811 s and 1107 s, docs/testing.md).
# Runs every step, then prints one summary line.
# Usage: scripts/test.sh [lint|units|sanity|integration|molecule|matrix|A+B]...   (default: all)
#   A+B runs step A in the background while B runs; A's output follows B's.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export LANG=C.UTF-8 LC_ALL=C.UTF-8 ANSIBLE_CONFIG=$PWD/ansible.cfg
export PATH=$PWD/.venv/bin:$PATH

passed=() failed=()
record=""  # a file that gets "passed NAME" or "failed NAME" per step too (steps run in the background)
# cpu_ticks: busy and total jiffies of all cores since boot (the machine's, not only ours: /proc/stat)
cpu_ticks() {
    local user nice system idle iowait irq softirq steal
    read -r _ user nice system idle iowait irq softirq steal _ </proc/stat
    echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

step() {
    local name=$1; shift
    echo "=== $name: $*"
    local start=$SECONDS outcome=passed busy0 total0 busy1 total1
    read -r busy0 total0 < <(cpu_ticks)
    if "$@"; then passed+=("$name"); else failed+=("$name"); outcome=failed; fi
    read -r busy1 total1 < <(cpu_ticks)
    # how busy the cores were shows which steps leave room for others beside them (docs/testing.md)
    echo "=== $name took $((SECONDS - start)) s, CPU $((100 * (busy1 - busy0) / (total1 - total0 + 1)))% busy"
    [ -z "$record" ] || echo "$outcome $name" >>"$record"
}

# beside A B: runs step A in the background (output to .test-logs/A.log) while step B runs, then
# shows A's output and counts its steps. A that did not finish (killed, also after some of its steps
# reported) counts as failed.
beside() {
    local log=.test-logs/$1.log steps=.test-logs/$1.steps outcome name
    mkdir -p .test-logs
    : >"$steps"
    echo "=== $1: in the background while $2 runs, output in $log"
    ( record=$steps; run "$1"; echo "finished $1" >>"$steps" ) >"$log" 2>&1 &
    local pid=$!
    run "$2"
    wait "$pid"
    echo "=== $1 (ran beside $2):"
    cat "$log"
    grep -qx "finished $1" "$steps" || echo "failed $1 (did not finish)" >>"$steps"
    while read -r outcome name; do
        case $outcome in
            passed) passed+=("$name") ;;
            failed) failed+=("$name") ;;
        esac
    done <"$steps"
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
        # Five workers on 2 cores, a test file each at a time: the tests mostly wait on ZooKeeper, timeouts
        # and children (two workers left the CPU half idle, three and four a third), and the suite has a 20-minute budget
        # (docs/testing.md). --durations names the slow ones in CI's log.
        # Its output is kept in .test-logs/ too: the names of failed tests are printed again at the very
        # end, where a CI log's tail shows them.
        integration) mkdir -p .test-logs
                     step integration pytest_logged .test-logs/integration.log tests/runner tests/integration -q \
                         -n 5 --dist loadfile --no-loadscope-reorder --durations=15 ;;
        molecule) step molecule scripts/molecule.sh test ;;
        # The second leg of the ansible-core matrix and the runner's own tests on the oldest Python that
        # pyproject.toml claims and on 3.13, each in a venv of .cache/ (scripts/bootstrap.sh matrix).
        matrix)
            step matrix-venvs scripts/bootstrap.sh matrix
            step ansible-test-units-newest scripts/ansible-test.sh --core newest units
            step ansible-test-sanity-newest scripts/ansible-test.sh --core newest sanity
            local version
            for version in 3.9 3.13; do
                step "runner-tests-py$version" ".cache/venv-py$version/bin/python" -m pytest tests/runner -q \
                    -p no:cacheprovider --basetemp=".cache/pytest-py$version"
            done ;;
        *) echo "unknown step $1" >&2; exit 64 ;;
    esac
}

steps=("${@:-lint units sanity+integration matrix+molecule}")
for what in "${steps[@]}"; do  # all names known before anything starts in the background
    for pair in $what; do
        case $pair in *+*+*) echo "only two steps side by side: $pair" >&2; exit 64 ;; esac
    done
    for one in ${what//+/ }; do
        case $one in lint|units|sanity|integration|molecule|matrix) ;; *) echo "unknown step $one" >&2; exit 64 ;; esac
    done
done
for what in "${steps[@]}"; do
    for one in $what; do
        if [[ $one == *+* ]]; then beside "${one%%+*}" "${one#*+}"; else run "$one"; fi
    done
done

echo "steps passed: ${passed[*]:-none}"
[ ${#failed[@]} -eq 0 ] || echo "steps failed: ${failed[*]}"
if [[ " ${failed[*]} " == *" integration "* ]]; then grep -E '^(FAILED|ERROR) ' .test-logs/integration.log; fi
echo "steps: ${#passed[@]} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
