#!/usr/bin/env bash
# Runs `ansible-test sanity` and `ansible-test units` (each in its own --venv) on a copy of the
# collection laid out as .../ansible_collections/zkherd/ops, as ansible-test requires.
# ansible-test bootstraps pip in its venvs with a get-pip script it downloads from a host that
# is not reachable here; we give it a cached pip wheel and a small stand-in script instead.
# Two legs (docs/testing.md): the pinned ansible-core of .venv on Python 3.11, and with `--core newest`
# the newest (pyproject.toml's extra core-newest) from .cache/venv-py3.13 on Python 3.13, sanity
# there only for the tests whose result depends on ansible-core's version or the Python (below).
# Usage: scripts/ansible-test.sh [--core newest] [sanity|units]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
export LANG=C.UTF-8 LC_ALL=C.UTF-8
root=$PWD
core=pinned
if [ "${1:-}" = --core ]; then core=${2:-}; shift 2 || shift; fi
case $core in
    pinned) venv=$root/.venv python=3.11 copy=ansible-test only=() pylint_targets=() ;;
    newest) venv=$root/.cache/venv-py3.13 python=3.13 copy=ansible-test-newest
            # The plugins' documentation and argument specs against this core's schemas, imports and
            # compiling on 3.13, meta/runtime.yml and changelog schemas, the docs' YAML; then this
            # core's pylint with its deprecation checkers on the code that imports ansible (plugins/,
            # tests/unit/: a third of pylint's time on everything; runner/ and the pytest suites do not
            # import ansible, and ruff and the first leg's pylint read them). Not again: pep8, the
            # shell script checks and the file checks (line endings, shebangs, symlinks, no-*), the same
            # whatever the core.
            only=()
            for test in action-plugin-docs ansible-doc changelog compile ignores import \
                        runtime-metadata validate-modules yamllint; do
                only+=(--test "$test")
            done
            pylint_targets=(plugins/ tests/unit/)
            if [ ! -x "$venv/bin/ansible-test" ]; then
                echo "$venv has no ansible-test: run scripts/bootstrap.sh matrix" >&2; exit 1
            fi
            # ansible-test --venv looks for python3.13 on PATH, and pyenv's shim answers only
            # where pyenv enables 3.13: put the venv's own interpreter first.
            PATH=$("$venv/bin/python" -c 'import sys; print(sys.base_prefix)')/bin:$PATH ;;
    *) echo "unknown core '$core' (pinned or newest)" >&2; exit 64 ;;
esac
py=$venv/bin/python

# 1. the stand-in get-pip, for the pip version this ansible-test wants
cache=$HOME/.ansible/test/cache
pip_version=$("$py" - <<'PY'
import inspect, re
from ansible_test._internal import python_requirements as m
print(re.search(r"pip='([^']+)'", inspect.getsource(m.get_venv_packages)).group(1))
PY
)
mkdir -p "$cache"
if ! ls "$cache"/pip-"$pip_version"-*.whl >/dev/null 2>&1; then
    "$py" -m pip download -q --no-deps --only-binary=:all: -d "$cache" "pip==$pip_version" 2>/dev/null
fi
cat >"$cache/get_pip_${pip_version//./_}.py" <<PY
"""Stand-in for get-pip.py, written by zkherd's scripts/ansible-test.sh: installs pip from the
wheel cached beside this file instead of downloading it."""
import glob, os, sys
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, glob.glob(os.path.join(here, "pip-$pip_version-*.whl"))[0])
from pip._internal.cli.main import main
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--no-index", "--find-links", here] + args))
PY

# 2. a fresh copy of the files git knows (tracked and new, not ignored)
dest=$root/.cache/$copy/ansible_collections/zkherd/ops
rm -rf "$dest"
mkdir -p "$dest"
git ls-files -z -c -o --exclude-standard | "$py" -c '
import os, shutil, sys
dest = sys.argv[1]
for name in sys.stdin.buffer.read().decode().split("\0"):
    if name and os.path.isfile(name) and not os.path.islink(name):
        os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
        shutil.copy2(name, os.path.join(dest, name))
' "$dest"

cd "$dest"
# ansible-test lists a collection's files with git; inside our checkout .cache is ignored, so the
# copy gets a repository of its own.
git init -q . && git add -A
status=0
for what in "${@:-sanity units}"; do
    for step in $what; do
        echo "== ansible-test $step"
        case $step in
            sanity) "$venv/bin/ansible-test" sanity --venv --python $python --color no \
                        "${only[@]}" || status=1
                    if [ ${#pylint_targets[@]} -gt 0 ]; then
                        "$venv/bin/ansible-test" sanity --venv --python $python --color no --test pylint \
                            "${pylint_targets[@]}" || status=1
                    fi ;;
            units) "$venv/bin/ansible-test" units --venv --python $python --color no || status=1 ;;
            *) echo "unknown step $step" >&2; exit 64 ;;
        esac
    done
done
exit $status
