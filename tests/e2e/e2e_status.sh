#!/usr/bin/env bash
# evfsctl status and the metrics file report real counters from a live
# mount: after known I/O (1 MiB written, 2 MiB read with O_DIRECT, one
# chunk damaged at rest and read), with a file handle held open, status
# --json and the Prometheus text file show those numbers, the key state,
# the open handle and the EIO in the recent errors; an unmounted store says
# it is not mounted and the metrics file is gone.
. "$(dirname "$0")/lib.sh"

new_store
sed -i "s|^metrics_file =.*|metrics_file = $T/evfs.prom|" "$STORE/evfs.ini"
grep -q "^metrics_file = $T/evfs.prom" "$STORE/evfs.ini" || echo "metrics_file = $T/evfs.prom" >>"$STORE/evfs.ini"
ctl volume create v1 --size 16M --encrypt >/dev/null
mnt
ctl attach v1 >/dev/null
V=$MNT/volumes/v1
head -c 1M /dev/urandom >"$T/data"
dd if="$T/data" of="$V" bs=1M count=1 oflag=direct conv=notrunc,fsync status=none
for _ in 1 2; do dd if="$V" of=/dev/null bs=1M count=1 iflag=direct status=none; done
# Damage chunk 10's ciphertext at rest and read it: EIO, counted.  Which
# slot holds chunk 10 depends on the order the sealing threads finished in,
# so damage one byte of every slot the 1 MiB write used (nothing reads the
# other chunks afterwards).
# (rest_edit: the pool file itself, or its RADOS objects while the mount
# holds the pool: RADOS locks are advisory, as to anyone with the disks.)
lin=$(ctl --json volume show v1 | jget lineage)
damage() {
  for slot in $(seq 0 255); do
    printf '\xff' | dd of="$1" bs=1 seek=$((slot * 4096 + 7)) conv=notrunc status=none
  done
}
rest_edit "$lin" data damage
set +e; dd if="$V" of=/dev/null bs=4k skip=10 count=1 iflag=direct status=none 2>/dev/null; rc=$?; set -e
[ $rc != 0 ] || die "reading a damaged chunk succeeded"
exec 7<"$V"

ctl --json status >"$T/st"
jq_() { jget "$1" <"$T/st"; }
[ "$(jq_ mounted)" = true ] || die "status: not mounted? $(cat "$T/st")"
[ "$(jq_ mountpoint)" = "$MNT" ] || die "status: mount point $(jq_ mountpoint)"
pid=$(pgrep -f "evfs $STORE $MNT" | head -1)
[ "$(jq_ pid)" = "$pid" ] || die "status: pid $(jq_ pid), the mount is $pid"
[ "$(jq_ 'volumes.name=v1.key_state')" = Enabled ] || die "status: key state"
[ "$(jq_ 'volumes.name=v1.open_handles')" = 1 ] || die "status: open handles $(jq_ 'volumes.name=v1.open_handles')"
[ "$(jq_ 'volumes.name=v1.bytes_written')" -ge 1048576 ] || die "status: bytes written"
[ "$(jq_ 'volumes.name=v1.bytes_read')" -ge 2097152 ] || die "status: bytes read $(jq_ 'volumes.name=v1.bytes_read')"
[ "$(jq_ 'volumes.name=v1.chunk_errors')" -ge 1 ] || die "status: chunk errors"
jq_ 'recent_errors.*.message' | grep -q "chunk 10" || die "status: the EIO is not among the recent errors"
ctl status >"$T/st.txt"
grep -q "^v1 " "$T/st.txt" && grep -q "mounted at $MNT" "$T/st.txt" || die "status text: $(cat "$T/st.txt")"
ok "status --json: mount pid and point, key state, 1 open handle, >=1 MiB written, >=2 MiB read, the EIO counted and listed"

for _ in $(seq 80); do
  grep -q 'evfs_volume_chunk_errors_total{.*volume="v1"} [1-9]' "$T/evfs.prom" 2>/dev/null && break; sleep 0.1
done
w=$(sed -n 's/^evfs_volume_written_bytes_total{.*volume="v1"} //p' "$T/evfs.prom")
r=$(sed -n 's/^evfs_volume_read_bytes_total{.*volume="v1"} //p' "$T/evfs.prom")
[ "${w:-0}" -ge 1048576 ] && [ "${r:-0}" -ge 2097152 ] || die "metrics file: written=$w read=$r: $(cat "$T/evfs.prom")"
grep -q '^evfs_volume_open_handles{.*volume="v1"} 1$' "$T/evfs.prom" || die "metrics: open handles"
grep -q '^# TYPE evfs_volume_read_bytes_total counter$' "$T/evfs.prom" || die "metrics: TYPE lines"
grep -q '^evfs_up{store=' "$T/evfs.prom" || die "metrics: evfs_up"
ok "metrics file (Prometheus text): written $w, read $r bytes, open handles, EIO counter"

exec 7<&-
sleep 0.2
ctl detach v1 >/dev/null
umnt
[ ! -e "$T/evfs.prom" ] || die "the metrics file outlived the mount"
ctl status >"$T/st.txt"
grep -q "not mounted" "$T/st.txt" || die "status of an unmounted store: $(cat "$T/st.txt")"
[ "$(ctl --json status | jget mounted)" = false ] || die "status --json of an unmounted store"
ok "unmounted: status says 'not mounted', the metrics file is gone"
finish
