# p2v capture of an MBR disk on a loop device: ext4, FAT32, swap and an ext2
# logical partition inside an extended one; free space full of random
# garbage and a deleted file.  The image must fsck clean, hold identical
# files, be far smaller than the disk, and --all-blocks must be byte-exact.
source "$P2V_SRC/tests/lib.sh"
source "$P2V_SRC/tests/capture_lib.sh"
need mkfs.vfat fsck.vfat mcopy mdel mkswap blkid cmp sha256sum

DISK=$TMP/mbr.img
head -c 128M /dev/urandom > "$DISK"   # a used disk: garbage everywhere
sfdisk -q "$DISK" <<'EOF'
label: dos
start=2048, size=40MiB, type=83
size=40MiB, type=c
size=8MiB, type=82
type=5
size=24MiB, type=83
EOF
cap_make_files
cap_attach L "$DISK"
[ -b "${L}p5" ] || fail "partx did not create ${L}p5"
mkfs.ext4 -q -F -E nodiscard -d "$TMP/files" "${L}p1"
debugfs -w -R 'rm /deleted.bin' "${L}p1" 2>/dev/null
mkfs.vfat -F 32 -s 1 "${L}p2" >/dev/null
mcopy -i "${L}p2" "$TMP/files/a.bin" "$TMP/files/c.odd" "$TMP/files/deleted.bin" ::/
mmd -i "${L}p2" ::/dir
mcopy -i "${L}p2" "$TMP/files/dir/b.bin" ::/dir/
mdel -i "${L}p2" ::/deleted.bin
mkswap "${L}p3" >/dev/null
mkfs.ext2 -q -F -E nodiscard -d "$TMP/files2" "${L}p5"
sync

# The plan.
"$P2V" inspect "$L" > "$TMP/plan.txt"
cat "$TMP/plan.txt"
"$P2V" inspect "$L" --json > "$TMP/plan.json"
[ "$(grep -c '"method": "used-blocks"' "$TMP/plan.json")" = 3 ] || fail "expected 3 used-blocks partitions"
grep -q '"method": "header-only"' "$TMP/plan.json" || fail "swap not header-only"
grep -q '"method": "container"' "$TMP/plan.json" || fail "extended partition not a container"
grep -q '"filesystem": "vfat"' "$TMP/plan.json" || fail "FAT32 not found"
"$P2V" capture --dry-run "$L" "$TMP/never.img" > /dev/null
[ ! -e "$TMP/never.img" ] || fail "--dry-run wrote an output"

# The capture.
"$P2V" capture "$L" "$TMP/out.img" --verify --report "$TMP/rep.json" -q
grep -q '"verified": true' "$TMP/rep.json" || fail "report: not verified"
grep -q '"verify_mismatch_bytes": 0' "$TMP/rep.json" || fail "report: verify mismatch"
copy=$(cap_json_u64 "$TMP/rep.json" total_copy_bytes)
alloc=$(cap_alloc_bytes "$TMP/out.img")
disk=$(stat -c %s "$DISK")
echo "disk $disk bytes, selected $copy bytes, output occupies $alloc bytes"
[ "$alloc" -le $((copy + 1048576)) ] || fail "output ($alloc) larger than the selected bytes ($copy)"
[ "$alloc" -lt $((disk * 45 / 100)) ] || fail "output ($alloc) not far below the disk size ($disk)"
[ "$alloc" -gt $((16 * 1048576)) ] || fail "output ($alloc) too small to hold the files"
[ "$(stat -c %s "$TMP/out.img")" = "$disk" ] || fail "virtual size differs from the disk"
sha=$(grep -m1 '"sha256"' "$TMP/rep.json" | sed 's/.*: "\(.*\)".*/\1/')
[ "$sha" = "$(sha256sum < "$TMP/out.img" | cut -d' ' -f1)" ] || fail "report sha256 is not the image's"

# The captured filesystems.
cap_attach O "$TMP/out.img" -r
cap_ext_check "${O}p1" a.bin dir/b.bin c.odd
debugfs -R 'stat /deleted.bin' "${O}p1" 2>&1 | grep -q "not found" || fail "deleted file came back"
fsck.vfat -n "${O}p2" > "$TMP/fsck.log" 2>&1 || { cat "$TMP/fsck.log"; fail "fsck.vfat -n"; }
for f in a.bin c.odd dir/b.bin; do
	mcopy -n -i "${O}p2" "::/$f" "$TMP/fat.out"
	[ "$(cap_md5 "$TMP/fat.out")" = "$(cap_md5 "$TMP/files/$f")" ] || fail "FAT: $f differs"
done
echo "ok: FAT32 clean, files identical"
[ "$(blkid -o value -s UUID "${O}p3")" = "$(blkid -o value -s UUID "${L}p3")" ] || fail "swap UUID lost"
[ "$(blkid -o value -s TYPE "${O}p3")" = swap ] || fail "swap header lost"
e2fsck -fn "${O}p5" > /dev/null 2>&1 || fail "logical ext2 not clean"
debugfs -R "dump /a.bin $TMP/l.out" "${O}p5" 2>/dev/null
[ "$(cap_md5 "$TMP/l.out")" = "$(cap_md5 "$TMP/files/a.bin")" ] || fail "logical ext2: a.bin differs"
# Partition table, MBR gap and EBR area identical.
cmp -n $((2048 * 512)) "$L" "$O" || fail "MBR gap differs"
cmp -i $((182272 * 512)) -n $((2048 * 512)) "$L" "$O" || fail "EBR area differs"
cap_detach "$O"

# --all-blocks: byte for byte.
"$P2V" capture "$L" "$TMP/all.img" --all-blocks -q
cmp "$L" "$TMP/all.img" || fail "--all-blocks output differs from the source"
"$P2V" compare "$TMP/all.img" "$TMP/mbr.img" > /dev/null || fail "p2v compare: all-blocks differs"
echo "ok: --all-blocks identical"

# An existing output is refused without --force.
expect_fail "existing output" "$P2V" capture "$L" "$TMP/all.img" -q
"$P2V" capture "$L" "$TMP/all.img" --force -q
echo "PASS"
