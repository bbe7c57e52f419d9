#!/usr/bin/env bash
# Installs what `make test`, `make demo` and `make bench` need, on first use; fast when done.
#   - Debian's zookeeper package (and a Java runtime) when missing
#   - a virtual environment .venv with the runner package (editable) and the pinned test tools
#   - this checkout linked as the collection zkherd.ops under .cache/collections (see ansible.cfg)
set -euo pipefail
cd "$(dirname "$0")/.."
export LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive

say() { printf '[bootstrap] %s\n' "$*"; }

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
    mkdir -p .cache
    if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e '.[test]'; } \
            >.cache/bootstrap-pip.log 2>&1; then
        tail -n 30 .cache/bootstrap-pip.log
        say "pip install failed; the whole log is .cache/bootstrap-pip.log"
        exit 1
    fi
    touch "$stamp"
fi

link=.cache/collections/ansible_collections/zkherd/ops
if [ "$(readlink "$link" 2>/dev/null)" != "../../../.." ]; then
    mkdir -p "$(dirname "$link")"
    ln -sfn ../../../.. "$link"
fi
