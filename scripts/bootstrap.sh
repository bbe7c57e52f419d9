#!/usr/bin/env bash
# Installs what `make test`, `make demo` and `make bench` need, on first use; fast when done.
#   - Debian's zookeeper package (and a Java runtime) when missing
#   - a virtual environment .venv with the runner package (editable) and the pinned test tools
#   - this checkout linked as the collection zkherd.ops under .cache/collections (see ansible.cfg)
#   - with the argument `matrix`, also the matrix venvs (docs/testing.md): .cache/venv-py3.13 (the
#     runner's tests and the newest ansible-core) and .cache/venv-py3.9 (the runner's tests on the oldest
#     Python pyproject.toml claims), from pyenv's Pythons
# Usage: scripts/bootstrap.sh [matrix]
set -euo pipefail
cd "$(dirname "$0")/.."
export LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive

say() { printf '[bootstrap] %s\n' "$*"; }

# pip_install VENV ARGS...: quiet, with the log's tail shown when it fails
pip_install() {
    local venv=$1; shift
    mkdir -p .cache
    if ! { "$venv/bin/python" -m pip install --upgrade pip && "$venv/bin/python" -m pip install "$@"; } \
            >.cache/bootstrap-pip.log 2>&1; then
        tail -n 30 .cache/bootstrap-pip.log
        say "pip install failed; the whole log is .cache/bootstrap-pip.log"
        exit 1
    fi
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

need_apt=()
[ -f /usr/share/java/zookeeper.jar ] || need_apt+=(zookeeper)
command -v java >/dev/null || need_apt+=(default-jre-headless)
command -v shellcheck >/dev/null || need_apt+=(shellcheck)  # used by ansible-test sanity
command -v php >/dev/null || need_apt+=(php-cli)  # the tests include `farm export --format php` output
if [ ${#need_apt[@]} -gt 0 ]; then
    say "installing Debian packages: ${need_apt[*]}"
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
stamp=.venv/.zkherd-installed
if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing the runner package and the test tools into .venv"
    pip_install .venv -e '.[test]'
    touch "$stamp"
fi

link=.cache/collections/ansible_collections/zkherd/ops
if [ "$(readlink "$link" 2>/dev/null)" != "../../../.." ]; then
    mkdir -p "$(dirname "$link")"
    ln -sfn ../../../.. "$link"
fi

# pyenv_python X.Y: pyenv's newest X.Y interpreter (pyenv root, not a fixed path), else pythonX.Y on PATH
pyenv_python() {
    local found="" root
    if root=$(pyenv root 2>/dev/null); then
        found=$(find "$root"/versions/"$1".*/bin -maxdepth 1 -name "python$1" 2>/dev/null | sort -V | tail -n 1)
    fi
    [ -n "$found" ] || found=$(command -v "python$1" || true)
    if [ -z "$found" ] || ! "$found" -c '' 2>/dev/null; then
        say "Python $1 not found: the matrix needs it (pyenv install $1, or python$1 on PATH)"
        exit 1
    fi
    echo "$found"
}

# matrix_venv X.Y EXTRAS: .cache/venv-pyX.Y with the runner package and those extras of pyproject.toml
matrix_venv() {
    local venv=.cache/venv-py$1 python
    if [ ! -x "$venv/bin/python" ]; then
        python=$(pyenv_python "$1")
        say "creating $venv with $("$python" --version)"
        "$python" -m venv "$venv"
    fi
    if [ ! -f "$venv/.zkherd-installed" ] || [ pyproject.toml -nt "$venv/.zkherd-installed" ]; then
        say "installing the runner package and [$2] into $venv"
        pip_install "$venv" -e ".[$2]"
        touch "$venv/.zkherd-installed"
    fi
}

if [ "${1:-}" = matrix ]; then
    matrix_venv 3.13 runner-tests,core-newest
    matrix_venv 3.9 runner-tests
fi
