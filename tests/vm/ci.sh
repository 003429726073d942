#!/bin/bash
# Real NVMe/TCP end to end in a VM, for CI: install qemu if missing, make sure our debug
# binaries exist, build the kernel + initramfs, boot, run guest/scenario.sh inside, report.
#
#   bash tests/vm/ci.sh            # WORK=/tmp/rds-vm by default; LIMIT=480 s for the VM
#
# Prints the scenario's PASS/FAIL/INFO lines, a timing line
# (install/build/image/boot/scenario/total) and the closing "N passed, N failed".
# Exit 0 only when the guest printed "RESULT: PASS", nothing failed and qemu exited cleanly
# (a timeout is a failure). Logs: $WORK/{console.log,*.log}, $WORK/share/out/ (service logs,
# events, dmesg from inside the VM).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export WORK=${WORK:-/tmp/rds-vm}
LIMIT=${LIMIT:-480}
BIN_DIR=${BIN_DIR:-$REPO/target/debug}
BINS="rds-sim rds-agent attachment-service event-service csi-frontend rdsctl"
mkdir -p "$WORK"
now() { echo "$EPOCHREALTIME"; }
dt() { echo "$2 - $1" | bc; }
T0=$(now)

# --- install ------------------------------------------------------------------------------------
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
# Fresh package lists: build-image.sh resolves today's kernel package from them.
timeout 600 $SUDO apt-get update -q > "$WORK/apt-update.log" 2>&1 || { tail -20 "$WORK/apt-update.log"; exit 1; }
bash "$HERE/install-qemu.sh"
command -v ssh-keygen > /dev/null || { echo "ssh-keygen (openssh-client) is needed" >&2; exit 1; }
T1=$(now)

# --- our binaries (the test run's debug build; built here only if missing) -------------------
missing=""
for b in $BINS; do [ -x "$BIN_DIR/$b" ] || missing="$missing $b"; done
if [ -n "$missing" ]; then
  echo "building:$missing"
  (cd "$REPO" && cargo build --bins -p rds-sim -p rds-agent -p attachment-service \
    -p event-service -p csi-frontend -p rdsctl) > "$WORK/cargo-build.log" 2>&1 ||
    { tail -30 "$WORK/cargo-build.log"; exit 1; }
fi
T2=$(now)

# --- kernel + initramfs -------------------------------------------------------------------------
BIN_DIR=$BIN_DIR bash "$HERE/build-image.sh" > "$WORK/build-image.log" 2>&1 ||
  { tail -30 "$WORK/build-image.log"; exit 1; }
# The share: binaries (hard links when possible: no copy of ~400 MB), fresh SSH keys, results.
SHARE=$WORK/share
rm -rf "$SHARE"
mkdir -p "$SHARE/bin" "$SHARE/keys" "$SHARE/out"
for b in $BINS; do
  ln "$BIN_DIR/$b" "$SHARE/bin/$b" 2> /dev/null || cp "$BIN_DIR/$b" "$SHARE/bin/$b"
done
ssh-keygen -q -t ed25519 -N '' -C rds-vm-admin -f "$SHARE/keys/admin"
ssh-keygen -q -t ed25519 -N '' -C rds-vm-sim -f "$SHARE/keys/host_key"
T3=$(now)

# --- boot + scenario ----------------------------------------------------------------------------
rc=0
SHARE=$SHARE LIMIT=$LIMIT KAPPEND="scenario_limit=$((LIMIT - 60))" bash "$HERE/run-vm.sh" > "$WORK/vm.log" 2>&1 || rc=$?
T4=$(now)

LOG=$WORK/console.log
strip() { sed -E 's/^\[ *[0-9.]+\] //'; }
grep -E '^\[ *[0-9.]+\] (PASS|FAIL|INFO|RESULT)' "$LOG" | strip || true
# Boot = qemu start to the first line of /init; scenario = from there to power-off.
INIT_AT=$(grep -m1 'INIT-START' "$LOG" | sed -E 's/^\[ *([0-9.]+)\].*/\1/' || true)
END_AT=$(grep -m1 '] END uptime' "$LOG" | sed -E 's/^\[ *([0-9.]+)\].*/\1/' || true)
VM=$(dt "$T3" "$T4")
printf 'timing: install=%.1fs build=%.1fs image=%.1fs boot=%.1fs scenario=%.1fs vm=%.1fs total=%.1fs\n' \
  "$(dt "$T0" "$T1")" "$(dt "$T1" "$T2")" "$(dt "$T2" "$T3")" "${INIT_AT:-0}" \
  "$(dt "${INIT_AT:-0}" "${END_AT:-$VM}")" "$VM" "$(dt "$T0" "$T4")"
P=$(grep -c '^\[ *[0-9.]*\] PASS' "$LOG" || true)
F=$(grep -c '^\[ *[0-9.]*\] FAIL' "$LOG" || true)
[ "$rc" = 0 ] || { echo "FAIL qemu exited with $rc$([ "$rc" = 124 ] && echo " (timeout after ${LIMIT}s)")"; F=$((F + 1)); }
grep -q 'RESULT: PASS' "$LOG" || { echo "FAIL no 'RESULT: PASS' from the guest (console: $LOG)"; F=$((F + 1)); }
[ "$P" -gt 0 ] || F=$((F + 1))
echo "$P passed, $F failed"
if [ "$F" != 0 ]; then
  echo "--- last console lines ($LOG):"
  tail -n 40 "$LOG" | strip
  for f in "$SHARE"/out/logs/csi-frontend.log "$SHARE"/out/logs/rds-sim.log; do
    [ -f "$f" ] && { echo "--- tail $f"; tail -n 20 "$f"; }
  done
  exit 1
fi
