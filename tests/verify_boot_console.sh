#!/bin/bash
# p2v boot: the guest's COM1 reaches stdout, the guest powers off and boot
# returns; Ctrl-] q typed on the console stops the guest early; the image
# is not written without --writable.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/verify_common.sh"
IMG=$(sample_disk tiny make-tiny-disk.sh)
before=$(sha256sum < "$IMG")
rc=0
timeout 120 "$P2V" boot "$IMG" --engine qemu < /dev/null > "$TMP/out" 2> "$TMP/err" || rc=$?
cat "$TMP/err"
[ "$rc" -eq 0 ] || fail "boot exited $rc"
grep -q '^P2V-TINY-OK' "$TMP/out" || fail "the guest console did not reach stdout"
grep -q 'Ctrl-\] then q quits' "$TMP/err" || fail "no escape key hint"

# The escape key: Ctrl-] q after 2 s, long before the kernel prints the marker
# (the writer keeps the pipe open afterwards, so only the escape can end boot).
start=$(date +%s)
{ sleep 2; printf '\035q'; sleep 8; } | {
	rc=0
	timeout 60 "$P2V" boot "$IMG" --engine qemu > "$TMP/out2" 2>&1 || rc=$?
	echo "$rc" > "$TMP/rc2"
	date +%s > "$TMP/end2"
}
[ "$(cat "$TMP/rc2")" -eq 0 ] || fail "boot after Ctrl-] q exited $(cat "$TMP/rc2")"
elapsed=$(( $(cat "$TMP/end2") - start ))
[ "$elapsed" -lt 10 ] || fail "Ctrl-] q did not stop the guest (${elapsed} s)"
! grep -q 'P2V-TINY-OK' "$TMP/out2" || fail "the guest ran to the end despite Ctrl-] q"
grep -q 'console closed' "$TMP/out2" || fail "no closing message"
[ "$(sha256sum < "$IMG")" = "$before" ] || fail "boot without --writable modified the image"
echo "ok: boot console, escape key, read-only by default"
