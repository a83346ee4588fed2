#!/bin/bash
# A guest that prints no marker but writes its root filesystem passes on
# that signal (QEMU block statistics), and its writes never reach the image.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/verify_common.sh"
IMG=$(sample_disk tiny-write-root make-tiny-disk.sh --write-root)
before=$(sha256sum < "$IMG")
rc=0
"$P2V" verify "$IMG" --engine qemu --json --timeout 180 > "$TMP/report.json" 2> "$TMP/err" || rc=$?
cat "$TMP/report.json" "$TMP/err"
[ "$rc" -eq 0 ] || fail "verify exited $rc, expected 0 (pass)"
python3 - "$TMP/report.json" <<'PY' || fail "the report does not show a pass on the root write"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["verdict"] == "pass", r["verdict"]
assert r["reason"].startswith("reached userspace (root filesystem write at "), r["reason"]
s = r["signals"]
assert s["marker"] is False and s["root_write"] is True, s
assert s["disk_writes"] > 0 and s["disk_reads"] > 0, s
PY
[ "$(sha256sum < "$IMG")" = "$before" ] || fail "the guest's writes reached the image"
echo "ok: root-write signal passes; the image is unchanged"
