#!/bin/bash
# A guest that prints no marker but writes its root filesystem passes on
# that signal (QEMU block statistics), and its writes never reach the image;
# under p2v boot --writable they do.
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

# p2v boot --writable: the guest's file lands in the image's ext4.
need debugfs
cp --sparse=always "$IMG" "$TMP/rw.raw"
python3 - "$P2V" "$TMP/rw.raw" <<'PY' || fail "boot --writable did not run to the write"
import os, select, subprocess, sys, time
p = subprocess.Popen([sys.argv[1], "boot", sys.argv[2], "--engine", "qemu", "--writable"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
out, t0 = b"", time.time()
while time.time() - t0 < 180 and b"root filesystem written" not in out:
    if select.select([p.stdout], [], [], 0.5)[0]:
        d = os.read(p.stdout.fileno(), 4096)
        if not d:
            break
        out += d
p.stdin.write(b"\x1dq")
p.stdin.flush()
rc = p.wait(timeout=30)
print(out.decode(errors="replace")[-400:])
assert b"root filesystem written" in out, "the guest never wrote"
assert b"(writable)" in out
assert rc == 0, rc
PY
dd if="$TMP/rw.raw" of="$TMP/rw-part.img" bs=1M skip=1 status=none
# The guest's sync put the file in ext4's journal; whether it was also
# checkpointed before the run was stopped is a race, and debugfs does not
# replay journals: e2fsck does (exit 1: it changed something, as it must).
need e2fsck
rc=0; e2fsck -fy "$TMP/rw-part.img" > "$TMP/fsck.out" 2>&1 || rc=$?
[ "$rc" -le 1 ] || fail "--writable: e2fsck of the written root exited $rc: $(tail -n 5 "$TMP/fsck.out")"
debugfs -R "cat /p2v-was-here" "$TMP/rw-part.img" 2>/dev/null | grep -q . || fail "--writable: the guest's file is not in the image"
echo "ok: root-write signal passes; the image is unchanged; --writable writes"
