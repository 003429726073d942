#!/bin/sh
# The NVMe/TCP end-to-end scenario, run inside the VM by /init.
#
# The whole stack runs here as separate processes, started with their own flags: rds-sim
# exporting its disks into the kernel target (nvmet over configfs, 127.0.0.1:4420),
# event-service, attachment-service, rds-agent (real SSH to the sim) and csi-frontend with the
# controller and node roles on one socket, node role on the NVMe/TCP data plane. Every volume
# operation goes through CSI (rdsctl's CSI client); the checks look at the kernel directly
# (sysfs, /proc/self/mountinfo, configfs, blkid).
#
# Output: one "PASS <check>" / "FAIL <check>" line per check, "INFO ..." lines with numbers,
# and a final "N passed, N failed". Exit status 0 only when nothing failed.

BIN=/host/bin
R=/run/rds
LOGS=$R/logs
OUT=$R/out
NODE=vmnode
CSI=unix://$R/csi.sock
NVMET=/sys/kernel/config/nvmet
PREFIX=nqn.2000-02.com.mikrotik
KUBELET=/var/lib/kubelet
VOL_A=pvc-vm-a
VOL_B=pvc-vm-b
NQN_A=$PREFIX:$VOL_A
NQN_B=$PREFIX:$VOL_B
STAGE_A=$KUBELET/plugins/kubernetes.io/csi/rds.csi.srvlab.io/a/globalmount
TARGET_A=$KUBELET/pods/pod-a/volumes/kubernetes.io~csi/$VOL_A/mount
STAGE_B=$KUBELET/plugins/kubernetes.io/csi/volumeDevices/staging/$VOL_B
TARGET_B=$KUBELET/plugins/kubernetes.io/csi/volumeDevices/publish/$VOL_B/pod-b
mkdir -p $LOGS $OUT

P=0
F=0
# pass/fail/check/step/info, ctl, wait_for, probe_ok (shared with fence.sh).
. /checks.sh

# --- kernel-side views ---------------------------------------------------------------------
# Controllers (nvmeX) connected to NQN $1.
ctrls_of() {
  for c in /sys/class/nvme/nvme*; do
    [ -e "$c/subsysnqn" ] || continue
    [ "$(cat "$c/subsysnqn")" = "$1" ] && basename "$c"
  done
}
# The block device (nvmeXnY, the namespace head) of NQN $1, found through sysfs.
dev_of() {
  for s in /sys/class/nvme-subsystem/nvme-subsys*; do
    [ "$(cat "$s/subsysnqn" 2> /dev/null)" = "$1" ] || continue
    for n in "$s"/nvme*n*; do
      b=$(basename "$n")
      case $b in *c*) continue ;; esac
      [ -e "/sys/class/block/$b/dev" ] && { echo "$b"; return 0; }
    done
  done
  return 1
}
devnum() { cat "/sys/class/block/$1/dev" 2> /dev/null; }
# major:minor of what is mounted on top at path $1.
mounted_dev() { awk -v p="$1" '$5 == p { d = $3 } END { print d }' /proc/self/mountinfo; }
is_mounted() { [ -n "$(mounted_dev "$1")" ]; }
fs_uuid() { blkid -p -o value -s UUID "/dev/$1" 2> /dev/null; }
format_count() { grep -c 'FORMAT:' $LOGS/csi-frontend.log; }
listening() { netstat -ltn 2> /dev/null | grep -q " 127.0.0.1:$1 .*LISTEN"; }
no_ctrl() { [ -z "$(ctrls_of "$1")" ]; }
rate() { awk -v mb="$1" -v t0="$2" -v t1="$3" 'BEGIN { d = t1 - t0; if (d <= 0) d = 0.01; printf "%.1f MiB/s (%d MiB in %.2f s)", mb / d, mb, d }'; }

# Storage fencing first (guest/fence.sh, its own stack; leaves the kernel target empty).
[ -x /fence.sh ] && { /fence.sh || F=$((F + 1)); }

# --- 0. the stack ----------------------------------------------------------------------------
step "start the stack"
mkdir -p $R/keys $R/sim $R/attachments $R/node
cp /host/keys/* $R/keys/ && chmod 600 $R/keys/*
export NO_COLOR=1 RUST_LOG=${RUST_LOG:-info}
start() { # start <service> <args...>: in the background, log in $LOGS/<service>.log
  svc=$1
  shift
  "$BIN/$svc" "$@" > "$LOGS/$svc.log" 2>&1 &
  eval "PID_$(echo "$svc" | tr - _)=$!"
}
start rds-sim --listen 127.0.0.1:2222 --state-dir $R/sim --authorized-keys $R/keys/admin.pub \
  --host-key $R/keys/host_key --local-mode --nvmet-export
start event-service --listen unix://$R/events.sock --sink file:$R/events.jsonl \
  --metrics-address "" --instance $NODE
start attachment-service --listen unix://$R/attachment.sock --mode local \
  --state-dir $R/attachments --events-endpoint unix://$R/events.sock --known-nodes $NODE \
  --metrics-address ""
wait_for 30 listening 2222
# Under TCG the first SSH handshake of a debug build takes about 5 s, the agent's default
# connect timeout: give the emulated machine room.
start rds-agent --rds-address 127.0.0.1 --rds-port 2222 --rds-user admin \
  --rds-key-file $R/keys/admin --rds-host-key $R/keys/host_key.pub \
  --listen unix://$R/agent.sock --metrics-address "" \
  --connect-timeout 30s --command-timeout 30s
start csi-frontend --endpoint $CSI --role all --node-id $NODE --rds-address 127.0.0.1 \
  --agent-endpoint unix://$R/agent.sock --attachment-endpoint unix://$R/attachment.sock \
  --event-endpoint unix://$R/events.sock --data-plane nvme --node-state-dir $R/node
T_STACK0=$(uptime_s)
# One probe a second: each rdsctl start costs the single vCPU the services are starting on.
n=90
up=0
while [ $n -gt 0 ]; do
  probe_ok && { up=1; break; }
  sleep 1
  n=$((n - 1))
done
if [ $up = 1 ]; then
  pass "stack up: 5 services, CSI Probe ready ($(awk -v a="$T_STACK0" -v b="$(uptime_s)" 'BEGIN{printf "%.1f", b-a}') s)"
else
  fail "stack up"
  cat $OUT/info.out
  for f in $LOGS/*.log; do
    echo "--- $f"
    tail -n 15 "$f"
  done
  echo "$P passed, $F failed"
  exit 1
fi

# --- 1. CreateVolume -> the sim exports it through the kernel target --------------------------
step "CreateVolume $VOL_A"
check "CreateVolume $VOL_A (256 MiB, ext4)" ctl create-a volume create $VOL_A --size 256Mi --pvc vm/data-a --json
cp $OUT/create-a.out $R/a.json
check "volume_context carries nqn $NQN_A" grep -q "\"nqn\": *\"$NQN_A\"" $R/a.json
SUB_A=$NVMET/subsystems/$NQN_A
FILE_A=$R/sim/files/storage-pool/metal-csi/$VOL_A.img
check "nvmet subsystem $NQN_A exported by rds-sim" test "$(cat $SUB_A/attr_model 2> /dev/null)" = rds-sim
check "namespace 1 = the sim's backing file, enabled" \
  test "$(cat $SUB_A/namespaces/1/device_path 2> /dev/null):$(cat $SUB_A/namespaces/1/enable 2> /dev/null)" = "$FILE_A:1"
check "port 4420 has the subsystem linked" test -L $NVMET/ports/4420/subsystems/$NQN_A
check "kernel target listening on 127.0.0.1:4420" listening 4420

# --- 2. ControllerPublish, NodeStage (nvme connect + mkfs), NodePublish, write ----------------
step "ControllerPublish + NodeStage + NodePublish $VOL_A"
check "ControllerPublish $VOL_A -> $NODE" ctl cpub-a controller publish $VOL_A --node $NODE --context-from $R/a.json
check "NodeStage $VOL_A (nvme connect, blkid, mkfs.ext4, mount)" \
  ctl stage-a node stage $VOL_A --staging-path $STAGE_A --context-from $R/a.json
CTRL_A=$(ctrls_of $NQN_A)
DEV_A=$(dev_of $NQN_A)
info "volume A: controller=$CTRL_A device=$DEV_A ($(devnum "$DEV_A"))"
check "one controller connected to $NQN_A" test "$(echo $CTRL_A | wc -w)" = 1
check "controller transport is tcp to 127.0.0.1:4420" \
  grep -q 'traddr=127.0.0.1,trsvcid=4420' /sys/class/nvme/$CTRL_A/address
check "transport tcp" test "$(cat /sys/class/nvme/$CTRL_A/transport 2> /dev/null)" = tcp
check "ctrl-loss-tmo -1 (reconnect forever)" test "$(cat /sys/class/nvme/$CTRL_A/ctrl_loss_tmo 2> /dev/null)" = off
check "device found by NQN in sysfs is mounted at the staging path" \
  test -n "$DEV_A" -a "$(mounted_dev $STAGE_A)" = "$(devnum "$DEV_A")"
UUID_A=$(fs_uuid "$DEV_A")
info "volume A filesystem UUID $UUID_A"
check "blkid: ext4 on $DEV_A" test "$(blkid -p -o value -s TYPE /dev/$DEV_A 2> /dev/null)" = ext4
check "formatted exactly once (FORMAT audit lines: 1)" test "$(format_count)" = 1
check "NodePublish $VOL_A (bind mount)" \
  ctl pub-a node publish $VOL_A --staging-path $STAGE_A --target-path $TARGET_A --context-from $R/a.json
check "target mounted from the same device" test "$(mounted_dev $TARGET_A)" = "$(devnum "$DEV_A")"

step "write data through the filesystem"
# Checked data: 4 MiB of random bytes (md5). Throughput: 64 MiB of zeros, timed separately
# (generating and hashing large random data costs seconds under TCG and would distort it).
dd if=/dev/urandom of=/tmp/src bs=1M count=4 2> /dev/null
SUM=$(md5sum /tmp/src | cut -d' ' -f1)
sum_of() { md5sum "$1" 2> /dev/null | cut -d' ' -f1; }
echo "hello over nvme/tcp" > $TARGET_A/hello
cp /tmp/src $TARGET_A/blob
T0=$(uptime_s)
dd if=/dev/zero of=$TARGET_A/zeros bs=1M count=64 conv=fsync 2> /dev/null
T1=$(uptime_s)
sync
echo 3 > /proc/sys/vm/drop_caches
T2=$(uptime_s)
dd if=$TARGET_A/zeros of=/dev/null bs=1M 2> /dev/null
T3=$(uptime_s)
check "wrote a small file + 4 MiB random, read back after dropping caches" \
  test "$(sum_of $TARGET_A/blob)" = "$SUM" -a "$(cat $TARGET_A/hello)" = "hello over nvme/tcp"
info "throughput ext4 over NVMe/TCP (1 MiB blocks): write+fsync $(rate 64 "$T0" "$T1"), cold read $(rate 64 "$T2" "$T3")"

# --- 3. forced disconnect under the mounted filesystem, reconnect, recovery -------------------
# The controller is deleted while the filesystem is mounted. The kernel keeps the dead
# instances (controller, namespace head) pinned as long as that mount exists, so the
# reconnected controller and its block device come back under new names.
step "forced disconnect of $CTRL_A"
FIRST_CTRL=$CTRL_A
FIRST_DEV=$DEV_A
OLD_NUM=$(devnum "$DEV_A")
sync
echo 1 > /sys/class/nvme/$FIRST_CTRL/delete_controller
check "controller $FIRST_CTRL deleted (no controller for $NQN_A)" wait_for 20 no_ctrl $NQN_A
check "staging mount still on the dead device ($OLD_NUM)" test "$(mounted_dev $STAGE_A)" = "$OLD_NUM"

step "reconnect $VOL_A outside CSI (as a reconnect after a lost controller would)"
nvme connect -t tcp -a 127.0.0.1 -s 4420 -n $NQN_A --ctrl-loss-tmo=-1 > $OUT/reconnect.out 2>&1
check "nvme connect $NQN_A" wait_for 20 dev_of $NQN_A > /dev/null
NEW_CTRL=$(ctrls_of $NQN_A)
NEW_DEV=$(dev_of $NQN_A)
NEW_NUM=$(devnum "$NEW_DEV")
info "volume A now: controller=$NEW_CTRL device=$NEW_DEV ($NEW_NUM); before: $FIRST_CTRL $FIRST_DEV ($OLD_NUM)"
check "renumbered: controller $FIRST_CTRL -> $NEW_CTRL" test -n "$NEW_CTRL" -a "$NEW_CTRL" != "$FIRST_CTRL"
check "renumbered: device $FIRST_DEV ($OLD_NUM) -> $NEW_DEV ($NEW_NUM)" \
  test -n "$NEW_NUM" -a "$NEW_DEV" != "$FIRST_DEV" -a "$NEW_NUM" != "$OLD_NUM"
check "staging mount is stale (still the dead device)" test "$(mounted_dev $STAGE_A)" = "$OLD_NUM"

step "recovery through CSI (NodePublish re-resolves the device by NQN)"
check "NodePublish $VOL_A again (stale mount recovered)" \
  ctl repub-a node publish $VOL_A --staging-path $STAGE_A --target-path $TARGET_A --context-from $R/a.json
check "staging path now mounted from $NEW_DEV" test "$(mounted_dev $STAGE_A)" = "$NEW_NUM"
check "target now mounted from $NEW_DEV" test "$(mounted_dev $TARGET_A)" = "$NEW_NUM"
check "same filesystem (UUID $UUID_A), never reformatted" test "$(fs_uuid "$NEW_DEV")" = "$UUID_A"
check "no second FORMAT (audit lines: 1)" test "$(format_count)" = 1
check "data intact: small file" test "$(cat $TARGET_A/hello 2> /dev/null)" = "hello over nvme/tcp"
check "data intact: 4 MiB random (md5)" test "$(sum_of $TARGET_A/blob)" = "$SUM"
check "StaleMountDetected event posted" grep -q '"reason":"StaleMountDetected"' $R/events.jsonl

# --- 4. unpublish, unstage (disconnect); another subsystem takes the old names; restage ------
step "NodeUnpublish + NodeUnstage $VOL_A"
check "NodeUnpublish $VOL_A" ctl unpub-a node unpublish $VOL_A --target-path $TARGET_A
check "target unmounted and removed" test ! -e $TARGET_A
check "NodeUnstage $VOL_A" ctl unstage-a node unstage $VOL_A --staging-path $STAGE_A
check "staging path unmounted" sh -c "! grep -q ' $STAGE_A ' /proc/self/mountinfo"
check "subsystem disconnected (no controller for $NQN_A)" wait_for 10 no_ctrl $NQN_A

step "renumbering: another volume is connected and takes the old names"
check "CreateVolume $VOL_B (128 MiB, raw block)" ctl create-b volume create $VOL_B --size 128Mi --block --json
cp $OUT/create-b.out $R/b.json
check "ControllerPublish $VOL_B" ctl cpub-b controller publish $VOL_B --node $NODE --block --context-from $R/b.json
check "NodeStage $VOL_B (block: connect only)" \
  ctl stage-b node stage $VOL_B --staging-path $STAGE_B --block --context-from $R/b.json
CTRL_B=$(ctrls_of $NQN_B)
DEV_B=$(dev_of $NQN_B)
info "volume B: controller=$CTRL_B device=$DEV_B ($(devnum "$DEV_B"))"
check "nothing was created at the block staging path" test ! -e $STAGE_B
check "$VOL_A's first controller name $FIRST_CTRL now serves $VOL_B" test "$CTRL_B" = "$FIRST_CTRL"
check "$VOL_A's first device name /dev/$FIRST_DEV is now $VOL_B" test "$DEV_B" = "$FIRST_DEV"

step "restage $VOL_A"
check "NodeStage $VOL_A again" ctl restage-a node stage $VOL_A --staging-path $STAGE_A --context-from $R/a.json
RE_CTRL=$(ctrls_of $NQN_A)
RE_DEV=$(dev_of $NQN_A)
info "volume A restaged: controller=$RE_CTRL device=$RE_DEV ($(devnum "$RE_DEV"))"
check "found under a new name ($RE_DEV), not its old /dev/$FIRST_DEV" \
  test -n "$RE_DEV" -a "$RE_DEV" != "$FIRST_DEV" -a "$(mounted_dev $STAGE_A)" = "$(devnum "$RE_DEV")"
check "same filesystem (UUID $UUID_A), no FORMAT" test "$(fs_uuid "$RE_DEV")" = "$UUID_A" -a "$(format_count)" = 1
check "$VOL_B untouched: still no filesystem on /dev/$DEV_B" test -z "$(blkid -p -o value -s TYPE /dev/$DEV_B 2> /dev/null)"
check "NodePublish $VOL_A" ctl pub-a2 node publish $VOL_A --staging-path $STAGE_A --target-path $TARGET_A --context-from $R/a.json
check "data still there after restage (md5)" test "$(sum_of $TARGET_A/blob)" = "$SUM"

# --- 5. raw block publish ----------------------------------------------------------------
step "raw block publish $VOL_B"
check "NodePublish $VOL_B (raw block)" \
  ctl pub-b node publish $VOL_B --staging-path $STAGE_B --target-path $TARGET_B --block --context-from $R/b.json
B_NUM=$(devnum "$DEV_B")
TB_NUM=$(stat -c '%t:%T' $TARGET_B 2> /dev/null | awk -F: '{ printf "%d:%d", "0x" $1, "0x" $2 }')
check "target is a block device node (mknod, not a bind mount)" test -b $TARGET_B
check "target node is $DEV_B ($B_NUM)" test "$TB_NUM" = "$B_NUM"
check "target is not a mount point" sh -c "! grep -q ' $TARGET_B ' /proc/self/mountinfo"
T0=$(uptime_s)
dd if=/dev/zero of=$TARGET_B bs=1M count=64 oflag=direct 2> /dev/null
T1=$(uptime_s)
dd if=$TARGET_B of=/dev/null bs=1M count=64 iflag=direct 2> /dev/null
T2=$(uptime_s)
info "throughput raw block over NVMe/TCP (O_DIRECT, 1 MiB blocks): write $(rate 64 "$T0" "$T1"), read $(rate 64 "$T1" "$T2")"
dd if=/tmp/src of=$TARGET_B bs=1M seek=8 oflag=direct 2> /dev/null
check "raw block: 4 MiB written at 8 MiB read back (O_DIRECT, md5)" \
  test "$(dd if=$TARGET_B bs=1M skip=8 count=4 iflag=direct 2> /dev/null | md5sum | cut -d' ' -f1)" = "$SUM"
check "written through the target into the sim's backing file" \
  test "$(dd if=$R/sim/files/storage-pool/metal-csi/$VOL_B.img bs=1M skip=8 count=4 2> /dev/null | md5sum | cut -d' ' -f1)" = "$SUM"

# --- 6. tear down and delete ------------------------------------------------------------
step "tear down and DeleteVolume"
check "NodeUnpublish $VOL_B" ctl unpub-b node unpublish $VOL_B --target-path $TARGET_B
check "block target node removed" test ! -e $TARGET_B
check "NodeUnstage $VOL_B (disconnect)" ctl unstage-b node unstage $VOL_B --staging-path $STAGE_B
check "no controller for $NQN_B" wait_for 10 no_ctrl $NQN_B
check "NodeUnpublish $VOL_A" ctl unpub-a2 node unpublish $VOL_A --target-path $TARGET_A
check "NodeUnstage $VOL_A" ctl unstage-a2 node unstage $VOL_A --staging-path $STAGE_A
check "no controller for $NQN_A" wait_for 10 no_ctrl $NQN_A
check "ControllerUnpublish $VOL_A" ctl cunpub-a controller unpublish $VOL_A --node $NODE
check "ControllerUnpublish $VOL_B" ctl cunpub-b controller unpublish $VOL_B --node $NODE
check "DeleteVolume $VOL_A" ctl delete-a volume delete $VOL_A
check "DeleteVolume $VOL_B" ctl delete-b volume delete $VOL_B
check "subsystems withdrawn from the kernel target" test ! -e $SUB_A -a ! -e $NVMET/subsystems/$NQN_B
check "port 4420 withdrawn, nothing listening" sh -c "test ! -e $NVMET/ports/4420 && ! netstat -ltn | grep -q ':4420 '"
check "backing files deleted" test ! -e $FILE_A -a ! -e $R/sim/files/storage-pool/metal-csi/$VOL_B.img
check "ListVolumes empty" sh -c "$BIN/rdsctl volume list --json --endpoint $CSI > $OUT/list.out 2>&1 && grep -q '^\[\]' $OUT/list.out"

# --- 7. node data safety: never pull a device from a live consumer, never format data -------
VOL_C=pvc-vm-c
VOL_D=pvc-vm-d
VOL_E=pvc-vm-e
VOL_X=pvc-vm-x
NQN_C=$PREFIX:$VOL_C
NQN_D=$PREFIX:$VOL_D
STAGE_C=$KUBELET/plugins/kubernetes.io/csi/rds.csi.srvlab.io/c/globalmount
TARGET_C=$KUBELET/pods/pod-c/volumes/kubernetes.io~csi/$VOL_C/mount
STAGE_D=$KUBELET/plugins/kubernetes.io/csi/volumeDevices/staging/$VOL_D
TARGET_D=$KUBELET/plugins/kubernetes.io/csi/volumeDevices/publish/$VOL_D/pod-d
STAGE_E=$KUBELET/plugins/kubernetes.io/csi/rds.csi.srvlab.io/e/globalmount
TARGET_E=$KUBELET/pods/pod-e/volumes/kubernetes.io~csi/$VOL_E/mount
STAGE_X=$KUBELET/plugins/kubernetes.io/csi/rds.csi.srvlab.io/x/globalmount
TARGET_X=$KUBELET/pods/pod-x/volumes/kubernetes.io~csi/$VOL_X/mount
FILES=$R/sim/files/storage-pool/metal-csi
# hold <path>: a process with <path> open on fd 3 (the barrier: its fd 3 exists).
hold() {
  sh -c 'exec 3<"$1"; exec sleep 600' sh "$1" &
  HOLDER=$!
  wait_for 10 test -e /proc/$HOLDER/fd/3
}
release() {
  kill $HOLDER 2> /dev/null
  wait $HOLDER 2> /dev/null
}
refused() { # refused <tag> <needle>: the last call failed naming <needle>
  grep -q "FailedPrecondition\|FAILED_PRECONDITION\|failed precondition" "$OUT/$1.out" && grep -q -- "$2" "$OUT/$1.out"
}
size_kb() { df -k "$1" | awk 'NR==2 { print $2 }'; }
stage_fs() { # stage_fs <tag> <vol> <stage> <target> <json> [fs]
  ctl "$1-cpub" controller publish "$2" --node $NODE --context-from "$5" &&
    ctl "$1-stage" node stage "$2" --staging-path "$3" --fs-type "${6:-ext4}" --context-from "$5" &&
    ctl "$1-pub" node publish "$2" --staging-path "$3" --target-path "$4" --fs-type "${6:-ext4}" --context-from "$5"
}
stage_block() { # stage_block <tag> <vol> <stage> <target> <json>
  ctl "$1-cpub" controller publish "$2" --node $NODE --block --context-from "$5" &&
    ctl "$1-stage" node stage "$2" --staging-path "$3" --block --context-from "$5" &&
    ctl "$1-pub" node publish "$2" --staging-path "$3" --target-path "$4" --block --context-from "$5"
}

step "node safety: a file held open on the filesystem"
check "CreateVolume $VOL_C" ctl create-c volume create $VOL_C --size 256Mi --json
cp $OUT/create-c.out $R/c.json
check "stage + publish $VOL_C" stage_fs c $VOL_C $STAGE_C $TARGET_C $R/c.json
CTRL_C=$(ctrls_of $NQN_C)
HOSTNQN_C=$(cat /sys/class/nvme/$CTRL_C/hostnqn 2> /dev/null)
info "volume C: controller=$CTRL_C host NQN $HOSTNQN_C"
check "nvme connect presented the node's own host NQN (-q), not the image's /etc/nvme/hostnqn" \
  test -n "$HOSTNQN_C" -a "$HOSTNQN_C" != "$(cat /etc/nvme/hostnqn)"
check "host NQN is the derived uuid form" sh -c "echo $HOSTNQN_C | grep -q '^nqn.2014-08.org.nvmexpress:uuid:'"
check "the kernel target saw that host NQN" sh -c "dmesg | grep -q 'for NQN $HOSTNQN_C'"
echo "kept while held" > $TARGET_C/held
sync
hold $STAGE_C/held
check "NodeUnpublish $VOL_C (the file is open through the staging mount)" \
  ctl unpub-c node unpublish $VOL_C --target-path $TARGET_C
ctl unstage-c-held node unstage $VOL_C --staging-path $STAGE_C > /dev/null
check "NodeUnstage $VOL_C refused, naming pid $HOLDER" refused unstage-c-held "pid $HOLDER"
check "still mounted, data intact" test "$(cat $STAGE_C/held 2> /dev/null)" = "kept while held"
check "device still connected" test -n "$(ctrls_of $NQN_C)"
check "VolumeInUse event posted" grep -q 'unstage refused' $R/events.jsonl
release
step "node safety: an extra bind mount"
mkdir -p /mnt/extra
mount -o bind $STAGE_C /mnt/extra
ctl unstage-c-bind node unstage $VOL_C --staging-path $STAGE_C > /dev/null
check "NodeUnstage $VOL_C refused, naming the bind mount /mnt/extra" refused unstage-c-bind /mnt/extra
check "device still connected" test -n "$(ctrls_of $NQN_C)"
umount /mnt/extra
check "released: NodeUnstage $VOL_C" ctl unstage-c node unstage $VOL_C --staging-path $STAGE_C
check "subsystem disconnected (no controller for $NQN_C)" wait_for 10 no_ctrl $NQN_C

step "node safety: raw block held open by a process"
check "CreateVolume $VOL_D (raw block)" ctl create-d volume create $VOL_D --size 64Mi --block --json
cp $OUT/create-d.out $R/d.json
check "stage + publish $VOL_D (raw block)" stage_block d $VOL_D $STAGE_D $TARGET_D $R/d.json
hold $TARGET_D
check "NodeUnpublish $VOL_D" ctl unpub-d node unpublish $VOL_D --target-path $TARGET_D
ctl unstage-d-held node unstage $VOL_D --staging-path $STAGE_D > /dev/null
check "NodeUnstage $VOL_D refused after the bounded wait, naming pid $HOLDER" refused unstage-d-held "pid $HOLDER"
check "device still connected" test -n "$(ctrls_of $NQN_D)"
release
check "released: NodeUnstage $VOL_D" ctl unstage-d node unstage $VOL_D --staging-path $STAGE_D
check "subsystem disconnected (no controller for $NQN_D)" wait_for 10 no_ctrl $NQN_D

step "node safety: ext4 with its primary superblock zeroed"
check "CreateVolume $VOL_E" ctl create-e volume create $VOL_E --size 256Mi --json
cp $OUT/create-e.out $R/e.json
check "stage + publish $VOL_E" stage_fs e $VOL_E $STAGE_E $TARGET_E $R/e.json
echo "survives a lost superblock" > $TARGET_E/precious
sync
check "unpublish + unstage $VOL_E" sh -c "$BIN/rdsctl node unpublish $VOL_E --target-path $TARGET_E --endpoint $CSI > /dev/null 2>&1 && $BIN/rdsctl node unstage $VOL_E --staging-path $STAGE_E --endpoint $CSI > /dev/null 2>&1"
FILE_E=$FILES/$VOL_E.img
LOG_BS=$(od -An -tu4 -j 1048 -N 4 $FILE_E | tr -d ' ')
BS=$((1024 << LOG_BS))
BACKUP=8193 # group 1 starts at block 8193 with 1 KiB blocks, 16384 with 2 KiB, 32768 with 4 KiB
[ $BS = 2048 ] && BACKUP=16384
[ $BS = 4096 ] && BACKUP=32768
info "volume E: ext4 block size $BS, first backup superblock at block $BACKUP"
dd if=/dev/zero of=$FILE_E bs=1024 seek=1 count=1 conv=notrunc 2> /dev/null
FORMATS=$(format_count)
ctl stage-e-broken node stage $VOL_E --staging-path $STAGE_E --context-from $R/e.json > /dev/null
check "NodeStage refuses to format it (first non-zero byte named)" refused stage-e-broken "is non-zero"
check "no FORMAT" test "$(format_count)" = "$FORMATS"
check "FormatRefused event posted" grep -q 'refusing to format' $R/events.jsonl
check "e2fsck -b $BACKUP recovers it" sh -c "e2fsck -f -y -b $BACKUP -B $BS $FILE_E > $OUT/e2fsck.out 2>&1; [ \$? -le 1 ]"
check "NodeStage + NodePublish $VOL_E after the repair" sh -c "$BIN/rdsctl node stage $VOL_E --staging-path $STAGE_E --context-from $R/e.json --endpoint $CSI > /dev/null 2>&1 && $BIN/rdsctl node publish $VOL_E --staging-path $STAGE_E --target-path $TARGET_E --context-from $R/e.json --endpoint $CSI > /dev/null 2>&1"
check "data recovered" test "$(cat $TARGET_E/precious 2> /dev/null)" = "survives a lost superblock"

step "node safety: online ext4 grow through CSI"
BEFORE=$(size_kb $TARGET_E)
check "ControllerExpand $VOL_E to 2Gi" ctl expand-e volume expand $VOL_E --size 2Gi
check "NodeExpand $VOL_E (ns-rescan + resize2fs, mounted)" ctl nexpand-e node expand $VOL_E --path $TARGET_E --staging-path $STAGE_E --size 2Gi
AFTER=$(size_kb $TARGET_E)
info "ext4 $VOL_E: ${BEFORE} KiB -> ${AFTER} KiB"
check "ext4 grew online (df)" test "$AFTER" -gt $((BEFORE + 500000))
check "data still there" test "$(cat $TARGET_E/precious 2> /dev/null)" = "survives a lost superblock"

step "node safety: online xfs grow through CSI"
check "CreateVolume $VOL_X (320 MiB, xfs)" ctl create-x volume create $VOL_X --size 320Mi --fs-type xfs --json
cp $OUT/create-x.out $R/x.json
check "stage + publish $VOL_X (mkfs.xfs)" stage_fs x $VOL_X $STAGE_X $TARGET_X $R/x.json xfs
check "blkid: xfs" test "$(blkid -p -o value -s TYPE /dev/$(dev_of $PREFIX:$VOL_X) 2> /dev/null)" = xfs
echo "xfs data" > $TARGET_X/f
BEFORE=$(size_kb $TARGET_X)
check "ControllerExpand $VOL_X to 2Gi" ctl expand-x volume expand $VOL_X --size 2Gi
check "NodeExpand $VOL_X (xfs_growfs, mounted)" ctl nexpand-x node expand $VOL_X --path $TARGET_X --staging-path $STAGE_X --size 2Gi --fs-type xfs
AFTER=$(size_kb $TARGET_X)
info "xfs $VOL_X: ${BEFORE} KiB -> ${AFTER} KiB"
check "xfs grew online (df)" test "$AFTER" -gt $((BEFORE + 500000))
check "xfs data still there" test "$(cat $TARGET_X/f 2> /dev/null)" = "xfs data"

step "node safety: a restore from an empty snapshot"
check "CreateVolume pvc-vm-f (never staged: its snapshot is all zeros)" ctl create-f volume create pvc-vm-f --size 256Mi --json
check "CreateSnapshot of pvc-vm-f" ctl snap-f snapshot create snap-empty --source pvc-vm-f --json
SNAP=$(sed -n 's/.*"snapshot_id": *"\([^"]*\)".*/\1/p' $OUT/snap-f.out | head -n1)
check "CreateVolume pvc-vm-r from $SNAP" ctl create-r volume create pvc-vm-r --size 256Mi --from-snapshot "$SNAP" --json
cp $OUT/create-r.out $R/r.json
check "volume_context records the source" grep -q "\"contentSource\": *\"snapshot:$SNAP\"" $R/r.json
FORMATS=$(format_count)
ctl cpub-r controller publish pvc-vm-r --node $NODE --context-from $R/r.json > /dev/null
ctl stage-r node stage pvc-vm-r --staging-path $KUBELET/plugins/r/globalmount --context-from $R/r.json > /dev/null
check "NodeStage refuses to format a blank restore, naming the snapshot" refused stage-r "$SNAP"
check "no FORMAT" test "$(format_count)" = "$FORMATS"
check "nothing mounted, nothing left connected" sh -c "! grep -q ' $KUBELET/plugins/r/globalmount ' /proc/self/mountinfo && test -z \"\$(ls /sys/class/nvme-subsystem/*/subsysnqn 2> /dev/null | xargs grep -l pvc-vm-r 2> /dev/null)\""

# --- 8. Btrfs subvolume layout over NVMe/TCP (issue #19) -------------------------------------
# volumeLayout=subvolume: the volume's file is <base>/<id>/volume.img in a subvolume of its own;
# a snapshot is a read-only subvolume <snap>.from-<src>; a restore is a writable snapshot of it
# with a /disk entry adopting its volume.img. The sim's files are on tmpfs here (no reflink: the
# sim copies); what this checks is the data path, not copy-on-write.
VOL_S=pvc-vm-s
VOL_T=pvc-vm-t
STAGE_S=$KUBELET/plugins/kubernetes.io/csi/volumeDevices/staging/$VOL_S
TARGET_S=$KUBELET/plugins/kubernetes.io/csi/volumeDevices/publish/$VOL_S/pod-s
STAGE_T=$KUBELET/plugins/kubernetes.io/csi/volumeDevices/staging/$VOL_T
TARGET_T=$KUBELET/plugins/kubernetes.io/csi/volumeDevices/publish/$VOL_T/pod-t
read16() { dd if="$1" bs=1M count=16 iflag=direct 2> /dev/null | md5sum | cut -d' ' -f1; }
step "subvolume layout: pattern -> snapshot -> overwrite -> restore, over NVMe/TCP"
check "CreateVolume $VOL_S (volumeLayout=subvolume, 128 MiB, raw block)" \
  ctl create-s volume create $VOL_S --size 128Mi --block --param volumeLayout=subvolume --json
cp $OUT/create-s.out $R/s.json
check "volume_context: volumeLayout=subvolume" grep -q '"volumeLayout": *"subvolume"' $R/s.json
check "volume_context: volumePath is <base>/$VOL_S/volume.img" \
  grep -q "\"volumePath\": *\"/storage-pool/metal-csi/$VOL_S/volume.img\"" $R/s.json
check "the sim holds the file in the volume's own subvolume" test -f $FILES/$VOL_S/volume.img
check "stage + publish $VOL_S (raw block over NVMe/TCP)" stage_block s $VOL_S $STAGE_S $TARGET_S $R/s.json
dd if=/dev/urandom of=/tmp/pat bs=1M count=16 2> /dev/null
dd if=/dev/urandom of=/tmp/over bs=1M count=16 2> /dev/null
PAT=$(sum_of /tmp/pat)
OVER=$(sum_of /tmp/over)
dd if=/tmp/pat of=$TARGET_S bs=1M oflag=direct conv=fsync 2> /dev/null
check "16 MiB pattern written through NVMe/TCP reads back (O_DIRECT, md5)" test "$(read16 $TARGET_S)" = "$PAT"
check "CreateSnapshot of $VOL_S" ctl snap-s snapshot create snap-vm-s --source $VOL_S --json
SNAP_S=$(sed -n 's/.*"snapshot_id": *"\([^"]*\)".*/\1/p' $OUT/snap-s.out | head -n1)
info "snapshot of $VOL_S: $SNAP_S"
check "the snapshot subvolume $SNAP_S.from-$VOL_S holds the pattern" \
  test "$(dd if=$FILES/$SNAP_S.from-$VOL_S/volume.img bs=1M count=16 2> /dev/null | md5sum | cut -d' ' -f1)" = "$PAT"
dd if=/tmp/over of=$TARGET_S bs=1M oflag=direct conv=fsync 2> /dev/null
check "$VOL_S overwritten through NVMe/TCP" test "$(read16 $TARGET_S)" = "$OVER"
check "CreateVolume $VOL_T from $SNAP_S (restore, subvolume)" \
  ctl create-t volume create $VOL_T --size 128Mi --block --param volumeLayout=subvolume \
  --from-snapshot "$SNAP_S" --json
cp $OUT/create-t.out $R/t.json
check "stage + publish $VOL_T (raw block over NVMe/TCP)" stage_block t $VOL_T $STAGE_T $TARGET_T $R/t.json
check "the restore reads back the pattern byte for byte over NVMe/TCP (md5)" test "$(read16 $TARGET_T)" = "$PAT"
check "$VOL_S keeps what was written after the snapshot" test "$(read16 $TARGET_S)" = "$OVER"
for v in $VOL_T $VOL_S; do
  if [ $v = $VOL_S ]; then st=$STAGE_S tg=$TARGET_S; else st=$STAGE_T tg=$TARGET_T; fi
  check "unpublish + unstage + ControllerUnpublish $v" sh -c "$BIN/rdsctl node unpublish $v --target-path $tg --endpoint $CSI > /dev/null 2>&1 && $BIN/rdsctl node unstage $v --staging-path $st --endpoint $CSI > /dev/null 2>&1 && $BIN/rdsctl controller unpublish $v --node $NODE --endpoint $CSI > /dev/null 2>&1"
done
check "DeleteVolume $VOL_T" ctl delete-t volume delete $VOL_T
check "DeleteSnapshot $SNAP_S" ctl delete-snap-s snapshot delete "$SNAP_S"
check "DeleteVolume $VOL_S" ctl delete-s volume delete $VOL_S
check "their subvolumes are gone from the sim" \
  test ! -e $FILES/$VOL_S -a ! -e $FILES/$VOL_T -a ! -e $FILES/$SNAP_S.from-$VOL_S
no_ctrl_st() { no_ctrl $PREFIX:$VOL_S && no_ctrl $PREFIX:$VOL_T; }
check "no controller left for $VOL_S or $VOL_T" wait_for 10 no_ctrl_st

alive=""
for svc in rds_sim event_service attachment_service rds_agent csi_frontend; do
  eval "pid=\$PID_$svc"
  kill -0 "$pid" 2> /dev/null || alive="$alive $svc"
done
check "no service died during the scenario${alive:+ (dead:$alive)}" test -z "$alive"
for svc in csi_frontend rds_agent attachment_service event_service rds_sim; do
  eval "kill \$PID_$svc" 2> /dev/null
done

echo "$P passed, $F failed"
[ "$F" = 0 ]
