#!/usr/bin/env bash
# `make demo`: from nothing to every capability at work on real systemd hosts. Boots three
# systemd-nspawn boxes (tests/support/boxes.py; the Debian root is built once, then cached),
# deploys with the roles (playbooks/site.yml: a ZooKeeper ensemble across the boxes - the embedded
# default - the runner, a singleton service, a rolling-config service, a farm with exports, a web
# farm behind haproxy and nginx fed from ZooKeeper, a leader-only timer), then shows each capability
# working (tests/support/sitecheck.py; curl through haproxy and nginx for the web farm). Secure by
# default: every znode belongs to the deployment's credentials, which the runner role generated on
# the first run (playbooks/credentials/, see docs/security.md); the commands below use a copy.
# Idempotent: run again, it keeps the boxes that are still up and the playbooks change nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export LANG=C.UTF-8 LC_ALL=C.UTF-8 ANSIBLE_CONFIG=$PWD/ansible.cfg PATH=$PWD/.venv/bin:$PATH
ANSIBLE_COLLECTIONS_PATH=$PWD/.cache/collections:$(scripts/ext-collections.sh)
export ANSIBLE_COLLECTIONS_PATH
export ZKHERD_BOX_WHEELS; ZKHERD_BOX_WHEELS=$(scripts/box-wheels.sh)
state=$PWD/.cache/demo-boxes
log=$PWD/.cache/demo-site.log
zk=$(python -c 'import yaml; print(yaml.safe_load(open("playbooks/inventory/boxes.yml"))["all"]["vars"]["zkherd_hosts"])')

# Boxes still up from an earlier `make demo` are kept, with what runs on them: the playbooks then
# find nothing to change (idempotence), which the summary below says.
before=$(cat "$state/boxes.json" 2>/dev/null || true)
python -m tests.support.boxes up --state "$state" --count 3 --reuse
[ "$before" = "$(cat "$state/boxes.json")" ] && kept=1 || kept=0
echo "[demo] deploying with the roles: ansible-playbook playbooks/site.yml (log: $log)"
if ! ansible-playbook -i playbooks/inventory/boxes.yml -i "$state/inventory.yml" playbooks/site.yml >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "[demo] the deployment failed; the whole log is $log"
    exit 1
fi
sed -n '/PLAY RECAP/,$p' "$log"
changed=$(sed -n '/PLAY RECAP/,$p' "$log" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^changed=/) n += substr($i, 9)} END {print n + 0}')
if [ "$changed" = 0 ]; then
    echo "[demo] this run found nothing to change (changed=0 on every host): the site was deployed already"
elif [ "$kept" = 0 ]; then
    echo "[demo] $changed changes: a deployment on new boxes (make demo again keeps them and finds nothing to change)"
else
    echo "[demo] $changed changes on the boxes kept from the last run, made by these tasks:"
    awk '/^(TASK|RUNNING HANDLER) \[/ {task = $0; sub(/^[A-Z ]+\[/, "", task); sub(/\] \**$/, "", task)}
         /^changed: / && !seen[task]++ {print "  " task}' "$log"
fi
echo "[demo] what runs now:"
python -m tests.support.sitecheck --state "$state" --zk "$zk"
pid1=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["box1"]["pid"])' "$state/boxes.json")
auth=$PWD/.cache/demo-auth  # the credentials the boxes use, for the commands below
(umask 077; nsenter -t "$pid1" -a cat /etc/zkherd/auth >"$auth")
echo "[demo] who holds the singleton's lock and who waits: zkherd status /locks/hello"
zkherd status /locks/hello --zk "$zk" --auth-file "$auth" || echo "[demo] zkherd status failed (exit $?)"
cat <<TXT

Poke at it (the boxes share this machine's network; ZooKeeper is at $zk):
  box1:         nsenter -t $pid1 -a systemctl status 'zkherd-*'     (other boxes: $state/boxes.json)
  its logs:     nsenter -t $pid1 -a journalctl -u zkherd-hello -u zkherd-web -f
  status:       .venv/bin/zkherd status /locks/hello /rolling/web /services/db --zk $zk --auth-file $auth   (docs/operations.md)
  the farm:     .venv/bin/zkherd farm ls /services/db --fields hostname,enabled --zk $zk --auth-file $auth
  set a field:  .venv/bin/zkherd farm set /services/db/box2 enabled 0 --zk $zk --auth-file $auth   (box2's /var/service/db/enabled follows; the db exports drop box2)
  the web farm: nsenter -t $pid1 -a sh -c 'for i in 1 2 3; do curl -s 127.0.0.1:25781; curl -s 127.0.0.1:25881; done'   (haproxy, nginx on box1)
  take box3 out: .venv/bin/zkherd farm set /services/web/box3 enabled 0 --zk $zk --auth-file $auth   (every haproxy and nginx drop it; docs/consumers.md)
  a new config: ZKHERD_AUTH=\$(cat $auth) .venv/bin/ansible localhost -m zkherd.ops.znode -a 'path=/config/web/web.conf value="greeting = hi" hosts=$zk'
  without credentials everything above is denied (exit 77): the znodes belong to the deployment
  run again:    make demo        tear down: make demo-stop
TXT
