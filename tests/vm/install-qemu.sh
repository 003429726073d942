#!/bin/bash
# Install qemu-system-x86 (TCG is all we use) unless qemu-system-x86_64 is already there.
# These machines ship qemu-utils (qemu-img) from bookworm-backports; bookworm's own
# qemu-system-x86 (7.2) would make apt REMOVE it. So when qemu-utils is the ~bpo12 build,
# qemu-system-x86 comes from bookworm-backports too, through a throw-away apt source list
# under $WORK (nothing is written to /etc/apt). Logs go to $WORK/apt-*.log.
set -euo pipefail
WORK=${WORK:-/tmp/rds-vm}
mkdir -p "$WORK"
if command -v qemu-system-x86_64 > /dev/null; then
  echo "qemu: $(qemu-system-x86_64 --version | head -1) (already installed)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
if dpkg-query -W -f='${Version}' qemu-utils 2> /dev/null | grep -q 'bpo12'; then
  A=$WORK/apt-bpo
  mkdir -p "$A/parts" "$A/lists/partial"
  cp /etc/apt/sources.list.d/*.sources "$A/parts/" 2> /dev/null || true
  [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$A/parts/main.list"
  # The machine's own Debian mirror, with the backports suite added.
  MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2> /dev/null || true)
  [ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2> /dev/null || true)
  [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
  echo "deb $MIRROR bookworm-backports main" > "$A/parts/backports.list"
  APTO=(-o Dir::Etc::sourcelist=/dev/null -o Dir::Etc::sourceparts="$A/parts" -o Dir::State::Lists="$A/lists")
  timeout 600 $SUDO apt-get "${APTO[@]}" update -q > "$WORK/apt-update-bpo.log" 2>&1 ||
    { tail -20 "$WORK/apt-update-bpo.log"; exit 1; }
  timeout 600 $SUDO apt-get "${APTO[@]}" install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86 \
    > "$WORK/apt-install.log" 2>&1 || { tail -30 "$WORK/apt-install.log"; exit 1; }
else
  timeout 600 $SUDO apt-get update -q > "$WORK/apt-update.log" 2>&1 || { tail -20 "$WORK/apt-update.log"; exit 1; }
  timeout 600 $SUDO apt-get install -y -q --no-install-recommends qemu-system-x86 > "$WORK/apt-install.log" 2>&1 ||
    { tail -30 "$WORK/apt-install.log"; exit 1; }
fi
# Never let this install remove anything (qemu-utils above all).
if grep -q '^Remv\|^Removing ' "$WORK/apt-install.log"; then
  echo "qemu install removed packages:" >&2
  grep '^Remv\|^Removing ' "$WORK/apt-install.log" >&2
  exit 1
fi
echo "qemu: $(qemu-system-x86_64 --version | head -1) (installed)"
