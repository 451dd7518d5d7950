#!/usr/bin/env bash
# R34 end to end: a store whose root key lives in a PKCS#11 token (SoftHSM2,
# a throwaway token in $T).  init --pkcs11-module writes backend = pkcs11
# (no key file anywhere), an encrypted volume is written and read through a
# real mount, survives an unmount and remount (the daemon opens the token
# after it forked), and: the PIN is in no store file, a wrong PIN and a
# missing token are refused naming the token and the remedy, the whole
# store put back from an older copy is caught by the pool generations the
# token keeps, and the store copied next to another token with a key of the
# same label opens nothing.
. "$(dirname "$0")/lib.sh"

softhsm_setup
PIN=evfs-e2e-pin-7c41d09b
mkdir -p "$T/tokens2"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$T/tokens2" >"$T/other.conf"
softhsm_token evfs-e2e "$PIN"
SOFTHSM2_CONF=$T/other.conf softhsm_token evfs-e2e "$PIN"
echo "$PIN" >"$T/pin"; chmod 0400 "$T/pin"

ctl init --pkcs11-module "$MODULE" --token evfs-e2e --pin-file "$T/pin" >"$T/out" || die "init: $(cat "$T/out")"
grep -q 'token "evfs-e2e"' "$T/out" || die "init output: $(cat "$T/out")"
grep -q '^backend = pkcs11$' "$STORE/evfs.ini" && grep -q "^pkcs11_token = evfs-e2e$" "$STORE/evfs.ini" &&
  grep -q "^pkcs11_pin_file = $T/pin$" "$STORE/evfs.ini" && grep -q "^pkcs11_key = evfs-root$" "$STORE/evfs.ini" ||
  die "evfs.ini: $(grep -v '^;' "$STORE/evfs.ini")"
! grep -q '^key_source\|^key_path' "$STORE/evfs.ini" || die "evfs.ini names a local root key"
softhsm2-util --show-slots 2>/dev/null | grep -q evfs-e2e || die "token not there"
sed -i "s|^log_file =.*|log_file = $T/evfs.log|" "$STORE/evfs.ini"
ctl kms grant >/dev/null
ok "init --pkcs11-module: backend = pkcs11 with module, token, pin file and key label in evfs.ini, no key file"

ctl volume create v1 --size 16M --encrypt >/dev/null
mnt
ctl attach v1 >/dev/null
head -c 4M /dev/urandom >"$T/data"
dd if="$T/data" of="$MNT/volumes/v1" bs=1M conv=notrunc,fsync status=none
cmp -n 4194304 "$T/data" "$MNT/volumes/v1" || die "read back differs"
umnt
ok "encrypted volume written and read back through the mount"

mnt
ctl attach v1 >/dev/null 2>&1 || true    # re-attached at mount (R21) or now
cmp -n 4194304 "$T/data" "$MNT/volumes/v1" || die "read back after remount differs"
umnt
ok "remount (the daemon logs in to the token after fork): data read back"

! grep -rqa -- "$PIN" "$STORE" || die "the PIN is in a store file"
ok "no store file holds the PIN (evfs.ini names only its file)"

echo wrong-pin-0000 >"$T/badpin"
sed -i "s|^pkcs11_pin_file = .*|pkcs11_pin_file = $T/badpin|" "$STORE/evfs.ini"
expect_fail 1 ctl volume list
grep -q 'wrong PIN for token "evfs-e2e": check pkcs11_pin_file' "$T/err" || die "wrong PIN message"
set +e; "$EVFS_BIN" "$STORE" "$MNT" 2>"$T/err"; rc=$?; set -e
[ $rc != 0 ] && grep -q 'wrong PIN for token "evfs-e2e"' "$T/err" || die "mount with a wrong PIN: rc $rc $(cat "$T/err")"
! mountpoint -q "$MNT" || die "mounted with a wrong PIN"
sed -i "s|^pkcs11_pin_file = .*|pkcs11_pin_file = $T/pin|" "$STORE/evfs.ini"
ok "wrong PIN: evfsctl and the mount refuse, naming the token and pkcs11_pin_file"

mv "$T/tokens" "$T/tokens.away"; mkdir "$T/tokens"
expect_fail 1 ctl volume list
grep -q 'no token labelled "evfs-e2e"' "$T/err" || die "missing token message"
rm -rf "$T/tokens"; mv "$T/tokens.away" "$T/tokens"
ctl volume list >/dev/null || die "token back: store does not open"
ok "token absent: refused with its label and the tokens present; back: opens again"

# The whole store (catalog, key store, pools) put back from an older copy is
# self-consistent; the token, outside it, keeps each pool's generation as of
# the last detach and catches it.
cp -a "$STORE" "$T/old"
mnt
ctl attach v1 >/dev/null 2>&1 || true
head -c 1M /dev/urandom | dd of="$MNT/volumes/v1" bs=1M conv=notrunc,fsync status=none
umnt                                     # detaches: the token gets the pool's generation
rm -rf "$STORE"; cp -a "$T/old" "$STORE"
mnt
ctl attach v1 >/dev/null 2>&1 || true
set +e; dd if="$MNT/volumes/v1" of=/dev/null bs=1M count=1 status=none 2>"$T/err"; rc=$?; set -e
[ $rc != 0 ] && grep -q "Input/output error" "$T/err" || die "the store put back from a copy reads (rc $rc)"
set +e; ctl fsck >"$T/out" 2>&1; rc=$?; set -e
[ $rc = 1 ] && grep -q "older than the catalog's freshness record" "$T/out" || { cat "$T/out"; die "fsck: rc $rc"; }
umnt
grep -q "rolled back: its files in .* are at generation [0-9]* but the store recorded generation [0-9]*" "$T/evfs.log" ||
  die "the log does not name the rolled-back pool"
ctl fsck --repair >"$T/out" 2>&1 || true
grep -q "its files are accepted as they are" "$T/out" || { cat "$T/out"; die "fsck --repair"; }
mnt
ctl attach v1 >/dev/null 2>&1 || true
cmp -n 4194304 "$T/data" "$MNT/volumes/v1" || die "the accepted copy does not read as it was"
umnt
ok "the whole store put back from an older copy: refused through the token's record (EIO, log, fsck); --repair accepts it"

# The whole store next to another token whose key has the same label.
cp -a "$STORE" "$T/copy"
sed -i "s|^log_file =.*|log_file =|" "$T/copy/evfs.ini"
SOFTHSM2_CONF=$T/other.conf "$EVFSCTL_BIN" --store "$T/mk" init --pkcs11-module "$MODULE" --token evfs-e2e \
  --pin-file "$T/pin" >/dev/null     # makes an evfs-root key in the other token
export SOFTHSM2_CONF=$T/other.conf
expect_fail 1 ctl --store "$T/copy" volume list
grep -q "is not this key store's root key" "$T/err" || die "copy with another token: $(cat "$T/err")"
export SOFTHSM2_CONF=$T/softhsm2.conf
ok "a copy of the store with another token's key of the same label is refused"

expect_fail 2 ctl --store "$T/s3" init --pkcs11-module "$MODULE" --token evfs-e2e
grep -q -- "--pkcs11-module needs --token LABEL and --pin-file FILE" "$T/err" || die "init without --pin-file"
cp "$T/pin" "$T/pin644"; chmod 0644 "$T/pin644"
ctl --store "$T/s3" init --pkcs11-module "$MODULE" --token evfs-e2e --pin-file "$T/pin644" --key-label k3 \
  >/dev/null 2>"$T/err" || die "init with --key-label: $(cat "$T/err")"
grep -q "pin644 is readable or writable by others" "$T/err" || die "no warning about the PIN file: $(cat "$T/err")"
grep -q '^pkcs11_key = k3$' "$T/s3/evfs.ini" || die "--key-label not written"
ok "init: --pkcs11-module without --pin-file is a usage error; --key-label is written; a 0644 PIN file is warned about"
finish
