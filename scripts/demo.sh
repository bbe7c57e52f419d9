#!/usr/bin/env bash
# `make demo`: start a local ZooKeeper (the embedded default, data in .cache/demo-zk) unless it
# already runs, then run playbooks/demo.yml against it. The server stays up for you to poke at.
set -euo pipefail
cd "$(dirname "$0")/.."
export LANG=C.UTF-8 LC_ALL=C.UTF-8 ANSIBLE_CONFIG=$PWD/ansible.cfg PATH=$PWD/.venv/bin:$PATH
port=${ZKHERD_DEMO_PORT:-2181}
python -m tests.support.zkserver start --port "$port" --dir .cache/demo-zk
ansible-playbook playbooks/demo.yml -e "zkherd_hosts=127.0.0.1:$port" "$@"
cat <<TXT

The demo ZooKeeper keeps running on 127.0.0.1:$port (data in .cache/demo-zk).
  look around:  .venv/bin/ansible localhost -m zkherd.ops.znode_info -a 'path=/demo/config recursive=true hosts=127.0.0.1:$port'
  run again:    make demo            (it starts from a clean /demo each time)
  tear down:    make demo-stop
TXT
