#!/bin/bash
# p2v migrate end to end: the "physical" Debian sample (boots on AHCI only)
# on a read-only loop device -> qcow2 with virtio drivers -> boot verdict
# PASS; the result is clean for qemu-img check and e2fsck.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 debootstrap grub-mkimage losetup partx qemu-img e2fsck python3
[ "$(id -u)" -eq 0 ] || skip "loop devices need root"
img=$TMP/debian.img
sh "$P2V_SRC/samples/make-debian-disk.sh" "$img" || fail "make-debian-disk.sh failed"
dev=$(losetup -f --show -r "$img") || skip "no loop device"
trap 'partx -d "$dev" 2>/dev/null || true; losetup -d "$dev"; rm -rf "$TMP"' EXIT
partx -a "$dev" 2>/dev/null || true
cd "$TMP"
rc=0; "$P2V" migrate --json --timeout 900 "$dev" out.qcow2 > report.json 2> err.txt || rc=$?
tail -n 30 err.txt
cat report.json
[ "$rc" -eq 0 ] || fail "migrate exit $rc"
python3 -c '
import json; r=json.load(open("report.json"))
assert r["verdict"]=="PASS" and r["output"]=="out.qcow2", r
assert [s["exit"] for s in r["steps"]]==[0,0,0], r
# one report: what was captured, what changed in the guest, the boot evidence
assert any(p["filesystem"]=="ext4" and p["method"]!="all-sectors" for p in r["capture"]["partitions"]), r["capture"]
assert r["inject"]["initramfs_tool"] and any(c["path"]=="/etc/fstab" for c in r["inject"]["changes"]), r["inject"]
assert r["verify"]["verdict"]=="pass" and r["verify"]["engine"], r["verify"]' || fail "JSON report"
qemu-img check out.qcow2 | grep -q "No errors" || fail "qemu-img check"
ls -A | grep -q p2v-migrate && fail "temporary file left"
keep_result debian.qcow2 out.qcow2
echo "ok: migrate from a loop device to a verified qcow2"
