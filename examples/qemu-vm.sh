#!/usr/bin/env bash
# evfs as a VM's disk: an encrypted volume is the raw virtio disk of a qemu
# VM (cache=none, i.e. O_DIRECT on the FUSE file).  The guest is Debian's
# kernel with a busybox initramfs made here; it mounts the ext4 on /dev/vda,
# writes a line and a 4 MiB random file, unmounts and powers off.  The host
# then reads them back through a loop device, checks the ext4, and shows that
# the store holds no plaintext — the cloud-disk use of evfs, on one machine.
#
# Run as root on Debian 12 (it installs qemu-system-x86, linux-image-amd64,
# busybox-static and cpio unless EVFS_NO_APT is set).  Cleans up after itself.
#   EVFS_BIN, EVFSCTL_BIN   use these binaries instead of building build/
#   EVFS_VM_ACCEL           kvm or tcg (default: kvm when /dev/kvm opens and a probe
#                           guest boots under it within 20 s, else tcg)
#   EVFS_VM_TIMEOUT         seconds the VM may run (default 300)
#   EVFS_VM_KERNEL          a vmlinuz whose modules are in /lib/modules/VERSION
# Exit 0: every check passed; 1: a check or a step failed (said on stderr).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VM_TIMEOUT=${EVFS_VM_TIMEOUT:-300}
VOL=vmdisk
# The guest's line; the host reads it back and must not find it in the store.
LINE="written by the evfs qemu guest $(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step() { echo; echo "== [$(elapsed) s] $*"; }
fail() { echo "qemu-vm: FAILED: $*" >&2; exit 1; }

if [ "$(id -u)" != 0 ]; then echo "qemu-vm: run as root (it uses FUSE, losetup and mount)" >&2; exit 1; fi
if command -v apt-get >/dev/null && [ -z "${EVFS_NO_APT:-}" ]; then
  step "installing dependencies (qemu, Debian's kernel, busybox-static)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends build-essential cmake pkg-config \
    libfuse3-dev fuse3 libsodium-dev libsqlite3-dev libinih-dev check e2fsprogs util-linux mount kmod \
    qemu-system-x86 linux-image-amd64 busybox-static cpio >/dev/null
fi
if [ -n "${EVFS_BIN:-}" ] && [ -n "${EVFSCTL_BIN:-}" ]; then
  EVFS=$EVFS_BIN CTL=$EVFSCTL_BIN
else
  step "building"
  cmake -S . -B build >/dev/null && cmake --build build -j2 >/dev/null
  EVFS=$ROOT/build/fs/fuse/evfs CTL=$ROOT/build/cli/evfsctl
fi

# The newest installed kernel that has its modules (or EVFS_VM_KERNEL).
KERNEL=${EVFS_VM_KERNEL:-}
if [ -z "$KERNEL" ]; then
  for k in $(ls /boot/vmlinuz-* 2>/dev/null | sort -V); do
    [ -f "/lib/modules/${k#/boot/vmlinuz-}/modules.dep" ] && KERNEL=$k
  done
fi
[ -n "$KERNEL" ] || fail "no kernel in /boot with its modules in /lib/modules: apt-get install linux-image-amd64"
KVER=${KERNEL#*/vmlinuz-}
[ -f "/lib/modules/$KVER/modules.dep" ] || fail "$KERNEL: no /lib/modules/$KVER/modules.dep"
BUSYBOX=$(command -v busybox || true)
case "$( [ -n "$BUSYBOX" ] && LC_ALL=C ldd "$BUSYBOX" 2>&1)" in
  *"not a dynamic"*) ;;
  *) fail "no static busybox: apt-get install busybox-static";;
esac
for c in qemu-system-x86_64 cpio modprobe mkfs.ext4 e2fsck losetup fusermount3; do
  command -v "$c" >/dev/null || fail "$c not found (see the package list at the top of this script)"
done
ACCEL=${EVFS_VM_ACCEL:-}
case "$ACCEL" in ""|kvm|tcg) ;; *) fail "EVFS_VM_ACCEL=$ACCEL: kvm or tcg";; esac

WORK=$(mktemp -d /tmp/evfs-qemu-vm.XXXXXX)
STORE=$WORK/store MNT=$WORK/mnt FSMNT=$WORK/ext4 LOOP='' EVFS_PID='' QEMU_PID=''
export EVFS_STORE=$STORE
cleanup() {
  local rc=$?
  set +e
  # Only what this script started: its qemu, its loop device, its mounts, its evfs.
  [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null
  mountpoint -q "$FSMNT" && { umount "$FSMNT" || umount -l "$FSMNT"; }
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
  mountpoint -q "$MNT" && { fusermount3 -u "$MNT" || umount -l "$MNT"; }
  if [ -n "$EVFS_PID" ]; then
    for _ in $(seq 100); do kill -0 "$EVFS_PID" 2>/dev/null || break; sleep 0.1; done
    kill "$EVFS_PID" 2>/dev/null && wait "$EVFS_PID" 2>/dev/null
  fi
  if [ "$rc" != 0 ]; then
    [ -s "$WORK/console.log" ] && { echo "--- end of the VM console:" >&2; tail -30 "$WORK/console.log" >&2; }
    [ -s "$WORK/evfs.log" ] && { echo "--- end of the mount's log:" >&2; tail -20 "$WORK/evfs.log" >&2; }
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$MNT" "$FSMNT"
echo "kernel $KERNEL, busybox $BUSYBOX, work dir $WORK"

step "create a store, grant KMS access, create a 64 MiB encrypted volume"
$CTL init --keyfile "$WORK/root.key"
$CTL kms grant
$CTL volume create "$VOL" --size 64M --encrypt

step "mount the store (evfs -f, pid kept for cleanup) and attach the volume"
"$EVFS" -f "$STORE" "$MNT" >"$WORK/evfs.log" 2>&1 &
EVFS_PID=$!
for _ in $(seq 100); do mountpoint -q "$MNT" && break; kill -0 "$EVFS_PID" 2>/dev/null || break; sleep 0.1; done
mountpoint -q "$MNT" || fail "the mount did not appear"
$CTL attach "$VOL"
DISK=$MNT/volumes/$VOL
ls -l "$DISK"
# qemu's cache=none opens the disk with O_DIRECT: say so now if the mount refuses it.
dd if=/dev/zero of="$DISK" bs=4096 count=1 oflag=direct conv=notrunc status=none &&
  dd if="$DISK" of=/dev/null bs=4096 count=1 iflag=direct status=none ||
  fail "$DISK refuses O_DIRECT (qemu's cache=none needs it)"
echo "O_DIRECT write and read of the volume file: accepted"

step "mkfs.ext4 directly on the volume file"
mkfs.ext4 -q -F -L evfs-vm "$DISK"

step "build the guest's initramfs: static busybox, /init, the kernel $KVER's modules"
IR=$WORK/initramfs
mkdir -p "$IR"/{bin,dev,proc,sys,mnt,lib/modules}
cp "$BUSYBOX" "$IR/bin/busybox"
mknod -m 600 "$IR/dev/console" c 5 1
# virtio_pci finds the disk, virtio_blk makes /dev/vda, ext4 needs crc32c:
# modprobe on the host gives the .ko files in load order (softdeps too).
: >"$IR/modules.list"
for ko in $(modprobe -S "$KVER" --show-depends -a virtio_pci virtio_blk crc32c_generic ext4 |
            awk '$1 == "insmod" && !seen[$2]++ { print $2 }'); do
  name=$(basename "$ko"); name=${name%.xz}; name=${name%.zst}; name=${name%.gz}
  case "$ko" in
    *.xz) xz -dc "$ko" >"$IR/lib/modules/$name";;
    *.zst) zstd -qdc "$ko" >"$IR/lib/modules/$name";;
    *.gz) gzip -dc "$ko" >"$IR/lib/modules/$name";;
    *) cp "$ko" "$IR/lib/modules/$name";;
  esac
  echo "$name" >>"$IR/modules.list"
done
echo "modules: $(tr '\n' ' ' <"$IR/modules.list")"
cat >"$IR/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
say() { echo "guest: \$*"; }
die() { echo "guest: FAILED: \$*"; sync; poweroff -f; }
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
# evfs_probe=1 on the kernel command line: only prove that the guest boots.
[ -z "\${evfs_probe:-}" ] || { echo EVFS-VM-PROBE-OK; poweroff -f; }
say "kernel \$(uname -r), \$(grep -c ^processor /proc/cpuinfo) cpu"
for m in \$(cat /modules.list); do
  insmod /lib/modules/\$m 2>/dev/null || say "insmod \$m: not loaded (not for this CPU, or built in)"
done
for i in \$(seq 50); do [ -b /dev/vda ] && break; sleep 0.1; done
[ -b /dev/vda ] || die "no /dev/vda"
say "/dev/vda: \$((\$(cat /sys/block/vda/size) / 2048)) MiB, logical block \$(cat /sys/block/vda/queue/logical_block_size)"
mount -t ext4 /dev/vda /mnt || die "mount /dev/vda"
echo "$LINE" >/mnt/from-guest.txt || die "write"
dd if=/dev/urandom of=/mnt/blob bs=64k count=64 2>/dev/null || die "dd"
(cd /mnt && md5sum blob >blob.md5) || die "md5sum"
sync
say "wrote /mnt/from-guest.txt: \$(cat /mnt/from-guest.txt)"
say "wrote /mnt/blob (4 MiB): \$(cat /mnt/blob.md5)"
umount /mnt || die "umount"
say "unmounted; powering off"
echo EVFS-VM-GUEST-DONE
poweroff -f
EOF
chmod 755 "$IR/init"
(cd "$IR" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$WORK/initramfs.cpio.gz"
echo "initramfs: $(du -k "$WORK/initramfs.cpio.gz" | cut -f1) KiB"

# KVM when asked, or when /dev/kvm opens and a guest boots under it: a
# nested /dev/kvm may open and then hang the guest (or qemu may refuse it).
if [ -z "$ACCEL" ]; then
  ACCEL=tcg
  if [ -c /dev/kvm ] && (exec 9<>/dev/kvm) 2>/dev/null; then
    step "probe KVM: boot the guest without a disk (20 s at most)"
    timeout -k 5 20 qemu-system-x86_64 -accel kvm -m 256 -nographic -no-reboot -nic none -kernel "$KERNEL" \
      -initrd "$WORK/initramfs.cpio.gz" -append 'console=ttyS0 panic=-1 quiet evfs_probe=1' \
      </dev/null >"$WORK/probe.log" 2>&1 &
    QEMU_PID=$!
    wait "$QEMU_PID" || true
    QEMU_PID=
    if grep -q EVFS-VM-PROBE-OK "$WORK/probe.log"; then ACCEL=kvm; echo "KVM works: using it"
    else echo "/dev/kvm opens but the probe guest did not boot under KVM: using TCG (software emulation)"; fi
  else
    echo "no usable /dev/kvm: using TCG (software emulation)"
  fi
fi

step "boot the VM ($ACCEL) with the volume as its virtio disk, cache=none (timeout ${VM_TIMEOUT} s)"
QEMU=(qemu-system-x86_64 -accel "$ACCEL" -m 256 -nographic -no-reboot -nic none
  -kernel "$KERNEL" -initrd "$WORK/initramfs.cpio.gz" -append 'console=ttyS0 panic=-1 quiet'
  -drive "file=$DISK,format=raw,if=virtio,cache=none,aio=threads")
echo "${QEMU[*]}"
VM0=$(date +%s.%N)
timeout -k 10 "$VM_TIMEOUT" "${QEMU[@]}" </dev/null >"$WORK/console.log" 2>&1 &
QEMU_PID=$!
set +e; wait "$QEMU_PID"; qrc=$?; set -e
QEMU_PID=
VMSECS=$(awk -v a="$VM0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
tr -d '\r' <"$WORK/console.log" | grep -oE '(guest:|qemu-system-x86_64:).*' || true
[ "$qrc" != 124 ] || fail "the VM did not power off within ${VM_TIMEOUT} s"
[ "$qrc" = 0 ] || fail "qemu exited with status $qrc"
grep -q EVFS-VM-GUEST-DONE "$WORK/console.log" || fail "the guest did not finish its work"
echo "VM powered off after $VMSECS s"

step "on the host: loop-mount the volume file read-only, check the ext4 and read the guest's files"
LOOP=$(losetup -r -f --show "$DISK")
e2fsck -fn "$LOOP" >"$WORK/e2fsck.log" 2>&1 || { cat "$WORK/e2fsck.log"; fail "e2fsck -fn found problems"; }
echo "check: e2fsck -fn: clean"
mount -o ro "$LOOP" "$FSMNT"
ls -l "$FSMNT"
got=$(cat "$FSMNT/from-guest.txt")
echo "from-guest.txt: $got"
[ "$got" = "$LINE" ] || fail "the guest's line reads back as '$got', not '$LINE'"
echo "check: the guest's line reads back on the host"
(cd "$FSMNT" && md5sum -c --quiet blob.md5) || fail "the guest's 4 MiB file does not match its md5sum"
echo "check: the guest's 4 MiB random file matches the md5sum the guest wrote"

step "the store holds only ciphertext"
grep -qaF "$LINE" "$DISK" || fail "the line is not in the volume file either: the grep proves nothing"
echo "the line is in the plaintext volume file (through the mount)"
if grep -rqaF "$LINE" "$STORE"; then fail "PLAINTEXT FOUND IN STORE: $(grep -rlaF "$LINE" "$STORE")"; fi
echo "check: the line is nowhere under $STORE ($(du -sk "$STORE" | cut -f1) KiB, $(find "$STORE" -type f | wc -l) files)"

step "unmount everything"
umount "$FSMNT"; losetup -d "$LOOP"; LOOP=
fusermount3 -u "$MNT"
for _ in $(seq 100); do kill -0 "$EVFS_PID" 2>/dev/null || break; sleep 0.1; done
set +e; wait "$EVFS_PID"; erc=$?; set -e; EVFS_PID=
[ "$erc" = 0 ] || { tail -20 "$WORK/evfs.log" >&2; fail "the mount (evfs -f) exited with status $erc"; }
echo "the mount exited cleanly"
step "done: the VM ran for $VMSECS s ($ACCEL)"
