# p2v capture / inspect on disks held in plain files (no loop devices):
# untrusted bitmaps fall back to every sector with a warning that says why
# (ext4 needing recovery, group free count disagreeing with the bitmap),
# unknown content is copied whole, a whole-disk filesystem without a
# partition table, JSON output, usage errors.
source "$P2V_SRC/tests/lib.sh"
need sfdisk mkfs.ext4 debugfs e2fsck python3 cmp

mkfs_part() { # FILE MiB
	truncate -s "$2M" "$1"
	mkfs.ext4 -q -F -E nodiscard "$1"
}
mkfs_part "$TMP/recov.img" 16
debugfs -w -R "feature needs_recovery" "$TMP/recov.img" 2>/dev/null
mkfs_part "$TMP/counts.img" 16
debugfs -w -R "set_bg 0 free_blocks_count 5" "$TMP/counts.img" 2>/dev/null
mkfs_part "$TMP/clean.img" 16
mkrandom "$TMP/junk.img" $((8 << 20))

DISK=$TMP/disk.img
mkrandom "$DISK" $((64 << 20))
sfdisk -q "$DISK" <<'EOF2'
label: dos
start=2048, size=16MiB, type=83
size=16MiB, type=83
size=8MiB, type=83
size=16MiB, type=83
EOF2
put() { dd if="$1" of="$DISK" bs=1M seek="$2" conv=notrunc status=none; }
put "$TMP/recov.img" 1
put "$TMP/counts.img" 17
put "$TMP/junk.img" 33
put "$TMP/clean.img" 41

"$P2V" inspect "$DISK" --json > "$TMP/plan.json" 2> "$TMP/plan.err"
python3 -m json.tool "$TMP/plan.json" > /dev/null || fail "inspect --json is not JSON"
cat "$TMP/plan.err"
grep -q "partition 1 (ext4): ext: journal needs recovery" "$TMP/plan.err" || fail "needs_recovery not warned"
grep -q "partition 2 (ext4): ext: group 0 bitmap has .* free clusters but its descriptor says 5" "$TMP/plan.err" || fail "free count disagreement not warned"
python3 - "$TMP/plan.json" <<'EOF2' || fail "plan JSON content"
import json, sys
p = json.load(open(sys.argv[1]))
m = [(x["number"], x["filesystem"], x["method"]) for x in p["partitions"]]
assert m == [(1, "ext4", "all-sectors"), (2, "ext4", "all-sectors"), (3, "", "all-sectors"),
             (4, "ext4", "used-blocks")], m
assert p["source"]["size_bytes"] == 64 << 20
assert p["partition_table"]["type"] == "dos"
assert p["partitions"][3]["copy_bytes"] < 4 << 20, p["partitions"][3]
EOF2
echo "ok: untrusted bitmaps and unknown content planned as all-sectors"

# Capture from the file; the untrusted partitions are byte-exact.
"$P2V" capture "$DISK" "$TMP/out.img" --verify -q > /dev/null 2>&1
cmp -n $((40 << 20)) "$DISK" "$TMP/out.img" || fail "all-sectors partitions differ"
dd if="$TMP/out.img" of="$TMP/p4.img" bs=1M skip=41 count=16 status=none
e2fsck -fn "$TMP/p4.img" > /dev/null 2>&1 || fail "captured ext4 (partition 4) not clean"
echo "ok: capture from a file"

# A whole-disk filesystem (no partition table).
"$P2V" inspect "$TMP/clean.img" > "$TMP/whole.txt"
grep -q "whole-disk .*ext4 .*used-blocks" "$TMP/whole.txt" || { cat "$TMP/whole.txt"; fail "whole-disk ext4"; }
"$P2V" capture "$TMP/clean.img" "$TMP/whole.out" -O raw -q > /dev/null
e2fsck -fn "$TMP/whole.out" > /dev/null 2>&1 || fail "whole-disk capture not clean"

# Usage errors.
expect_fail "no arguments" "$P2V" capture
expect_fail "no output" "$P2V" capture "$DISK"
expect_fail "missing source" "$P2V" capture "$TMP/nonexistent" "$TMP/o.img"
expect_fail "bad --max-read-errors" "$P2V" capture "$DISK" "$TMP/o.img" --max-read-errors -3
expect_fail "unknown option" "$P2V" capture --bogus "$DISK" "$TMP/o.img"
expect_fail "unknown format" "$P2V" capture "$DISK" "$TMP/o.img" -O nosuchformat
expect_fail "format from name" "$P2V" capture "$DISK" "$TMP/o.unknownext"
expect_fail "directory source" "$P2V" inspect "$TMP"
"$P2V" capture --help | grep -q "usage: p2v capture" || fail "--help"
echo "PASS"
