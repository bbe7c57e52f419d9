#!/usr/bin/env bash
# run a playbook against the molecule boxes (scripts/molecule.sh converge first)
cd "$(dirname "$0")/../.." || exit 1
export LANG=C.UTF-8 LC_ALL=C.UTF-8 PATH=$PWD/.venv/bin:$PATH ANSIBLE_CONFIG=$PWD/ansible.cfg
ANSIBLE_COLLECTIONS_PATH=$PWD/.cache/collections:$(scripts/ext-collections.sh)
ZKHERD_BOX_WHEELS=$(scripts/box-wheels.sh)
export ANSIBLE_COLLECTIONS_PATH ZKHERD_BOX_WHEELS
export ZKHERD_BOXES_STATE=$PWD/.cache/molecule-boxes
export ZKHERD_TLS_CA=$ZKHERD_BOXES_STATE/tls/site/cert.pem ZKHERD_TLS_CERT=$ZKHERD_BOXES_STATE/tls/site/cert.pem ZKHERD_TLS_KEY=$ZKHERD_BOXES_STATE/tls/site/key.pem
export ANSIBLE_NOCOLOR=1
ansible-playbook -i playbooks/inventory/boxes.yml -i molecule/default/inventory/tls.yml -i "$ZKHERD_BOXES_STATE/inventory.yml" "$@"
