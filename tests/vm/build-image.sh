#!/bin/bash
# Build the VM: Debian's stock kernel (it has nvme-tcp, nvmet, nvmet-tcp and configfs as
# modules, which this machine's own kernel lacks) and a small initramfs with what the node
# role calls plus the shared libraries of our binaries. Nothing is installed on the host:
# packages are fetched with `apt-get download` and unpacked with `dpkg -x` under $WORK.
#
# Env: WORK (default /tmp/rds-vm), BIN_DIR (our binaries, for their shared libraries;
#      default target/debug of this repo), SKIP_FETCH=1 (reuse $WORK/debs from a previous run).
# Out: $WORK/vmlinux (PVH-bootable ELF), $WORK/initramfs.cpio, $WORK/image.txt (versions).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=${WORK:-/tmp/rds-vm}
BIN_DIR=${BIN_DIR:-$REPO/target/debug}
OUR_BINS="rds-sim rds-agent attachment-service event-service csi-frontend rdsctl"
mkdir -p "$WORK"
cd "$WORK"

# --- 1. fetch .debs ------------------------------------------------------------------------
# linux-image-amd64 is a metapackage: resolve today's real image package (the ABI name changes
# with every Debian security update and old ones leave the archive).
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$KPKG" ] || { echo "cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 1; }
KV=${KPKG#linux-image-}
# busybox: the guest's shell and tools; nvme-cli: connect/disconnect (what the node plane
# runs); e2fsprogs: mkfs.ext4 + resize2fs + e2fsck (the recovery of a lost primary
# superblock); xfsprogs: mkfs.xfs + xfs_growfs (online xfs grow); util-linux: blkid (the node's
# format rule needs its exit codes: 2 = definitively nothing); kmod: depmod for the module tree (host side only);
# libc6 + libgcc-s1: what our Rust binaries link; the rest: libraries of nvme-cli/e2fsprogs.
PKGS="$KPKG busybox-static nvme-cli libnvme1 libjson-c5 e2fsprogs libext2fs2 libcom-err2 \
  xfsprogs libinih1 liburcu8 \
  libss2 util-linux libblkid1 libuuid1 libc6 libgcc-s1 libssl3 zlib1g libdbus-1-3 libsystemd0 \
  libcap2 libgcrypt20 liblzma5 libzstd1 liblz4-1 libgpg-error0 kmod libkmod2"
if [ "${SKIP_FETCH:-0}" != 1 ] || [ ! -d debs ]; then
  rm -rf debs && mkdir debs # never mix versions of two runs
  (cd debs && timeout 600 apt-get download $PKGS 2>&1) | grep -v '^W: Download is performed unsandboxed' || true
fi
for p in $PKGS; do
  ls debs/"${p}"_*.deb > /dev/null 2>&1 || { echo "missing .deb for $p" >&2; exit 1; }
done

# --- 2. unpack into a scratch tree ---------------------------------------------------------
rm -rf root && mkdir root
for d in debs/*.deb; do dpkg -x "$d" root; done
# Boot the uncompressed ELF through its PVH entry (CONFIG_PVH=y): no real-mode setup and no
# in-guest xz decompression, which cost ~5 s under TCG.
python3 - "root/boot/vmlinuz-$KV" "$WORK/vmlinux" << 'PY'
import lzma, sys
d = open(sys.argv[1], 'rb').read()
i = d.find(b'\xfd7zXZ\x00')          # CONFIG_KERNEL_XZ=y on Debian amd64
assert i >= 0, 'no xz stream in bzImage'
open(sys.argv[2], 'wb').write(lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(d[i:]))
PY

# Unpacked binaries run through the unpacked loader: nothing depends on the host's libc or on
# kmod being installed. kmod dispatches on argv[0], hence --argv0.
LDSO=$WORK/root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
LP=$WORK/root/lib/x86_64-linux-gnu:$WORK/root/usr/lib/x86_64-linux-gnu
kmod_as() {
  local name=$1
  shift
  "$LDSO" --library-path "$LP" --argv0 "$name" "$WORK/root/bin/kmod" "$@"
}
kmod_as depmod -b "$WORK/root" "$KV" # the .deb ships no modules.dep (its postinst makes it)

# --- 3. stage the initramfs ----------------------------------------------------------------
S=$WORK/stage
rm -rf "$S"
mkdir -p "$S"/{bin,sbin,usr/bin,usr/sbin,lib/x86_64-linux-gnu,lib64,etc/nvme,proc,sys,dev,tmp,run,mnt,host}
cp root/bin/busybox "$S/bin/busybox"
cp root/usr/sbin/nvme "$S/usr/sbin/nvme"
cp root/sbin/mke2fs root/sbin/resize2fs root/sbin/e2fsck root/sbin/blkid "$S/sbin/"
for fs in ext4 ext3; do ln -sf mke2fs "$S/sbin/mkfs.$fs"; done
# xfsprogs puts them in /sbin or /usr/sbin depending on the release.
for t in mkfs.xfs xfs_growfs; do
  src=$(ls root/sbin/$t root/usr/sbin/$t 2> /dev/null | head -n1 || true)
  [ -n "$src" ] || { echo "xfsprogs has no $t" >&2; exit 1; }
  cp "$src" "$S/sbin/$t"
done

# Shared libraries (ldd through the unpacked loader), always the copy from the unpacked debs:
# the guest runs bookworm's libc, like the host that built our binaries.
copy_libs() {
  "$LDSO" --library-path "$LP" --list "$1" | awk '/=> \//{print $3} /^\t\/lib64/{print $1}' |
    while read -r p; do
      b=$(basename "$p")
      src=""
      for d in root/lib/x86_64-linux-gnu root/usr/lib/x86_64-linux-gnu root/lib64; do
        [ -e "$d/$b" ] && { src="$d/$b"; break; }
      done
      [ -n "$src" ] || { echo "library $b of $1 is in none of the fetched packages" >&2; exit 1; }
      cp -L "$src" "$S/lib/x86_64-linux-gnu/$b"
    done
}
for b in usr/sbin/nvme sbin/mke2fs sbin/resize2fs sbin/e2fsck sbin/blkid sbin/mkfs.xfs sbin/xfs_growfs; do
  copy_libs "$S/$b"
done
for b in $OUR_BINS; do
  [ -x "$BIN_DIR/$b" ] || { echo "missing $BIN_DIR/$b (cargo build --bins)" >&2; exit 1; }
  copy_libs "$BIN_DIR/$b"
done
cp "$LDSO" "$S/lib64/ld-linux-x86-64.so.2"

# Kernel modules: the dependency closure of the target, the initiator, ext4, and virtio-9p
# (our binaries come from the host over a shared folder).
MODS="configfs nvmet nvmet-tcp nvme-tcp crc32c_generic crc32c-intel ext4 xfs virtio_pci 9p 9pnet_virtio"
for m in $MODS; do
  kmod_as modprobe -d "$WORK/root" -S "$KV" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | sort -u | while read -r ko; do
  rel=${ko#"$WORK"/root/}
  mkdir -p "$S/$(dirname "$rel")"
  cp "$ko" "$S/$rel"
done
cp root/lib/modules/"$KV"/modules.{builtin,builtin.modinfo,order} "$S/lib/modules/$KV/"
kmod_as depmod -b "$S" "$KV"

cp "$HERE/guest/init.sh" "$S/init"
cp "$HERE/guest/scenario.sh" "$S/scenario.sh"
cp "$HERE/guest/fence.sh" "$S/fence.sh"
cp "$HERE/guest/checks.sh" "$S/checks.sh"
chmod +x "$S/init" "$S/scenario.sh" "$S/fence.sh"

# busybox cpio: no host cpio needed. Plain (uncompressed) cpio: gunzip costs ~1 s under TCG.
(cd "$S" && find . -print0 | "$WORK/root/bin/busybox" cpio --null -o -H newc 2> /dev/null) > initramfs.cpio
{
  echo "kernel: $KPKG $(dpkg-deb -f debs/"${KPKG}"_*.deb Version)"
  for p in busybox-static nvme-cli e2fsprogs xfsprogs util-linux libc6; do
    echo "$p: $(dpkg-deb -f debs/"${p}"_*.deb Version)"
  done
} > image.txt
rm -rf root # 400+ MB of unpacked modules; only the stage is needed
echo "kernel:    $WORK/vmlinux ($KPKG, $(stat -c %s vmlinux) bytes)"
echo "initramfs: $WORK/initramfs.cpio ($(stat -c %s initramfs.cpio) bytes)"
