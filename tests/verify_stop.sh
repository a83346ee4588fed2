#!/bin/bash
# p2v verify ends QEMU cleanly: on a timeout (FAIL, exit 1), on Ctrl-C
# (SIGINT: exit 2), and reports QEMU's own failure (exit 2).  No QEMU may
# outlive p2v.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/verify_common.sh"
need pgrep
IMG=$(sample_disk tiny make-tiny-disk.sh)
COPY=$TMP/tiny-copy.raw
cp --sparse=always "$IMG" "$COPY"   # a path of our own, to look for leftover QEMUs
no_leftover_qemu() {
	sleep 0.5
	! pgrep -f "file=$COPY" > /dev/null || fail "$1: a QEMU outlived p2v"
}

rc=0
"$P2V" verify "$COPY" --engine qemu --timeout 2 > "$TMP/report" 2>&1 || rc=$?
cat "$TMP/report"
[ "$rc" -eq 1 ] || fail "timeout: exit $rc, expected 1"
grep -q '^verdict: FAIL: timeout at 2\.[0-9] s (last milestone: ' "$TMP/report" || fail "timeout: no timeout reason"
no_leftover_qemu timeout

rc=0
"$P2V" verify "$COPY" --engine qemu --timeout 60 > "$TMP/report" 2>&1 &
pid=$!
sleep 2
kill -INT "$pid"
wait "$pid" || rc=$?
cat "$TMP/report"
[ "$rc" -eq 2 ] || fail "SIGINT: exit $rc, expected 2"
grep -q 'interrupted after' "$TMP/report" || fail "SIGINT: no message"
no_leftover_qemu SIGINT

# Told it is qcow2, QEMU refuses the raw file: could not run.
rc=0
"$P2V" verify -f qcow2 "$COPY" --engine qemu > "$TMP/report" 2>&1 || rc=$?
cat "$TMP/report"
[ "$rc" -eq 2 ] || fail "QEMU error: exit $rc, expected 2"
grep -q 'QEMU stopped without a guest shutdown.*qcow2' "$TMP/report" || fail "QEMU error: QEMU's message is not passed on"
no_leftover_qemu "QEMU error"
echo "ok: timeout, SIGINT and QEMU errors end cleanly"
