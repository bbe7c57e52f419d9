#!/bin/bash
# run a playbook against the molecule boxes of /work/wt/rv-roles
cd "$(dirname "$0")/../.."
export LANG=C.UTF-8 LC_ALL=C.UTF-8 PATH=$PWD/.venv/bin:$PATH ANSIBLE_CONFIG=$PWD/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH=$PWD/.cache/collections:$(scripts/ext-collections.sh)
export ZKHERD_BOX_WHEELS=$(scripts/box-wheels.sh)
export ZKHERD_BOXES_STATE=$PWD/.cache/molecule-boxes
export ZKHERD_TLS_CA=$ZKHERD_BOXES_STATE/tls/site/cert.pem ZKHERD_TLS_CERT=$ZKHERD_BOXES_STATE/tls/site/cert.pem ZKHERD_TLS_KEY=$ZKHERD_BOXES_STATE/tls/site/key.pem
export ANSIBLE_NOCOLOR=1
ansible-playbook -i playbooks/inventory/boxes.yml -i molecule/default/inventory/tls.yml -i $ZKHERD_BOXES_STATE/inventory.yml "$@"
