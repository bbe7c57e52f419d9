#!/usr/bin/env bash
# Review 15 (roles): the findings that need real systemd, on the molecule boxes. Not part of the
# suite. Usage, from the checkout: scripts/molecule.sh converge; tests/review15_boxes/run.sh;
# scripts/molecule.sh destroy. Each step prints what to compare (see the review report).
set -uo pipefail
cd "$(dirname "$0")" || exit 1
here=$PWD
pb() { "$here/pb.sh" "$@"; }
box() { nsenter -t "$(python3 -c "import json;print(json.load(open('$here/../../.cache/molecule-boxes/boxes.json'))['box1']['pid'])")" -a sh -c "$1"; }
store=(-e zkherd_auth_store="$here/../../playbooks/credentials/zkherd-auth")
pb "$here/setup.yml" >/dev/null
pb "$here/exp.yml" "${store[@]}" | tail -2
pb "$here/setznode.yml" "${store[@]}" -e znode_value=v2 | tail -2; sleep 3
echo "== on_change 'systemctl reload dummy' from the hardened render unit (expect 2 lines):"; box 'cat /var/tmp/dummy-reloads'
echo "== a template-only change (v1 -> v2) must restart tplsvc:"
sed -i 's/template-v1/template-v2/' templates/svc.conf.j2
pb "$here/exp.yml" "${store[@]}" | tail -2; sleep 2
box 'head -1 /etc/zkherd/templates/service/tplsvc/svc.conf.j2; cat /etc/tplsvc/app.conf'   # FINDING: still template-v1
sed -i 's/template-v2/template-v1/' templates/svc.conf.j2
echo "== a configuration change of tplsvc, render and service roles in one play: which unit restarts?"
pb "$here/exp.yml" "${store[@]}" -e svc_on_change=restart | grep -A2 "RUNNING HANDLER"   # FINDING: item=render-exp
echo "== render role: user + dest in /etc, dest in /etc/ssl/private, a scheduled renderer whose znode is missing"
pb "$here/exp_bad.yml" "${store[@]}" | grep -E "failed:|RECAP" -A1 | cut -c1-200
box 'stat -c "%a %U %n" /etc /etc/ssl/private /etc/ssl/private/exp.pem; journalctl -u zkherd-render-bad -o cat | grep zkherd:'
