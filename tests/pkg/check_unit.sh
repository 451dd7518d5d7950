#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check_unit.sh SOURCE_DIR EVFS_BIN - systemd-analyze verify on
# contrib/systemd/evfs@.service, with ExecStart= pointed at the evfs just
# built (the unit names /usr/bin/evfs, which exists only once the package is
# installed; .ci/pkg-smoke verifies the installed unit as it is).  Without
# the man pages the unit's Documentation= is not checked.  Exit 77: skipped
# (no systemd-analyze: apt-get install systemd).
set -euo pipefail
SRC=$1 EVFS=$2
if ! command -v systemd-analyze >/dev/null; then
  echo "SKIPPED: no systemd-analyze (package systemd)" >&2
  exit 77
fi
T=$(mktemp -d /tmp/evfs-unit.XXXXXX)
trap 'rm -rf "$T"' EXIT
unit=$T/evfs@.service
sed "s|=/usr/bin/evfs |=$EVFS |" "$SRC/contrib/systemd/evfs@.service" >"$unit"
grep -q "^ExecStart=$EVFS -f %f \${MOUNTPOINT}\$" "$unit" || { echo "FAIL: ExecStart= of the unit is not /usr/bin/evfs -f %f \${MOUNTPOINT}"; exit 1; }
man=
for p in evfs.8 evfsctl.8 evfs.ini.5; do [ -e "$SRC/docs/man/$p" ] || man=--man=no; done
if [ -z "$man" ]; then
  # the pages are in the tree, not installed: let man(1) find them there
  export MANPATH=$T/man:
  mkdir -p "$T/man/man8" "$T/man/man5"
  cp "$SRC/docs/man/"*.8 "$T/man/man8/"; cp "$SRC/docs/man/"*.5 "$T/man/man5/"
fi
# the template, and one instance: a store path with a '-' (escaped \x2d)
ln -s evfs@.service "$T/evfs@srv-evfs\\x2dstore.service"
for u in "$unit" "$T/evfs@srv-evfs\\x2dstore.service"; do
  # systemd-analyze verify exits 0 even on some warnings: any output fails
  out=$(systemd-analyze verify $man "$u" 2>&1) && [ -z "$out" ] || { echo "FAIL: systemd-analyze verify $man $u:"; echo "$out"; exit 1; }
  echo "ok - systemd-analyze verify ${man:+$man }$(basename "$u")"
done
