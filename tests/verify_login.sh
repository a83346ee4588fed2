#!/bin/bash
# The default success marker: a guest that ends at a real getty ("tiny
# login: ", no newline) passes after the quiet settle period, and p2v stops
# the still-running QEMU itself.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/verify_common.sh"
need pgrep
IMG=$(sample_disk tiny-getty make-tiny-disk.sh --getty)
COPY=$TMP/getty.raw
cp --sparse=always "$IMG" "$COPY"
rc=0
"$P2V" verify "$COPY" --engine qemu --timeout 180 --settle 2 > "$TMP/report" 2>&1 || rc=$?
cat "$TMP/report"
[ "$rc" -eq 0 ] || fail "verify exited $rc, expected 0"
grep -q '^verdict: PASS: reached userspace (marker at [0-9.]* s), then 2\.[0-9] s without a panic' "$TMP/report" \
	|| fail "not a pass on the login prompt after the settle period"
grep -Eq '^ +[0-9.]+ s  marker +tiny login:' "$TMP/report" || fail "the marker milestone is not the login prompt"
sleep 0.5
! pgrep -f "file=$COPY" > /dev/null || fail "QEMU outlived p2v"
echo "ok: login prompt passes"
