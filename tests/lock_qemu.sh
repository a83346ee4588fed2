#!/bin/bash
# Image locks interoperate with QEMU's: p2v refuses an image that qemu-io
# holds open for writing (unless -U); unit_core tests p2v against itself.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io
img=$TMP/lk.qcow2
qemu-img create -q -f qcow2 "$img" 64M
# the holder sleeps long enough for a loaded machine, and is ended below
qemu-io -f qcow2 "$img" -c 'sleep 120000' & holder=$!
trap 'kill $holder 2>/dev/null || true; rm -rf "$TMP"' EXIT
for _ in $(seq 300); do qemu-img info "$img" >/dev/null 2>&1 || break; sleep 0.1; done
kill -0 $holder || fail "qemu-io did not start"
qemu-img info "$img" >/dev/null 2>&1 && fail "qemu-io took no lock within 30 s"
expect_fail "info while qemu-io writes" "$P2V" info "$img"
msg=$("$P2V" info "$img" 2>&1 || true)
echo "$msg" | grep -q 'conflicting "write" lock' || fail "lock message: $msg"
"$P2V" info -U "$img" | grep -q "file format: qcow2" || fail "info -U"
expect_fail "convert while qemu-io writes" "$P2V" convert -O raw "$img" "$TMP/out.raw"
[ ! -e "$TMP/out.raw" ] || fail "output left"
"$P2V" convert -U -O raw "$img" "$TMP/out.raw" || fail "convert -U"
kill -0 $holder || fail "the holder ended before the checks did"
kill $holder
wait $holder || true
"$P2V" info "$img" >/dev/null || fail "info after the holder left"
echo "ok: QEMU-compatible locks"
