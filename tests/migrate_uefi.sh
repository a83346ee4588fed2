#!/bin/bash
# A UEFI physical machine end to end: the Debian sample installed as on UEFI
# (samples/make-debian-disk.sh --uefi: GPT, ESP with \EFI\debian only, no
# fallback path, AHCI-only initramfs).
#  1. inspect says it boots UEFI and that the fallback path is absent;
#     verify (auto: UEFI, OVMF with a fresh variable store) FAILS with "no
#     boot entry in this firmware and no \EFI\BOOT\BOOTX64.EFI on the ESP",
#     and the image's SHA-256 is unchanged;
#  2. a capture from a read-only loop device is identical to the disk
#     (qemu-img compare: the ESP's FAT used blocks are all there);
#  3. p2v migrate from the loop device PASSES through the QEMU engine with
#     UEFI firmware, its report showing OVMF starting the fallback path;
#  4. the output: qemu-img check, qemu-img compare with p2v's own raw
#     conversion, \EFI\BOOT\BOOTX64.EFI = \EFI\debian\grubx64.efi and a GRUB
#     stub that grub-script-check accepts (mtools), /boot/efi in fstab by
#     UUID, e2fsck -fn clean.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 debootstrap losetup partx qemu-img e2fsck debugfs mcopy python3
[ -r /usr/share/OVMF/OVMF_CODE.fd ] || [ -r /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip "OVMF is not installed"
[ "$(id -u)" -eq 0 ] || skip "loop devices need root"
img=$TMP/debian-uefi.img
sh "$P2V_SRC/samples/make-debian-disk.sh" "$img" --uefi || fail "make-debian-disk.sh --uefi failed"
cd "$TMP"
t0=$(date +%s)

# 1. Before.
"$P2V" inspect --json "$img" > inspect.json
python3 -c '
import json; b = json.load(open("inspect.json"))["boot"]
assert b["firmware"] == "uefi" and b["esp"]["partition"] == 1, b
assert b["esp"]["efi_files"] == ["\\EFI\\debian\\grubx64.efi"] and not b["esp"]["fallback"], b' ||
	fail "inspect: not a UEFI disk with only \\EFI\\debian"
sum=$(sha256sum < "$img")
rc=0
"$P2V" verify -f raw --engine qemu --timeout 600 --json "$img" > before.json 2> before.err || rc=$?
cat before.err
python3 -c '
import json; r = json.load(open("before.json"))
print("before:", r["verdict"], r["reason"])
assert r["firmware"] == "uefi", r
assert r["reason"].startswith("no boot entry in this firmware and no \\EFI\\BOOT\\BOOTX64.EFI on the ESP"), r["reason"]
assert "BdsDxe: failed to load" in r["reason"], r["reason"]' || fail "before: not the no-boot-entry reason"
[ "$rc" -eq 1 ] || fail "before migrate: verify exited $rc, expected 1"
[ "$(sha256sum < "$img")" = "$sum" ] || fail "verify modified the image"
echo "ok: before: FAIL for the missing fallback path, image unchanged ($(( $(date +%s) - t0 )) s)"

# 2. Capture alone, compared with the disk by QEMU's reader.
dev=$(losetup -f --show -r "$img") || skip "no loop device"
trap 'partx -d "$dev" 2>/dev/null || true; losetup -d "$dev"; rm -rf "$TMP"' EXIT
partx -a "$dev" 2>/dev/null || true
"$P2V" capture "$dev" cap.qcow2 > cap.txt 2>&1 || { cat cap.txt; fail "capture"; }
qemu-img compare -f raw -F qcow2 "$img" cap.qcow2 || fail "qemu-img compare: the capture differs from the disk"
rm -f cap.qcow2

# 3. migrate.
t1=$(date +%s)
rc=0; "$P2V" migrate --json --timeout 900 "$dev" out.qcow2 > report.json 2> err.txt || rc=$?
tail -n 25 err.txt
[ "$rc" -eq 0 ] || fail "migrate exit $rc"
python3 -c '
import json; r = json.load(open("report.json"))
assert r["verdict"] == "PASS" and [s["exit"] for s in r["steps"]] == [0, 0, 0], r["steps"]
v = r["verify"]
print("after:", v["verdict"], v["reason"])
assert v["verdict"] == "pass" and v["firmware"] == "uefi" and v["engine"] == "qemu-tcg", v
ms = {m["name"]: m for m in v["milestones"]}
assert ms["EFI boot entry"]["seen"] and "BdsDxe: starting Boot" in ms["EFI boot entry"]["line"], ms
i = r["inject"]
paths = [c["path"] for c in i["changes"]]
assert "ESP:/EFI/BOOT/BOOTX64.EFI" in paths and "ESP:/EFI/BOOT/grub.cfg" in paths, paths
assert i["uefi_fallback"] == "created GRUB from /EFI/debian/grubx64.efi", i["uefi_fallback"]
assert any(c["path"] == "/etc/fstab" and "/boot/efi" in c["change"] for c in i["changes"]), i["changes"]' ||
	fail "migrate report"
echo "ok: migrate PASS ($(( $(date +%s) - t1 )) s)"

# 4. The output.
qemu-img check out.qcow2 | grep -q "No errors" || fail "qemu-img check"
keep_result debian-uefi.qcow2 out.qcow2 # for the test bed's vmm-min UEFI boot (P2V_HWVIRT_UEFI=1)
"$P2V" convert -O raw out.qcow2 flat.raw
qemu-img compare -f qcow2 -F raw out.qcow2 flat.raw || fail "qemu-img compare: QEMU and p2v read the output differently"
esp="flat.raw@@1048576"
mcopy -n -i "$esp" ::/EFI/BOOT/BOOTX64.EFI fallback.efi && mcopy -n -i "$esp" ::/EFI/debian/grubx64.efi grub.efi ||
	fail "ESP files missing"
cmp -s fallback.efi grub.efi || fail "BOOTX64.EFI is not the guest's grubx64.efi"
mcopy -n -i "$esp" ::/EFI/BOOT/grub.cfg stub.cfg || fail "no grub.cfg stub"
cat stub.cfg
if command -v grub-script-check >/dev/null; then grub-script-check stub.cfg || fail "grub-script-check rejects the stub"; fi
root_off=$(( (2048 + 64 * 2048) * 512 ))
lr=$(losetup -f --show -r -o "$root_off" flat.raw)
root_uuid=$(blkid -o value -s UUID "$lr" || true)
debugfs -R "cat /etc/fstab" "$lr" > fstab 2>/dev/null || true
rc=0; e2fsck -fn "$lr" > fsck.txt 2>&1 || rc=$?
losetup -d "$lr"
cat fstab
grep -Eq '^UUID=5A3E-1F20[[:space:]]+/boot/efi[[:space:]]+vfat' fstab || fail "/boot/efi is not in fstab by UUID"
grep -q "search.fs_uuid $root_uuid root" stub.cfg || fail "the stub does not name the root filesystem's UUID ($root_uuid)"
[ "$rc" -eq 0 ] || { cat fsck.txt; fail "e2fsck -fn of the root filesystem: $rc"; }
echo "ok: UEFI sample: FAIL before, PASS after migrate; fallback path from its own GRUB; $(( $(date +%s) - t0 )) s in all"
