#!/bin/bash
# A disk whose initramfs lacks the virtio drivers fails p2v verify with the
# root-not-found reason, and the raw image stays unchanged.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/verify_common.sh"
IMG=$(sample_disk tiny-novirtio make-tiny-disk.sh --no-virtio)
before=$(sha256sum < "$IMG")
rc=0
"$P2V" verify "$IMG" --engine qemu --expect 'P2V-TINY-OK' --timeout 180 > "$TMP/report" 2>&1 || rc=$?
cat "$TMP/report"
[ "$rc" -eq 1 ] || fail "verify exited $rc, expected 1 (fail)"
grep -q '^verdict: FAIL: initramfs could not find the root device: ALERT!  /dev/vda1 does not exist' "$TMP/report" \
	|| fail "the reason is not the missing root device"
grep -q 'kernel start .*Linux version' "$TMP/report" || fail "the kernel milestone is missing"
grep -q '^console (last 20 lines):' "$TMP/report" || fail "the console tail is missing"
grep -q '^firmware log' "$TMP/report" || fail "the firmware log is missing from a failure report"
[ "$(sha256sum < "$IMG")" = "$before" ] || fail "verify modified the image"
echo "ok: no-virtio disk fails with the root-not-found reason"
