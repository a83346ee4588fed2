#!/bin/bash
# migrate_variants.sh VARIANT FORMAT: the "physical" Debian sample in one of
# its variants (gpt, lvm, dracut; samples/make-debian-disk.sh) cannot boot on
# virtio before (p2v verify fails with the root-not-found reason); p2v migrate
# from a read-only loop device to FORMAT passes; the result is clean for
# qemu-img check (where it checks the format) and e2fsck -fn of its root
# filesystem, and was the same after an inject --dry-run.
. "$(dirname "$0")/lib.sh"
variant=${1:?variant}
format=${2:?format}
need qemu-system-x86_64 debootstrap grub-mkimage losetup partx qemu-img e2fsck sfdisk python3
[ "$(id -u)" -eq 0 ] || skip "loop devices need root"
[ "$variant" != lvm ] || need pvs lvs vgs
export LVM_SUPPRESS_FD_WARNINGS=1
img=$TMP/debian-$variant.img
sh "$P2V_SRC/samples/make-debian-disk.sh" "$img" "--$variant" || fail "make-debian-disk.sh --$variant failed"
cd "$TMP"

# 1. Before: no virtio in the initramfs, so no root on a virtio disk.
rc=0
"$P2V" verify -f raw --engine qemu --timeout 900 "$img" > before.txt 2>&1 || rc=$?
tail -n 12 before.txt
[ "$rc" -eq 1 ] || fail "before migrate: verify exited $rc, expected 1"
grep -Eq '^verdict: FAIL: (initramfs could not find the root device|the system dropped to emergency mode)' before.txt ||
	fail "before migrate: not the root-not-found reason"

# 2. inject --dry-run on a copy changes nothing.
cp --sparse=always "$img" dry.img
sum=$(sha256sum < dry.img)
"$P2V" inject --dry-run dry.img > dry.txt 2>&1 || { cat dry.txt; fail "inject --dry-run"; }
[ "$(sha256sum < dry.img)" = "$sum" ] || fail "inject --dry-run changed the image"
rm -f dry.img

# 3. migrate from a read-only loop device.
dev=$(losetup -f --show -r "$img") || skip "no loop device"
trap 'partx -d "$dev" 2>/dev/null || true; losetup -d "$dev"; rm -rf "$TMP"' EXIT
partx -a "$dev" 2>/dev/null || true
out=out.$format
rc=0; "$P2V" migrate --json --timeout 900 -O "$format" "$dev" "$out" > report.json 2> err.txt || rc=$?
tail -n 20 err.txt
[ "$rc" -eq 0 ] || fail "migrate exit $rc"
python3 -c '
import json, sys; r = json.load(open("report.json"))
assert r["verdict"] == "PASS" and r["format"] == sys.argv[1], r
assert r["verify"]["verdict"] == "pass", r["verify"]
assert r["inject"]["changes"], r["inject"]' "$format" || fail "JSON report"
qemu-img info "$out" | grep -q "^file format: $format" || fail "output is not $format"
case $format in qcow2 | vmdk) qemu-img check "$out" > check.txt 2>&1 || { cat check.txt; fail "qemu-img check"; } ;; esac
keep_result "$variant.$format" "$out"

# 4. The root filesystem is clean.
"$P2V" convert -O raw "$out" flat.raw
root_offset() { # the root filesystem's byte offset in flat.raw
	if [ "$variant" = lvm ]; then
		local pv lp pe ext first
		pv=$(sfdisk --json flat.raw | python3 -c '
import json, sys
p = [x for x in json.load(sys.stdin)["partitiontable"]["partitions"] if x["type"] == "8e"][0]
print(p["start"] * 512, p["size"] * 512)')
		lp=$(losetup -f --show -r -o "${pv% *}" --sizelimit "${pv#* }" flat.raw)
		pe=$(pvs --devices "$lp" --noheadings --units b --nosuffix -o pe_start "$lp" | tr -d ' ')
		ext=$(vgs --devices "$lp" --noheadings --units b --nosuffix -o vg_extent_size p2vvg | tr -d ' ')
		first=$(lvs --devices "$lp" --noheadings -o seg_pe_ranges p2vvg/root | sed 's/.*:\([0-9]*\)-.*/\1/')
		losetup -d "$lp"
		echo $(( ${pv% *} + pe + first * ext ))
	else
		echo $(( 2048 * 512 ))
	fi
}
off=$(root_offset)
lr=$(losetup -f --show -r -o "$off" flat.raw)
label=$(e2label "$lr" 2>/dev/null || true)
rc=0; e2fsck -fn "$lr" > fsck.txt 2>&1 || rc=$?
losetup -d "$lr"
[ "$label" = debian-root ] || fail "no root filesystem at offset $off (label '$label')"
[ "$rc" -eq 0 ] || { cat fsck.txt; fail "e2fsck -fn of the root filesystem: $rc"; }
echo "ok: $variant sample -> $format: failed before, PASS after migrate, e2fsck clean"
