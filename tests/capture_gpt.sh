# p2v capture of a GPT disk on a loop device: ext4 and NTFS, garbage in the
# free space.  Files identical (debugfs, ntfscat), ntfsfix and e2fsck clean,
# GPT backup copied, output far below the disk size; qemu-img agrees.
source "$P2V_SRC/tests/lib.sh"
source "$P2V_SRC/tests/capture_lib.sh"
need mkntfs ntfscp ntfscat ntfsfix ntfsinfo qemu-img cmp

DISK=$TMP/gpt.img
head -c 96M /dev/urandom > "$DISK"
sfdisk -q "$DISK" <<'EOF2'
label: gpt
start=2048, size=40MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
size=40MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7
EOF2
cap_make_files
cap_attach L "$DISK"
mkfs.ext4 -q -F -E nodiscard -d "$TMP/files" "${L}p1"
debugfs -w -R 'rm /deleted.bin' "${L}p1" 2>/dev/null
mkntfs -Q -F -q "${L}p2" 2>/dev/null
for f in a.bin c.odd; do ntfscp "${L}p2" "$TMP/files/$f" "$f" 2>/dev/null; done
ntfscp "${L}p2" "$TMP/files/dir/b.bin" b.bin 2>/dev/null
sync

"$P2V" inspect "$L" --json > "$TMP/plan.json"
[ "$(grep -c '"method": "used-blocks"' "$TMP/plan.json")" = 2 ] || { cat "$TMP/plan.json"; fail "expected 2 used-blocks partitions"; }
grep -q '"type": "gpt"' "$TMP/plan.json" || fail "GPT not recognized"
grep -q '"filesystem": "ntfs"' "$TMP/plan.json" || fail "NTFS not recognized"

"$P2V" capture "$L" "$TMP/out.img" --verify --json -q > "$TMP/rep.json"
grep -q '"verify_mismatch_bytes": 0' "$TMP/rep.json" || fail "verify mismatch"
alloc=$(cap_alloc_bytes "$TMP/out.img")
copy=$(cap_json_u64 "$TMP/rep.json" total_copy_bytes)
echo "selected $copy bytes, output occupies $alloc bytes of 96 MiB"
[ "$alloc" -le $((copy + 1048576)) ] || fail "output larger than the selection"
[ "$alloc" -lt $((50 * 1048576)) ] || fail "output ($alloc) not far below the disk size"
qemu-img compare -q -f raw -F raw "$TMP/out.img" "$TMP/out.img" || fail "qemu-img cannot read the output"

cap_attach O "$TMP/out.img" -r
cap_ext_check "${O}p1" a.bin dir/b.bin c.odd
ntfsfix -n "${O}p2" > "$TMP/ntfsfix.log" 2>&1 || { cat "$TMP/ntfsfix.log"; fail "ntfsfix -n"; }
for f in a.bin c.odd; do
	[ "$(ntfscat "${O}p2" "$f" | md5sum | cut -d' ' -f1)" = "$(cap_md5 "$TMP/files/$f")" ] || fail "NTFS: $f differs"
done
[ "$(ntfscat "${O}p2" b.bin | md5sum | cut -d' ' -f1)" = "$(cap_md5 "$TMP/files/dir/b.bin")" ] || fail "NTFS: b.bin differs"
echo "ok: NTFS clean, files identical"
# Primary and backup GPT (last 33 sectors) identical.
size=$(stat -c %s "$DISK")
cmp -n $((34 * 512)) "$L" "$O" || fail "primary GPT differs"
cmp -i $((size - 33 * 512)) "$L" "$O" || fail "backup GPT differs"
sfdisk --verify "$TMP/out.img" > /dev/null 2>&1 || fail "sfdisk --verify on the output"
cap_detach "$O"

# --all-blocks, converted through qemu-img to qcow2 and compared.
"$P2V" capture "$L" "$TMP/all.img" --all-blocks -q > /dev/null
cmp "$L" "$TMP/all.img" || fail "--all-blocks differs"
qemu-img convert -f raw -O qcow2 "$TMP/all.img" "$TMP/all.qcow2"
qemu-img compare -q "$TMP/all.qcow2" "$DISK" || fail "qemu-img compare: all-blocks differs"
# A dirty NTFS (not shut down cleanly): its bitmap is not trusted.
cap_ntfs_set_dirty "${L}p2"
"$P2V" inspect "$L" --json > "$TMP/dirty.json" 2> "$TMP/dirty.err"
cat "$TMP/dirty.err"
grep -q "partition 2 (ntfs): NTFS: volume is marked dirty" "$TMP/dirty.err" || fail "dirty NTFS not warned"
[ "$(grep -c '"method": "all-sectors"' "$TMP/dirty.json")" = 1 ] || fail "dirty NTFS not copied whole"
echo "PASS"
