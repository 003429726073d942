#!/bin/sh
# Storage fencing on real NVMe/TCP, run inside the VM (kernel target = nvmet fed by rds-sim).
#
# attachment-service runs with --storage-fencing: each ControllerPublish sets the volume's
# allow list on the (simulated) RDS, which rds-sim mirrors into the subsystem's allowed_hosts
# with attr_allow_any_host=0. Initiator identities are chosen per `nvme connect -q/-I`, so one
# VM plays node-a, node-b and a host that holds nothing. Their host NQNs are read back from
# configfs after each publish (attachment-service derives them from the cluster id and node
# name, as the node plugin does).
#
# Output: "PASS/FAIL <check>", "INFO ...", final "fence: N passed, N failed"; exit 0 when nothing
# failed. Run by scenario.sh before its own stack (rds-sim here on :2223); leaves the target empty.
# The worst case of an unverified RouterOS detail (a list change drops connected controllers):
# boot with guest_script=/host/x.sh where x.sh is `SIM_EXTRA=--nvmet-allow-change-drops exec /fence.sh`.

BIN=/host/bin
R=/run/fence
LOGS=$R/logs
OUT=$R/out
CSI=unix://$R/csi.sock
NVMET=/sys/kernel/config/nvmet
VOL=pvc-vm-fence
NQN=nqn.2000-02.com.mikrotik:$VOL
SUB=$NVMET/subsystems/$NQN
SENTINEL=nqn.2000-02.com.mikrotik:rds-csi-no-host
# A host that holds nothing (its own UUID form, as a stray node would present).
HC=nqn.2014-08.org.nvmexpress:uuid:0c0c0c0c-0000-4000-8000-00000000000c
mkdir -p $LOGS $OUT
# SIM_EXTRA=--nvmet-allow-change-drops: rds-sim drops every connected controller of an export
# whose list changes (worst case of an unverified RouterOS detail).
case "${SIM_EXTRA:-}" in *--nvmet-allow-change-drops*) DROPS=1 ;; *) DROPS=0 ;; esac

P=0
F=0
. /checks.sh
allowed() { ls "$SUB/allowed_hosts" 2> /dev/null | sort | tr '\n' ' ' | sed 's/ $//'; }
closed() { [ "$(cat $SUB/attr_allow_any_host 2> /dev/null)" = 0 ]; }
# Controllers connected to $NQN with host NQN $1.
ctrls_as() {
  for c in /sys/class/nvme/nvme*; do
    [ -e "$c/subsysnqn" ] || continue
    [ "$(cat "$c/subsysnqn")" = "$NQN" ] && [ "$(cat "$c/hostnqn" 2> /dev/null)" = "$1" ] && basename "$c"
  done
}
hostid_of() { echo "${1##*uuid:}"; }
# connect_as <host nqn>: a fabrics connect with that identity (own host id), no retries,
# written straight to /dev/nvme-fabrics as nvme-cli does: nvme-cli (2.4) refuses a second
# connection to the same subsystem and address by itself ("already connected"), whatever the
# host NQN, which would hide what the kernel target decides.
connect_as() {
  printf 'transport=tcp,traddr=127.0.0.1,trsvcid=4420,nqn=%s,hostnqn=%s,hostid=%s,ctrl_loss_tmo=0,duplicate_connect' \
    "$NQN" "$1" "$(hostid_of "$1")" 2> "$OUT/connect.out" > /dev/nvme-fabrics
}
# refused_as <host nqn>: the connect fails, no controller appears, and the kernel target
# logged the refusal (not nvme-cli refusing a duplicate on its own).
refused_as() {
  connect_as "$1" && return 1
  info "connect as ${1##*:} refused: $(tr '\n' ' ' < $OUT/connect.out | cut -c1-120)"
  [ -z "$(ctrls_as "$1")" ] && dmesg | grep -q "connect by host $1 for subsystem $NQN not allowed"
}
connected_as() { [ -n "$(ctrls_as "$1")" ]; }
no_ctrl_as() { [ -z "$(ctrls_as "$1")" ]; }
disconnect_as() { for c in $(ctrls_as "$1"); do nvme disconnect -d "$c" > /dev/null 2>&1; done; }
# The namespace block device (head) of controller $1: the nvme-subsystem holding it lists it.
dev_of_ctrl() {
  for s in /sys/class/nvme-subsystem/nvme-subsys*; do
    [ -e "$s/$1" ] || continue
    for n in "$s"/nvme*n*; do
      b=$(basename "$n")
      case $b in *c*) continue ;; esac
      [ -e "/dev/$b" ] && { echo "$b"; return 0; }
    done
  done
  return 1
}
rw_as() { # write a marker through $1's connection, read it back (O_DIRECT)
  c=$(ctrls_as "$1" | head -n1)
  d=$(dev_of_ctrl "$c") || return 1
  printf 'fence-%s' "$2" | dd of=/dev/$d bs=4096 conv=sync oflag=direct 2> /dev/null || return 1
  dd if=/dev/$d bs=4096 count=1 iflag=direct 2> /dev/null | grep -q "fence-$2"
}

step "start the stack (storage fencing on)"
mkdir -p $R/keys $R/sim $R/attachments
cp /host/keys/* $R/keys/ && chmod 600 $R/keys/*
export NO_COLOR=1 RUST_LOG=${RUST_LOG:-info}
start() {
  svc=$1
  shift
  "$BIN/$svc" "$@" > "$LOGS/$svc.log" 2>&1 &
  PIDS="$! $PIDS"
}
start rds-sim --listen 127.0.0.1:2223 --state-dir $R/sim --authorized-keys $R/keys/admin.pub \
  --host-key $R/keys/host_key --local-mode --nvmet-export ${SIM_EXTRA:-}
start event-service --listen unix://$R/events.sock --sink file:$R/events.jsonl --metrics-address "" --instance vm
start attachment-service --listen unix://$R/attachment.sock --mode local --state-dir $R/attachments \
  --events-endpoint unix://$R/events.sock --known-nodes node-a,node-b --metrics-address "" \
  --storage-fencing true --agent-endpoint unix://$R/agent.sock --cluster-id vm-cluster \
  --agent-deadline 60s --reconcile-interval 3s
wait_for 30 sh -c "netstat -ltn 2> /dev/null | grep -q ' 127.0.0.1:2223 '"
start rds-agent --rds-address 127.0.0.1 --rds-port 2223 --rds-user admin \
  --rds-key-file $R/keys/admin --rds-host-key $R/keys/host_key.pub \
  --listen unix://$R/agent.sock --metrics-address "" --connect-timeout 30s --command-timeout 30s
start csi-frontend --endpoint $CSI --role controller --rds-address 127.0.0.1 \
  --agent-endpoint unix://$R/agent.sock --attachment-endpoint unix://$R/attachment.sock \
  --event-endpoint unix://$R/events.sock --known-node node-a --known-node node-b
n=90
while [ $n -gt 0 ] && ! probe_ok; do sleep 1; n=$((n - 1)); done
check "stack up (CSI Probe ready)" probe_ok

step "CreateVolume $VOL (raw block, RWX): closed before any publish"
check "CreateVolume $VOL" ctl create volume create $VOL --size 64Mi --block --access-mode multi-node-multi-writer --json
cp $OUT/create.out $R/v.json
check "subsystem exported" wait_for 20 test -d "$SUB"
check "unattached volume admits only the sentinel (reconciler closes it)" \
  wait_for 30 sh -c "[ \"\$(ls $SUB/allowed_hosts 2> /dev/null)\" = $SENTINEL ] && [ \"\$(cat $SUB/attr_allow_any_host)\" = 0 ]"
check "host C refused by the kernel target before any publish" refused_as "$HC"

step "ControllerPublish -> node-a"
check "ControllerPublish $VOL -> node-a" ctl pub-a controller publish $VOL --node node-a --block \
  --access-mode multi-node-multi-writer --context-from $R/v.json
HA=$(allowed)
info "allow list after publish to node-a: $HA (attr_allow_any_host=$(cat $SUB/attr_allow_any_host))"
check "allow list = one derived host NQN" sh -c "echo '$HA' | grep -qx 'nqn.2014-08.org.nvmexpress:uuid:[0-9a-f-]*'"
check "subsystem closed (attr_allow_any_host=0)" closed
check "node-a identity connects" connect_as "$HA"
check "node-a reads and writes" rw_as "$HA" a1
check "host C (holds nothing) refused by the kernel target while node-a is attached" refused_as "$HC"

step "migration window: ControllerPublish -> node-b too"
check "ControllerPublish $VOL -> node-b (migration)" ctl pub-b controller publish $VOL --node node-b --block \
  --access-mode multi-node-multi-writer --context-from $R/v.json
BOTH=$(allowed)
HB=$(echo "$BOTH" | tr ' ' '\n' | grep -vx "$HA")
info "allow list during migration: $BOTH"
check "allow list holds both nodes" test "$(echo "$BOTH" | wc -w)" = 2
check "node-b identity connects during the window" connect_as "$HB"
if [ $DROPS = 1 ]; then
  # Adding node-b changed the list: every connected controller goes, node-a's included.
  check "change-drops mode: node-a's controller dropped when node-b was added" wait_for 30 no_ctrl_as "$HA"
  check "change-drops mode: node-a (still allowed) reconnects" connect_as "$HA"
else
  check "node-a still connected" connected_as "$HA"
fi
check "node-b reads and writes" rw_as "$HB" b1

step "ControllerUnpublish node-a"
check "ControllerUnpublish $VOL from node-a" ctl unpub-a controller unpublish $VOL --node node-a
check "allow list = node-b only" test "$(allowed)" = "$HB"
case $DROPS in
1)
  # rds-sim told to drop connected controllers on a list change (unlink/relink from the port).
  check "change-drops mode: node-a's existing controller is dropped" wait_for 30 no_ctrl_as "$HA"
  wait_for 30 no_ctrl_as "$HB"
  info "change-drops mode: node-b's controller after the change: $(ctrls_as "$HB" | wc -w) left"
  check "change-drops mode: node-b (still allowed) reconnects" connect_as "$HB"
  ;;
*)
  if connected_as "$HA" && rw_as "$HA" a2; then
    info "node-a's EXISTING connection survives the allow-list change (the kernel target checks the host at connect only); I/O through it still works"
  else
    info "node-a's existing connection was dropped or fails I/O after the change"
  fi
  ;;
esac
disconnect_as "$HA"
check "node-a disconnected" sh -c "[ -z \"\$(for c in /sys/class/nvme/nvme*; do [ \"\$(cat \$c/hostnqn 2>/dev/null)\" = '$HA' ] && echo x; done)\" ]"
check "node-a cannot reconnect after unpublish (kernel target refuses)" refused_as "$HA"
check "node-b unaffected" rw_as "$HB" b2

step "tear down"
disconnect_as "$HB"
check "ControllerUnpublish node-b" ctl unpub-b controller unpublish $VOL --node node-b
check "back to the sentinel" test "$(allowed)" = "$SENTINEL"
check "DeleteVolume" ctl del volume delete $VOL
dmesg | grep -i nvmet | tail -n 20 | sed 's/^/INFO dmesg: /'
cp $LOGS/*.log /host/out/ 2> /dev/null
for pid in $PIDS; do kill "$pid" 2> /dev/null; done
echo "fence: $P passed, $F failed"
[ "$F" = 0 ]
