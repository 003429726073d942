#!/bin/bash
# Boot the test VM under TCG (KVM does not work on these machines: /dev/kvm is kvm_pvm, which
# cannot run a stock kernel) with $SHARE shared read-write at /host (virtio-9p), and time-stamp
# its serial console. qemu is always bounded by `timeout`.
#
# Env: WORK (default /tmp/rds-vm; holds vmlinux + initramfs.cpio), SHARE (default $WORK/share),
#      LIMIT (seconds, default 480), MEM (MiB, default 1536), KAPPEND (extra kernel args),
#      LOG (default $WORK/console.log).
# Exit: qemu's (124 = timeout); the verdict is in the console log (see ci.sh).
set -uo pipefail
WORK=${WORK:-/tmp/rds-vm}
SHARE=${SHARE:-$WORK/share}
LIMIT=${LIMIT:-480}
MEM=${MEM:-1536}
LOG=${LOG:-$WORK/console.log}
BIOS=/usr/share/qemu/qboot.rom # starts ~0.5 s faster than SeaBIOS under TCG
BIOS_OPTS=()
[ -f "$BIOS" ] && BIOS_OPTS=(-bios "$BIOS")

T0=$EPOCHREALTIME
# -smp 1: with 2 host cores, a second vCPU thread competes with qemu's own threads (slower).
# -nic none: the guest needs no network; everything runs inside it over loopback.
timeout --kill-after=10 "$LIMIT" qemu-system-x86_64 -accel tcg,thread=multi -cpu max "${BIOS_OPTS[@]}" \
  -m "$MEM" -smp 1 -nographic -no-reboot -serial mon:stdio -monitor none -nic none \
  -virtfs "local,path=$SHARE,mount_tag=hostshare,security_model=none,id=hostshare" \
  -kernel "$WORK/vmlinux" -initrd "$WORK/initramfs.cpio" \
  -append "console=ttyS0 panic=-1 quiet loglevel=3 ${KAPPEND:-}" < /dev/null 2>&1 |
  while IFS= read -r line; do
    line=${line%$'\r'}
    printf '[%7.2f] %s\n' "$(echo "$EPOCHREALTIME - $T0" | bc)" "$line"
  done | tee "$LOG"
RC=${PIPESTATUS[0]}
echo "qemu rc=$RC wall=$(echo "$EPOCHREALTIME - $T0" | bc)s log=$LOG"
exit "$RC"
