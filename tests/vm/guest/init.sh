#!/bin/busybox sh
# /init of the test VM (Debian's stock kernel, busybox userland). Loads the NVMe/TCP target
# and initiator modules, mounts configfs and the host share (our binaries at /host/bin, keys
# at /host/keys, results go to /host/out), runs /scenario.sh, prints "RESULT: PASS|FAIL" and
# powers off. Everything the scenario needs runs inside this guest, over 127.0.0.1.
/bin/busybox --install -s # applets in their usual dirs: the kernel calls /sbin/modprobe
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp /host
# The sim's backing files live here (sparse); tmpfs, hence buffered_io on the namespaces.
mount -t tmpfs -o size=75% tmpfs /run
echo "INIT-START uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)"

bad=0
halt() {
  sync
  umount /host 2> /dev/null
  poweroff -f
}

echo /sbin/modprobe > /proc/sys/kernel/modprobe
ip link set lo up
# crc32c: ext4 asks the crypto API for it; 9p: the host share.
for m in configfs nvmet nvmet-tcp nvme-tcp crc32c ext4 xfs virtio_pci 9pnet_virtio 9p; do
  modprobe "$m" || { echo "FAIL modprobe $m"; bad=1; }
done
mount -t configfs none /sys/kernel/config || { echo "FAIL mount configfs"; bad=1; }
# cache=loose: the host does not change the share during the run, and our binaries are large
# (debug builds): each page is read over 9p once, not at every exec.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose hostshare /host ||
  { echo "FAIL mount host share"; bad=1; }
if [ "$bad" = 1 ]; then
  echo "RESULT: FAIL (guest setup)"
  halt
fi

# What a node image would ship (Debian's nvme-cli postinst writes these): the node plugin
# must NOT use it — it passes its own derived host NQN and id (-q/-I); only the scenario's
# reconnect by hand does.
echo "nqn.2014-08.org.nvmexpress:uuid:6f1c0d5e-2b7a-4c1e-9a51-000000000001" > /etc/nvme/hostnqn
echo "6f1c0d5e-2b7a-4c1e-9a51-000000000001" > /etc/nvme/hostid

mkdir -p /host/out
LIMIT=$(sed -n 's/.*scenario_limit=\([0-9]*\).*/\1/p' /proc/cmdline)
# guest_script=/host/x.sh runs another script instead (for debugging the VM by hand).
SCRIPT=$(sed -n 's/.*guest_script=\([^ ]*\).*/\1/p' /proc/cmdline)
timeout "${LIMIT:-400}" "${SCRIPT:-/scenario.sh}" > /run/scenario.out 2>&1 &
SC=$!
# Stream the scenario's output to the console as it comes.
tail -f /run/scenario.out &
TAIL=$!
wait $SC
rc=$?
sleep 1
kill $TAIL 2> /dev/null
[ "$rc" = 143 ] && echo "FAIL scenario timed out after ${LIMIT:-400} s"
cp /run/scenario.out /host/out/scenario.log
cp -r /run/rds/logs /host/out/ 2> /dev/null
cp /run/rds/events.jsonl /host/out/ 2> /dev/null
dmesg > /host/out/dmesg.txt
if [ "$rc" = 0 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL (scenario rc=$rc)"; fi
echo "END uptime=$(cut -d' ' -f1 /proc/uptime)"
halt
