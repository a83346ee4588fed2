#!/bin/bash
# p2v inspect's "boot" findings against the tools that built the disks:
# GPT or MBR from sfdisk, ESPs from mkfs.vfat (FAT12/16/32) and mtools
# (long and short names, mixed case, three levels), the EFI binaries p2v
# lists compared with mdir's listing of the same ESP; the fallback path,
# hybrids (BIOS boot code too), a damaged GPT; and verify's refusals that
# need no boot (--engine vmm with UEFI firmware, a bad --firmware).
. "$(dirname "$0")/lib.sh"
need sfdisk mkfs.vfat mmd mcopy mdir python3
x=$TMP/x.efi
echo "not really an EFI binary" >"$x"

# mkesp IMG MIB FATBITS: an ESP with Debian's shim set, Windows' boot
# manager and clutter that is not an EFI binary.
mkesp() {
	truncate -s "$2M" "$1"
	mkfs.vfat -F "$3" "$1" >/dev/null
	mmd -i "$1" ::/EFI ::/EFI/debian ::/EFI/Microsoft ::/EFI/Microsoft/Boot ::/EFI/Tools
	for f in shimx64.efi grubx64.efi mmx64.efi fbx64.efi BOOTX64.CSV grub.cfg; do
		mcopy -i "$1" "$x" "::/EFI/debian/$f"
	done
	mcopy -i "$1" "$x" ::/EFI/Microsoft/Boot/bootmgfw.efi
	mcopy -i "$1" "$x" ::/EFI/Microsoft/Boot/BCD
	mcopy -i "$1" "$x" ::/EFI/Tools/SHELL.EFI
	mcopy -i "$1" "$x" ::/startup.nsh
}
# mkdisk IMG LABEL ESPTYPE ESP: a 96 MiB disk, the ESP at 1 MiB, a Linux
# partition after it.
mkdisk() {
	truncate -s 96M "$1"
	printf 'label: %s\nstart=2048, size=%d, type=%s\nstart=%d, type=%s\n' "$2" \
		$(( $(stat -c %s "$4") / 512 )) "$3" $(( 2048 + $(stat -c %s "$4") / 512 )) \
		"$([ "$2" = gpt ] && echo 0FC63DAF-8483-4772-8E79-3D69D8477DE4 || echo 83)" | sfdisk -q "$1"
	dd if="$4" of="$1" bs=1M seek=1 conv=notrunc status=none
}
# expected IMG ESP: the .efi files under \EFI (three levels), as mtools lists them.
expected() {
	mdir -/ -b -i "$1" ::/EFI | sed -n 's|^::/|\\|p' | tr '/' '\\' | grep -i '\.efi$' |
		awk -F'\\' 'NF <= 5' | sort
}
boot_json() { "$P2V" inspect --json "$1" | python3 -c '
import json, sys
b = json.load(sys.stdin)["boot"]
e = b.get("esp", {})
print(b["firmware"], e.get("fallback"), e.get("problem", ""))
for f in sorted(e.get("efi_files", [])): print(f)'; }
check() { # check WHAT IMG ESP FIRMWARE FALLBACK
	local got want
	got=$(boot_json "$2")
	want=$(printf '%s %s \n%s' "$4" "$5" "$(expected "$3")")
	[ "$got" = "$want" ] || { echo "got:"; echo "$got"; echo "want:"; echo "$want"; fail "$1"; }
	echo "ok: $1: $(echo "$got" | head -n 1), $(( $(echo "$got" | wc -l) - 1 )) EFI binaries as mdir lists them"
}

for bits in 32 16 12; do
	case $bits in 32) mib=40 ;; 16) mib=20 ;; *) mib=4 ;; esac
	mkesp "$TMP/esp$bits.img" $mib $bits
	mkdisk "$TMP/gpt$bits.img" gpt C12A7328-F81F-11D2-BA4B-00A0C93EC93B "$TMP/esp$bits.img"
	check "GPT, FAT$bits ESP" "$TMP/gpt$bits.img" "$TMP/esp$bits.img" uefi False
done
"$P2V" inspect "$TMP/gpt32.img" | grep -q '^boot: UEFI: no BIOS boot code; EFI system partition 1 holds .*\\EFI\\debian\\shimx64.efi.*; fallback \\EFI\\BOOT\\BOOTX64.EFI absent$' ||
	{ "$P2V" inspect "$TMP/gpt32.img"; fail "inspect's boot line"; }

# The fallback path, in the case Windows writes it.
mmd -i "$TMP/esp32.img" ::/EFI/Boot
mcopy -i "$TMP/esp32.img" "$x" ::/EFI/Boot/bootx64.efi
mkdisk "$TMP/fb.img" gpt C12A7328-F81F-11D2-BA4B-00A0C93EC93B "$TMP/esp32.img"
check "GPT with the fallback path" "$TMP/fb.img" "$TMP/esp32.img" uefi True

# BIOS boot code in the protective MBR as well: a hybrid.
cp "$TMP/fb.img" "$TMP/hybrid.img"
printf '\xfa\xf4' | dd of="$TMP/hybrid.img" conv=notrunc status=none
check "hybrid" "$TMP/hybrid.img" "$TMP/esp32.img" hybrid True

# An MBR disk with an EF partition.
mkdisk "$TMP/mbr.img" dos ef "$TMP/esp16.img"
check "MBR, type EF" "$TMP/mbr.img" "$TMP/esp16.img" uefi False

# A damaged primary GPT header: the backup is read (as firmware does) and
# the report says so; both damaged: no ESP is trusted.
cp "$TMP/gpt16.img" "$TMP/bad.img"
printf 'X' | dd of="$TMP/bad.img" bs=1 seek=$(( 512 + 40 )) conv=notrunc status=none
check "damaged primary GPT" "$TMP/bad.img" "$TMP/esp16.img" uefi False
"$P2V" inspect --json "$TMP/bad.img" | grep -q '"table_problem": "GPT: primary header CRC mismatch; the backup was read"' ||
	fail "damaged GPT: not reported"
printf 'X' | dd of="$TMP/bad.img" bs=1 seek=$(( 96 * 1048576 - 512 + 40 )) conv=notrunc status=none
"$P2V" inspect --json "$TMP/bad.img" | python3 -c '
import json, sys
b = json.load(sys.stdin)["boot"]
assert b["firmware"] == "none" and "esp" not in b, b
assert b["table_problem"] == "GPT: primary header CRC mismatch, backup header CRC mismatch", b' || fail "both GPT headers damaged"
echo "ok: damaged GPT headers reported"

# verify refuses what it cannot run, before booting (exit 2).
rc=0; "$P2V" verify "$TMP/gpt32.img" --engine vmm --firmware uefi > "$TMP/vmm.out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || { cat "$TMP/vmm.out"; fail "--engine vmm --firmware uefi: exit $rc, expected 2"; }
grep -Eq 'not built into|vmm-min cannot start UEFI firmware' "$TMP/vmm.out" || { cat "$TMP/vmm.out"; fail "no reason"; }
echo "ok (refused): $(tail -n 1 "$TMP/vmm.out")"
expect_fail "--firmware bogus" "$P2V" verify "$TMP/gpt32.img" --firmware bogus
echo "ok: the boot probe agrees with sfdisk, mkfs.vfat and mtools"
