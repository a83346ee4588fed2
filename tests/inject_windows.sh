# p2v inject on a Windows guest, with a fake Windows 7 that libguestfs
# inspection accepts: Windows/System32/{cmd.exe,config/SOFTWARE,config/SYSTEM}
# (hives built from scratch + hivexregedit --merge), on ext4 because that is
# what can be built without mounting (inspection looks at the files, not
# the filesystem type).  Checks: without --virtio-win a clear error; with a
# virtio-win tree the drivers land in System32\drivers and the SYSTEM
# hive has the services and CriticalDeviceDatabase entries (read back with
# hivexget); a non-OS disk is refused.  UEFI: on a GPT disk whose ESP has
# \EFI\Microsoft\Boot\bootmgfw.efi and no fallback path, --dry-run shows the
# copy and changes nothing, inject copies bootmgfw.efi to \EFI\BOOT\BOOTX64.EFI
# (read back with mtools) and inspect sees the fallback path.
. "$(dirname "$0")/lib.sh"
: "${INJECT_TOOL:?INJECT_TOOL must point at unit_inject_tool}"
need hivexregedit hivexget debugfs mkfs.ext4 sfdisk file qemu-img mkfs.vfat mmd mcopy

tree=$TMP/tree
sys32=$tree/Windows/System32
mkdir -p "$sys32/config" "$sys32/drivers"
"$INJECT_TOOL" pe "$sys32/cmd.exe"
"$INJECT_TOOL" hive "$sys32/config/SOFTWARE"
"$INJECT_TOOL" hive "$sys32/config/SYSTEM"
cat >"$TMP/software.reg" <<'EOF'
Windows Registry Editor Version 5.00

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft]

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows NT]

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows NT\CurrentVersion]
"ProductName"="Windows 7 Professional"
"CurrentVersion"="6.1"
"InstallationType"="Client"
EOF
cat >"$TMP/system.reg" <<'EOF'
Windows Registry Editor Version 5.00

[HKEY_LOCAL_MACHINE\SYSTEM\Select]
"Current"=dword:00000001

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001]

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services]

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\Tcpip]
"Start"=dword:00000001

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control]

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\ComputerName]

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\ComputerName\ComputerName]
"ComputerName"="P2V-WIN7"
EOF
hivexregedit --merge --prefix 'HKEY_LOCAL_MACHINE\SOFTWARE' "$sys32/config/SOFTWARE" "$TMP/software.reg"
hivexregedit --merge --prefix 'HKEY_LOCAL_MACHINE\SYSTEM' "$sys32/config/SYSTEM" "$TMP/system.reg"

# mkdisk OUT TREE: MBR + one ext4 partition at sector 2048 holding TREE.
mkdisk() {
	truncate -s 64M "$1"
	printf 'label: dos\nstart=2048, type=7, bootable\n' | sfdisk -q "$1"
	truncate -s 63M "$TMP/part.img"
	mkfs.ext4 -q -F -d "$2" "$TMP/part.img"
	dd if="$TMP/part.img" of="$1" bs=1M seek=1 conv=notrunc,sparse status=none
	rm -f "$TMP/part.img"
}
# As qcow2: p2v's probe names the format, libguestfs is told it.
mkdisk "$TMP/win7.raw" "$tree"
img=$TMP/win7.qcow2
qemu-img convert -f raw -O qcow2 "$TMP/win7.raw" "$img"

# A virtio-win tree as on virtio-win.iso (file contents are stand-ins).
vw=$TMP/virtio-win
for d in viostor:viostor vioscsi:vioscsi NetKVM:netkvm; do
	dir=$vw/${d%%:*}/w7/amd64
	mkdir -p "$dir"
	for ext in sys inf cat; do echo "${d#*:}.$ext for w7 amd64" >"$dir/${d#*:}.$ext"; done
done

# 1. Without --virtio-win: a clear error, nothing changed.
sum=$(sha256sum <"$img")
rc=0
"$P2V" inject "$img" >"$TMP/out" 2>&1 || rc=$?
[ $rc -eq 2 ] || { cat "$TMP/out"; fail "Windows without --virtio-win: exit $rc, expected 2"; }
grep -q "needs --virtio-win DIR" "$TMP/out" || { cat "$TMP/out"; fail "error does not say --virtio-win is needed"; }
grep -q "NT 6.1" "$TMP/out" || fail "error does not name the Windows version"
[ "$(sha256sum <"$img")" = "$sum" ] || fail "a refused inject changed the image"
echo "ok (refused): $(tail -n 1 "$TMP/out")"

# 2. With the tree.
"$P2V" inject --json --virtio-win "$vw" "$img" >"$TMP/out" 2>"$TMP/err" ||
	{ cat "$TMP/err"; fail "inject --virtio-win failed"; }
grep -q '"format": "qcow2"' "$TMP/out" || { cat "$TMP/out"; fail "format not qcow2"; }
grep -q '"os_type": "windows"' "$TMP/out" && grep -q '"major_version": 6' "$TMP/out" &&
	grep -q '"minor_version": 1' "$TMP/out" || { cat "$TMP/out"; fail "not inspected as Windows 6.1"; }
qemu-img check -q "$img" || fail "qemu-img check after inject"
qemu-img convert -O raw "$img" "$TMP/after.raw"
dd if="$TMP/after.raw" of="$TMP/part.img" bs=1M skip=1 status=none
get() { debugfs -R "dump $1 $2" "$TMP/part.img" 2>/dev/null; [ -s "$2" ] || fail "$1 missing in the guest"; }
get /Windows/System32/drivers/viostor.sys "$TMP/viostor.sys"
cmp -s "$TMP/viostor.sys" "$vw/viostor/w7/amd64/viostor.sys" || fail "viostor.sys content differs"
get /Windows/System32/drivers/netkvm.sys "$TMP/netkvm.sys"
get /Windows/Drivers/VirtIO/viostor.inf "$TMP/viostor.inf"
get /Windows/System32/config/SYSTEM "$TMP/SYSTEM"
get /Windows/System32/config/SYSTEM.p2v-orig "$TMP/SYSTEM.orig"
cmp -s "$TMP/SYSTEM.orig" "$sys32/config/SYSTEM" || fail "SYSTEM.p2v-orig is not the original hive"
svc='\ControlSet001\Services\viostor'
[ "$(hivexget "$TMP/SYSTEM" "$svc" Start)" = 0 ] || fail "viostor Start is not 0"
[ "$(hivexget "$TMP/SYSTEM" "$svc" Type)" = 1 ] || fail "viostor Type is not 1"
[ "$(hivexget "$TMP/SYSTEM" "$svc" Group)" = "SCSI miniport" ] || fail "viostor Group"
[ "$(hivexget "$TMP/SYSTEM" "$svc" ImagePath)" = 'system32\drivers\viostor.sys' ] || fail "viostor ImagePath"
cdd='\ControlSet001\Control\CriticalDeviceDatabase\pci#ven_1af4&dev_1001&subsys_00021af4&rev_00'
[ "$(hivexget "$TMP/SYSTEM" "$cdd" Service)" = viostor ] || fail "CriticalDeviceDatabase Service"
[ "$(hivexget "$TMP/SYSTEM" "$cdd" ClassGUID)" = '{4D36E97B-E325-11CE-BFC1-08002BE10318}' ] ||
	fail "CriticalDeviceDatabase ClassGUID"
[ "$(hivexget "$TMP/SYSTEM" '\ControlSet001\Services\Tcpip' Start)" = 1 ] || fail "existing key lost"
echo "ok: drivers copied, SYSTEM hive has viostor/vioscsi and CriticalDeviceDatabase entries"

# 3. A disk without an operating system.
mkdir -p "$TMP/data/docs" && echo hello >"$TMP/data/docs/readme"
mkdisk "$TMP/data.img" "$TMP/data"
rc=0
"$P2V" inject "$TMP/data.img" >"$TMP/out" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "no operating system found" "$TMP/out" ||
	{ cat "$TMP/out"; fail "a disk without an OS: exit $rc"; }
echo "ok (refused): $(tail -n 1 "$TMP/out")"

# 4. UEFI: Windows on GPT with an ESP holding only the boot manager's own path.
truncate -s 32M "$TMP/esp.img"
mkfs.vfat -F 16 "$TMP/esp.img" >/dev/null
mmd -i "$TMP/esp.img" ::/EFI ::/EFI/Microsoft ::/EFI/Microsoft/Boot
head -c 65536 /dev/urandom >"$TMP/bootmgfw.efi"
mcopy -i "$TMP/esp.img" "$TMP/bootmgfw.efi" ::/EFI/Microsoft/Boot/bootmgfw.efi
mcopy -i "$TMP/esp.img" "$TMP/bootmgfw.efi" ::/EFI/Microsoft/Boot/BCD
uefi=$TMP/win-uefi.raw
truncate -s 128M "$uefi"
printf 'label: gpt\nstart=2048, size=65536, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=67584, size=126976, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n' |
	sfdisk -q "$uefi"
dd if="$TMP/esp.img" of="$uefi" bs=1M seek=1 conv=notrunc status=none
truncate -s 62M "$TMP/part.img"
mkfs.ext4 -q -F -d "$tree" "$TMP/part.img"
dd if="$TMP/part.img" of="$uefi" bs=1M seek=33 conv=notrunc,sparse status=none
rm -f "$TMP/part.img"
esp_at="$uefi@@1048576"
sum=$(sha256sum <"$uefi")
"$P2V" inject --dry-run --virtio-win "$vw" "$uefi" >"$TMP/out" 2>"$TMP/err" || { cat "$TMP/err"; fail "UEFI --dry-run"; }
grep -q '^  ESP:/EFI/BOOT/BOOTX64.EFI: would copy from ESP:/EFI/Microsoft/Boot/bootmgfw.efi$' "$TMP/out" ||
	{ cat "$TMP/out"; fail "UEFI --dry-run does not show the fallback copy"; }
[ "$(sha256sum <"$uefi")" = "$sum" ] || fail "UEFI --dry-run changed the image"
"$P2V" inject --json --virtio-win "$vw" "$uefi" >"$TMP/out" 2>"$TMP/err" || { cat "$TMP/err"; fail "UEFI inject"; }
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["uefi_fallback"] == "created Windows Boot Manager from /EFI/Microsoft/Boot/bootmgfw.efi", r["uefi_fallback"]
assert any(c["path"] == "ESP:/EFI/BOOT/BOOTX64.EFI" for c in r["changes"]), r["changes"]' "$TMP/out" ||
	{ cat "$TMP/out"; fail "UEFI inject report"; }
mcopy -n -i "$esp_at" ::/EFI/BOOT/BOOTX64.EFI "$TMP/fallback.efi" || fail "no \\EFI\\BOOT\\BOOTX64.EFI on the ESP"
cmp -s "$TMP/fallback.efi" "$TMP/bootmgfw.efi" || fail "BOOTX64.EFI is not bootmgfw.efi"
"$P2V" inspect --json "$uefi" | grep -q '"fallback": true' || fail "inspect does not see the fallback path"
echo "ok: UEFI Windows: bootmgfw.efi became \\EFI\\BOOT\\BOOTX64.EFI; the dry run left the image alone"
