# Shared by scenario.sh and fence.sh (sourced, not run): the PASS/FAIL bookkeeping, step and
# info lines, one rdsctl CSI call, polling, and the CSI Probe. The caller sets P=0 F=0 and
# BIN, CSI, OUT before using them.

pass() {
  P=$((P + 1))
  echo "PASS $*"
}
fail() {
  F=$((F + 1))
  echo "FAIL $*"
}
# check <name> <command...>: PASS when the command succeeds.
check() {
  name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
uptime_s() { cut -d' ' -f1 /proc/uptime; }
step() { echo "STEP t=$(uptime_s) $*"; }
info() { echo "INFO $*"; }

# ctl <tag> <rdsctl args...>: one CSI call; its output is kept in $OUT/<tag>.out and shown
# when it fails.
ctl() {
  tag=$1
  shift
  timeout 120 $BIN/rdsctl "$@" --endpoint "$CSI" --timeout 90s > "$OUT/$tag.out" 2>&1
  rc=$?
  if [ "$rc" != 0 ]; then
    echo "  rdsctl $* -> exit $rc"
    tail -n 8 "$OUT/$tag.out" | sed 's/^/    /'
  fi
  return $rc
}

wait_for() { # wait_for <seconds> <command...>: polls every 0.1 s, then one last try
  n=$(($1 * 10))
  shift
  while [ $n -gt 0 ]; do
    "$@" && return 0
    usleep 100000
    n=$((n - 1))
  done
  "$@"
}

# The plugin answers CSI Probe with ready=true.
probe_ok() { $BIN/rdsctl info --endpoint "$CSI" --timeout 5s > $OUT/info.out 2>&1 && grep -q 'ready: true' $OUT/info.out; }
