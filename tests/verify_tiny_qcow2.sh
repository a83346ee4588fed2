#!/bin/bash
# The tiny sample disk, converted to qcow2, passes p2v verify under QEMU TCG
# with its marker; the image is never modified; --json parses.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/verify_common.sh"
need qemu-img
RAW=$(sample_disk tiny make-tiny-disk.sh)
Q=$TMP/tiny.qcow2
if ! "$P2V" convert -f raw -O qcow2 "$RAW" "$Q" 2>/dev/null; then
	echo "note: p2v convert cannot write qcow2 yet; using qemu-img convert"
	qemu-img convert -f raw -O qcow2 "$RAW" "$Q"
fi
qemu-img check -q "$Q" || fail "the converted qcow2 does not check"
before=$(sha256sum < "$Q")
rc=0
"$P2V" verify -f qcow2 "$Q" --engine qemu --expect 'P2V-TINY-OK' --json --timeout 180 \
	--transcript "$TMP/console.txt" > "$TMP/report.json" 2> "$TMP/err" || rc=$?
cat "$TMP/report.json" "$TMP/err"
[ "$rc" -eq 0 ] || fail "verify exited $rc, expected 0 (pass)"
python3 -m json.tool "$TMP/report.json" > /dev/null || fail "--json output does not parse"
[ "$(json_get "$TMP/report.json" verdict)" = pass ] || fail "verdict is not pass"
[ "$(json_get "$TMP/report.json" engine)" = qemu-tcg ] || fail "the report does not name the qemu-tcg engine"
python3 - "$TMP/report.json" <<'PY' || fail "milestones are missing or out of order"
import json, sys
r = json.load(open(sys.argv[1]))
ms = {m["name"]: m for m in r["milestones"]}
order = ["firmware start", "disk first read", "bootloader", "kernel start", "root mounted", "marker"]
ts = [ms[n]["t_s"] for n in order]          # KeyError when one was not seen
assert ts == sorted(ts), ts
assert ms["marker"]["line"] == "P2V-TINY-OK", ms["marker"]
assert "Linux version" in ms["kernel start"]["line"]
PY
grep -q "P2V-TINY-OK" "$TMP/console.txt" || fail "the transcript lacks the marker"
grep -q "Linux version" "$TMP/console.txt" || fail "the transcript lacks the kernel banner"
[ "$(sha256sum < "$Q")" = "$before" ] || fail "verify modified the image"
echo "ok: tiny qcow2 passes, image unchanged"
