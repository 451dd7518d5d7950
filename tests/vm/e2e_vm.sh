#!/usr/bin/env bash
# e2e_vm (ctest label "vm", slow): examples/qemu-vm.sh as a test.  An
# encrypted volume is a qemu VM's raw virtio disk with cache=none (O_DIRECT
# on the FUSE file); the guest (Debian's kernel, busybox initramfs) writes a
# line and a 4 MiB file on its ext4 and powers off.  Checks: the line and the
# file's md5sum read back on the host, e2fsck -fn is clean, the line is
# nowhere in the store.  Installs nothing: .ci/run installs qemu-system-x86,
# linux-image-amd64, busybox-static and cpio.  Exit 77 = skipped (said loudly).
set -euo pipefail
: "${EVFS_BIN:?}" "${EVFSCTL_BIN:?}"
EXAMPLE=$(cd "$(dirname "$0")/../.." && pwd)/examples/qemu-vm.sh
skip() { echo "SKIPPED: e2e_vm: $* — the VM test did not run" >&2; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root"
[ -c /dev/fuse ] && command -v fusermount3 >/dev/null || skip "needs /dev/fuse and fusermount3"
command -v qemu-system-x86_64 >/dev/null || skip "needs qemu-system-x86_64 (apt-get install qemu-system-x86)"
have_kernel=
for k in /boot/vmlinuz-*; do [ -f "/lib/modules/${k#/boot/vmlinuz-}/modules.dep" ] && have_kernel=$k; done
[ -n "${EVFS_VM_KERNEL:-$have_kernel}" ] || skip "needs a kernel with its modules (apt-get install linux-image-amd64)"
bb=$(command -v busybox || true)
case "$( [ -n "$bb" ] && LC_ALL=C ldd "$bb" 2>&1)" in *"not a dynamic"*) ;; *) skip "needs busybox-static";; esac
command -v cpio >/dev/null || skip "needs cpio"
command -v modprobe >/dev/null || skip "needs modprobe (kmod)"

OUT=$(mktemp /tmp/evfs-e2e-vm.XXXXXX.log)
trap 'rm -f "$OUT"' EXIT
set +e
EVFS_NO_APT=1 EVFS_BIN=$EVFS_BIN EVFSCTL_BIN=$EVFSCTL_BIN bash "$EXAMPLE" >"$OUT" 2>&1
rc=$?
set -e
cat "$OUT"
[ "$rc" = 0 ] || { echo "FAIL: examples/qemu-vm.sh exited $rc" >&2; exit 1; }
PASS=0
check() {
  grep -qx "$1" "$OUT" || { echo "FAIL: the example did not say: $1" >&2; exit 1; }
  PASS=$((PASS + 1)); echo "ok $PASS - $2"
}
check 'O_DIRECT write and read of the volume file: accepted' "the mount accepts O_DIRECT on the volume file"
check 'guest: unmounted; powering off' "the guest wrote on /dev/vda (virtio, cache=none), unmounted and powered off"
check 'check: e2fsck -fn: clean' "e2fsck -fn of the guest's ext4 is clean"
check 'check: the guest'"'"'s line reads back on the host' "the guest's line reads back on the host after poweroff"
check 'check: the guest'"'"'s 4 MiB random file matches the md5sum the guest wrote' "the guest's 4 MiB file matches its md5sum"
check 'check: the line is nowhere under .*' "the line is not in the store's files (ciphertext at rest)"
echo "$PASS passed, 0 failed"
