# p2v inject end to end on the "physical" Debian sample: it boots on AHCI
# and not on virtio; --dry-run changes nothing; after p2v inject its
# initramfs carries virtio_blk, fstab and grub.cfg name UUIDs, the root
# filesystem is clean and it boots to login: on a virtio disk.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 debootstrap grub-mkimage sfdisk mkfs.ext4 debugfs e2fsck \
	lsinitramfs blkid sha256sum
[ "$(id -u)" -eq 0 ] || skip "debootstrap needs root"

img=$TMP/debian.img
sh "$P2V_SRC/samples/make-debian-disk.sh" "$img" || fail "make-debian-disk.sh failed"

# boot_until LOG SECONDS PATTERN QEMU-ARGS...: true once PATTERN is on the
# serial console; the guest is stopped then or at the deadline.
boot_until() {
	local log=$1 secs=$2 pat=$3 pid waited=0
	shift 3
	qemu-system-x86_64 -accel tcg -m 1024 -nodefaults -display none -no-reboot \
		-serial "file:$log" "$@" &
	pid=$!
	while [ $waited -lt "$secs" ] && kill -0 $pid 2>/dev/null; do
		if grep -aq "$pat" "$log" 2>/dev/null; then
			kill $pid; wait $pid 2>/dev/null || true
			return 0
		fi
		sleep 2
		waited=$((waited + 2))
	done
	kill $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	grep -aq "$pat" "$log" 2>/dev/null
}
ahci() { echo -device ahci,id=ahci -drive "if=none,id=d,file=$1,format=raw,snapshot=on" -device ide-hd,drive=d,bus=ahci.0; }
virtio() { echo -drive "if=virtio,file=$1,format=raw,snapshot=on"; }

# 1. The sample is a physical install: login on AHCI, initramfs shell on virtio.
boot_until "$TMP/ahci.log" 300 "login:" $(ahci "$img") &
ahci_pid=$!
boot_until "$TMP/virtio-before.log" 300 "does not exist" $(virtio "$img") ||
	{ tail -n 20 "$TMP/virtio-before.log"; fail "before inject: no initramfs failure on virtio"; }
grep -aq "ALERT!" "$TMP/virtio-before.log" || fail "before inject: no ALERT! on virtio"
wait $ahci_pid || { tail -n 20 "$TMP/ahci.log"; fail "the sample does not boot to login: on AHCI"; }
echo "ok: sample boots on AHCI, drops to the initramfs shell on virtio"

# 2. --dry-run reports and changes nothing.
sum_before=$(sha256sum <"$img")
"$P2V" inject --dry-run "$img" >"$TMP/dry.out" 2>"$TMP/dry.err" ||
	{ cat "$TMP/dry.err"; fail "inject --dry-run failed"; }
grep -q "would rebuild" "$TMP/dry.out" || fail "dry run does not say it would rebuild the initramfs"
grep -q "/etc/fstab: would change '/dev/sda1" "$TMP/dry.out" || fail "dry run does not show the fstab change"
[ "$(sha256sum <"$img")" = "$sum_before" ] || fail "--dry-run changed the image"
echo "ok: --dry-run changed nothing"

# 3. The injection.
"$P2V" inject --json "$img" >"$TMP/inject.json" 2>"$TMP/inject.err" ||
	{ cat "$TMP/inject.err"; fail "inject failed"; }
grep -q '"initramfs_tool": "initramfs-tools"' "$TMP/inject.json" || fail "initramfs tool not reported"
grep -q 'virtio_blk.ko' "$TMP/inject.json" || fail "inject does not report virtio_blk in the initramfs"
[ "$(sha256sum <"$img")" != "$sum_before" ] || fail "inject did not change the image"

# 4. Look inside with tools nobody here wrote: the root partition out of the disk.
start=$(sfdisk -d "$img" | sed -n 's/.*1 : start= *\([0-9]*\), size= *\([0-9]*\).*/\1/p')
size=$(sfdisk -d "$img" | sed -n 's/.*1 : start= *\([0-9]*\), size= *\([0-9]*\).*/\2/p')
dd if="$img" of="$TMP/root.img" bs=512 skip="$start" count="$size" conv=sparse status=none
e2fsck -fn "$TMP/root.img" >"$TMP/fsck.log" 2>&1 || { cat "$TMP/fsck.log"; fail "e2fsck -fn: root not clean"; }
uuid=$(blkid -o value -s UUID "$TMP/root.img")
debugfs -R "cat /etc/fstab" "$TMP/root.img" 2>/dev/null >"$TMP/fstab"
grep -q "^UUID=$uuid / ext4" "$TMP/fstab" || { cat "$TMP/fstab"; fail "fstab root is not UUID=$uuid"; }
! grep -q "^/dev/sd" "$TMP/fstab" || fail "fstab still names /dev/sd*"
debugfs -R "cat /etc/fstab.p2v-orig" "$TMP/root.img" 2>/dev/null | grep -q "^/dev/sda1 /" ||
	fail "no backup /etc/fstab.p2v-orig with the original"
debugfs -R "cat /boot/grub/grub.cfg" "$TMP/root.img" 2>/dev/null >"$TMP/grub.cfg"
grep -q "root=UUID=$uuid" "$TMP/grub.cfg" || fail "grub.cfg has no root=UUID=$uuid"
! grep -q "root=/dev/sd" "$TMP/grub.cfg" || fail "grub.cfg still has root=/dev/sd*"
kver=$(debugfs -R "ls -p /lib/modules" "$TMP/root.img" 2>/dev/null | awk -F/ '$6 ~ /^[0-9]/ {print $6}' | head -n 1)
[ -n "$kver" ] || fail "no kernel in /lib/modules"
debugfs -R "dump /boot/initrd.img-$kver $TMP/initrd" "$TMP/root.img" 2>/dev/null
debugfs -R "dump /boot/initrd.img-$kver.p2v-orig $TMP/initrd.orig" "$TMP/root.img" 2>/dev/null
lsinitramfs "$TMP/initrd" >"$TMP/initrd.list"
lsinitramfs "$TMP/initrd.orig" >"$TMP/initrd.orig.list"
grep -q "ahci.ko" "$TMP/initrd.orig.list" || fail "cannot list the original initramfs"
! grep -q "virtio_blk.ko" "$TMP/initrd.orig.list" || fail "the sample already had virtio_blk"
for m in virtio_blk virtio_scsi virtio_pci virtio_net virtio_console ahci; do
	grep -q "/$m.ko" "$TMP/initrd.list" || fail "initramfs of $kver lacks $m"
done
echo "ok: initramfs of $kver carries virtio, fstab and grub.cfg use UUID=$uuid, e2fsck clean"

# 5. It boots on virtio now.
boot_until "$TMP/virtio-after.log" 400 "login:" $(virtio "$img") ||
	{ tail -n 30 "$TMP/virtio-after.log"; fail "after inject: no login: on virtio"; }
! grep -aq "ALERT!" "$TMP/virtio-after.log" || fail "after inject: initramfs shell on virtio"
echo "ok: boots to login: on virtio after p2v inject"
