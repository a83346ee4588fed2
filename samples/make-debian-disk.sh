#!/bin/sh
# make-debian-disk.sh OUT [--gpt | --lvm | --dracut | --uefi]
# A "physical" Debian 12 install as a raw 2 GiB sparse disk, built with no
# interactive step and without mounting anything:
#   debootstrap (minbase + kernel, initramfs-tools, systemd-sysv, udev, kmod,
#   e2fsprogs, grub-pc) -> mkfs.ext4 -d -> dd at the partition offset.
# Like a machine installed on bare metal with an AHCI controller:
#   - the initramfs is built with MODULES=list and only ahci, sd_mod, ext4
#     (no virtio anywhere), so it cannot find its root on a virtio disk;
#   - /etc/fstab and the kernel command line name /dev/sda1 (root, ext4) and
#     /dev/sda2 (swap);
#   - console=ttyS0 with a serial getty there; root has an empty password.
# Variants:
#   --gpt     GPT with a BIOS boot partition (core.img there);
#   --lvm     MBR with /boot on /dev/sda1 and root and swap as logical volumes
#             p2vvg/root and p2vvg/swap (lvm2 in the guest, root named
#             /dev/mapper/p2vvg-root); the LVM metadata is written with
#             activation off (no device-mapper needed on the build host) and
#             the filesystems are dd'd at the volumes' extents;
#   --dracut  the initramfs built by dracut instead of initramfs-tools, with
#             drivers= limited to the AHCI disk and ext4 (like hostonly);
#   --uefi    as Debian installs it on a UEFI machine: GPT, an EFI system
#             partition (FAT32, /dev/sda1 on /boot/efi), root /dev/sda2,
#             swap /dev/sda3; grub-efi-amd64 instead of grub-pc, its image in
#             \EFI\debian\grubx64.efi only (what `grub-install` writes without
#             --removable: no \EFI\BOOT\BOOTX64.EFI fallback, so only the
#             machine's NVRAM boot entry finds it), built like grub-install
#             does (a core image whose embedded load.cfg finds /boot/grub by
#             the root filesystem's UUID; modules in /boot/grub/x86_64-efi).
#             The ESP is written with mtools (nothing mounted); no MBR code.
# GRUB for BIOS without grub-install: grub-mkimage's core.img in the MBR gap
# (or in a BIOS boot partition with --gpt), the first 440 bytes of boot.img
# in the MBR.
# debootstrap takes about 2 minutes, so the finished disk is cached under
# $P2V_SAMPLE_CACHE (default /var/cache/p2v-samples), keyed by the sha256 of
# this script and the options.  Needs root, network access to the Debian
# mirror apt uses, debootstrap, grub-pc-bin, e2fsprogs, fdisk (and lvm2 and
# losetup for --lvm; dosfstools and mtools for --uefi).
set -eu
out=${1:?usage: make-debian-disk.sh OUT [--gpt | --lvm | --dracut | --uefi]}
variant=${2:-}
case $variant in
"" | --gpt | --lvm | --dracut | --uefi) ;;
*) echo "make-debian-disk.sh: unknown variant '$variant'" >&2; exit 2 ;;
esac
label=dos
case $variant in --gpt | --uefi) label=gpt ;; esac
name=$label
[ -n "$variant" ] && name=${variant#--}
cache=${P2V_SAMPLE_CACHE:-/var/cache/p2v-samples}
key=$( (cat "$0"; echo "$variant") | sha256sum | cut -c1-16)
cached="$cache/debian12-$name-$key.img"

# One builder per variant at a time: a second one (parallel tests) waits and
# then copies what the first cached.
mkdir -p "$cache"
exec 9>"$cache/.debian12-$name.lock"
flock 9
if [ -f "$cached" ]; then
	cp --sparse=always "$cached" "$out"
	exit 0
fi

disk_mib=2048
root_mib=1792
boot_mib=256 # --lvm: the /boot partition; the rest is the physical volume
esp_mib=64   # --uefi: the ESP in front of the root filesystem
[ "$variant" = --uefi ] && root_mib=$(( root_mib - esp_mib ))
root_start=2048
[ "$variant" = --uefi ] && root_start=$(( 2048 + esp_mib * 2048 ))
swap_start=$(( root_start + root_mib * 2048 ))
swap_sectors=$(( disk_mib * 2048 - swap_start - 2048 )) # room for the GPT backup
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/p2v-debian.XXXXXX")
loop=
cleanup() { [ -z "$loop" ] || losetup -d "$loop" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
root=$tmp/root
in_root() { LC_ALL=C DEBIAN_FRONTEND=noninteractive chroot "$root" "$@"; }

# 1. The base system.  The kernel and grub-pc come after the initramfs and
#    debconf settings are in place, so the initramfs is built once, our way.
tool=initramfs-tools
[ "$variant" = --dracut ] && tool=dracut
extra=
[ "$variant" = --lvm ] && extra=,lvm2
debootstrap --variant=minbase \
	--include=$tool,systemd-sysv,udev,kmod,e2fsprogs$extra \
	bookworm "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
	{ tail -n 30 "$tmp/debootstrap.log" >&2; exit 1; }

if [ $tool = dracut ]; then
	cat >"$root/etc/dracut.conf.d/p2v-physical.conf" <<'EOF'
# what a host-only image of this AHCI machine carries: no virtio
hostonly="no"
drivers=" ahci libahci sd_mod ext4 "
compress="gzip"
EOF
else
	cat >"$root/etc/initramfs-tools/conf.d/p2v-physical.conf" <<'EOF'
MODULES=list
FSTYPE=ext4
COMPRESS=gzip
EOF
	printf 'ahci\nsd_mod\next4\n' >>"$root/etc/initramfs-tools/modules"
	[ "$variant" = --lvm ] && printf 'dm_mod\n' >>"$root/etc/initramfs-tools/modules"
fi
in_root debconf-set-selections <<'EOF'
grub-pc grub-pc/install_devices multiselect
grub-pc grub-pc/install_devices_empty boolean true
grub-pc grub-pc/install_devices_disks_changed multiselect
EOF
grub_pkg=grub-pc
[ "$variant" = --uefi ] && grub_pkg=grub-efi-amd64
in_root apt-get install -y -q --no-install-recommends linux-image-amd64 $grub_pkg \
	>"$tmp/apt.log" 2>&1 || { tail -n 30 "$tmp/apt.log" >&2; exit 1; }
in_root apt-get clean

kver=$(ls "$root/lib/modules" | head -n 1)
[ -f "$root/boot/initrd.img-$kver" ] || { echo "no initramfs for $kver" >&2; exit 1; }

# 2. The configuration of a machine installed on /dev/sda.
rootdev=/dev/sda1
if [ "$variant" = --lvm ]; then
	rootdev=/dev/mapper/p2vvg-root
	cat >"$root/etc/fstab" <<'EOF'
# <file system> <mount point> <type> <options> <dump> <pass>
/dev/mapper/p2vvg-root / ext4 errors=remount-ro 0 1
/dev/sda1 /boot ext4 defaults 0 2
/dev/mapper/p2vvg-swap none swap sw 0 0
EOF
elif [ "$variant" = --uefi ]; then
	rootdev=/dev/sda2
	cat >"$root/etc/fstab" <<'EOF'
# <file system> <mount point> <type> <options> <dump> <pass>
/dev/sda2 / ext4 errors=remount-ro 0 1
/dev/sda1 /boot/efi vfat umask=0077 0 1
/dev/sda3 none swap sw 0 0
EOF
	mkdir -p "$root/boot/efi"
else
	cat >"$root/etc/fstab" <<'EOF'
# <file system> <mount point> <type> <options> <dump> <pass>
/dev/sda1 / ext4 errors=remount-ro 0 1
/dev/sda2 none swap sw 0 0
EOF
fi
echo p2v-debian >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tp2v-debian\n' >"$root/etc/hosts"
in_root passwd -d root >/dev/null
ln -sf /lib/systemd/system/serial-getty@.service \
	"$root/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"
sed -i -e 's/^GRUB_TIMEOUT=.*/GRUB_TIMEOUT=0/' \
	-e 's/^GRUB_CMDLINE_LINUX_DEFAULT=.*/GRUB_CMDLINE_LINUX_DEFAULT=""/' \
	-e 's/^GRUB_CMDLINE_LINUX=.*/GRUB_CMDLINE_LINUX="console=ttyS0"/' \
	"$root/etc/default/grub"
grep -q '^GRUB_DISABLE_OS_PROBER' "$root/etc/default/grub" ||
	echo 'GRUB_DISABLE_OS_PROBER=true' >>"$root/etc/default/grub"

# grub-mkconfig cannot probe a disk that is not there: write grub.cfg as
# an installer that knew the disk as (hd0,1) and the root device would.
# With a separate /boot (--lvm) GRUB's paths are relative to that partition.
part=msdos1
[ $label = gpt ] && part=gpt1
[ "$variant" = --uefi ] && part=gpt2
bootdir=/boot
[ "$variant" = --lvm ] && bootdir=
# dracut waits for a missing root for minutes by default (rd.retry 180 s,
# systemd's device timeout 90 s); a physical install would never notice
retry=
[ $tool = dracut ] && retry=" rd.retry=20 rd.timeout=30"
grub_target=i386-pc
[ "$variant" = --uefi ] && grub_target=x86_64-efi
grub_lib=/usr/lib/grub/$grub_target
[ "$variant" = --uefi ] && grub_lib=$root$grub_lib # the guest's own grub-efi-amd64-bin
mkdir -p "$root/boot/grub/$grub_target"
cp "$grub_lib/"*.mod "$grub_lib/"*.lst "$root/boot/grub/$grub_target/"
cat >"$root/boot/grub/grub.cfg" <<EOF
# written by make-debian-disk.sh (as grub-mkconfig on the physical machine)
set timeout=0
set default=0
insmod part_msdos
insmod part_gpt
insmod ext2
set root='hd0,$part'
menuentry 'Debian GNU/Linux' {
	insmod gzio
	linux $bootdir/vmlinuz-$kver root=$rootdev ro console=ttyS0 quiet$retry
	initrd $bootdir/initrd.img-$kver
}
EOF

# 3. The disk: partition table, filesystems from the tree, swap, GRUB.
# put IMAGE BYTE_OFFSET: copy a filesystem image into the disk, sparse.
put() {
	[ $(( $2 % 1048576 )) -eq 0 ] || { echo "offset $2 is not MiB-aligned" >&2; exit 1; }
	dd if="$1" of="$tmp/disk.img" bs=1M seek=$(( $2 / 1048576 )) conv=notrunc,sparse status=none
}
# fs_image FILE MIB DIR LABEL [MKFS_OPTION...]: ext4 of that size holding DIR.
fs_image() {
	f=$1 mib=$2 dir=$3 fslabel=$4
	shift 4
	truncate -s "${mib}M" "$f"
	mkfs.ext4 -q -F -L "$fslabel" -E lazy_itable_init=0 "$@" -d "$dir" "$f"
}
# swap_at BYTE_OFFSET BYTES
swap_at() {
	truncate -s "$2" "$tmp/swap.img"
	mkswap -q -L debian-swap "$tmp/swap.img"
	dd if="$tmp/swap.img" of="$tmp/disk.img" bs=512 seek=$(( $1 / 512 )) conv=notrunc,sparse status=none
	rm -f "$tmp/swap.img"
}
# lvm_cmd: LVM on the loop device only, with no device-mapper, no backups
# and nothing remembered on the build host.
export LVM_SUPPRESS_FD_WARNINGS=1
lvm_cmd() {
	"$@" --devices "$loop" \
		--config 'global { activation = 0 } backup { backup = 0 archive = 0 }' \
		>/dev/null 2>"$tmp/lvm.log" || { cat "$tmp/lvm.log" >&2; exit 1; }
}
# lv_offset LV: byte offset of the volume's first extent inside the PV.
lv_offset() {
	pe_start=$(pvs --devices "$loop" --noheadings --units b --nosuffix -o pe_start "$loop" | tr -d ' ')
	extent=$(vgs --devices "$loop" --noheadings --units b --nosuffix -o vg_extent_size p2vvg | tr -d ' ')
	first=$(lvs --devices "$loop" --noheadings -o seg_pe_ranges "p2vvg/$1" | sed 's/.*:\([0-9]*\)-.*/\1/')
	echo $(( pe_start + first * extent ))
}

truncate -s ${disk_mib}M "$tmp/disk.img"
case $variant in
--gpt)
	sfdisk -q "$tmp/disk.img" <<EOF
label: gpt
first-lba: 34
start=2048, size=$(( root_mib * 2048 )), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
start=$swap_start, size=$swap_sectors, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F
start=34, size=2014, type=21686148-6449-6E61-6E6F-744E656564EF
EOF
	fs_image "$tmp/root.img" $root_mib "$root" debian-root
	put "$tmp/root.img" 1048576
	swap_at $(( swap_start * 512 )) $(( swap_sectors * 512 )) ;;
--uefi)
	sfdisk -q "$tmp/disk.img" <<EOF
label: gpt
start=2048, size=$(( esp_mib * 2048 )), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI System Partition"
start=$root_start, size=$(( root_mib * 2048 )), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
start=$swap_start, size=$swap_sectors, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F
EOF
	# grub-install --target=x86_64-efi (no --removable, no shim): a core
	# image whose load.cfg finds /boot/grub by UUID, into \EFI\debian only.
	root_uuid=$(cat /proc/sys/kernel/random/uuid)
	cat >"$tmp/load.cfg" <<EOF
search.fs_uuid $root_uuid root hd0,gpt2
set prefix=(\$root)'/boot/grub'
EOF
	cp "$tmp/load.cfg" "$root/boot/grub/x86_64-efi/load.cfg"
	# grub-install also puts the font there that grub-mkconfig's gfxterm loads
	mkdir -p "$root/boot/grub/fonts"
	cp "$root/usr/share/grub/unicode.pf2" "$root/boot/grub/fonts/"
	in_root grub-mkimage -O x86_64-efi -o /tmp/grubx64.efi -c /boot/grub/x86_64-efi/load.cfg \
		-p '' part_gpt ext2 search_fs_uuid
	mv "$root/tmp/grubx64.efi" "$tmp/grubx64.efi"
	fs_image "$tmp/root.img" $root_mib "$root" debian-root -U "$root_uuid"
	put "$tmp/root.img" $(( root_start * 512 ))
	truncate -s ${esp_mib}M "$tmp/esp.img"
	mkfs.vfat -F 32 -n EFI -i 5A3E1F20 "$tmp/esp.img" >/dev/null
	mmd -i "$tmp/esp.img" ::/EFI ::/EFI/debian
	mcopy -i "$tmp/esp.img" "$tmp/grubx64.efi" ::/EFI/debian/grubx64.efi
	put "$tmp/esp.img" 1048576
	rm -f "$tmp/esp.img"
	swap_at $(( swap_start * 512 )) $(( swap_sectors * 512 )) ;;
--lvm)
	pv_start=$(( 2048 + boot_mib * 2048 ))
	sfdisk -q "$tmp/disk.img" <<EOF
label: dos
start=2048, size=$(( boot_mib * 2048 )), type=83, bootable
start=$pv_start, type=8e
EOF
	pv_bytes=$(( (disk_mib * 2048 - pv_start) * 512 ))
	loop=$(losetup -f --show -o $(( pv_start * 512 )) --sizelimit $pv_bytes "$tmp/disk.img")
	lvm_cmd pvcreate -q "$loop"
	lvm_cmd vgcreate -q -s 4M p2vvg "$loop"
	lvm_cmd lvcreate -q -an -Zn -L 1536M -n root p2vvg
	lvm_cmd lvcreate -q -an -Zn -L 128M -n swap p2vvg
	root_off=$(( pv_start * 512 + $(lv_offset root) ))
	swap_off=$(( pv_start * 512 + $(lv_offset swap) ))
	losetup -d "$loop"
	loop=
	mv "$root/boot" "$tmp/boot"
	mkdir "$root/boot"
	fs_image "$tmp/root.img" 1536 "$root" debian-root
	put "$tmp/root.img" $root_off
	rm -f "$tmp/root.img"
	fs_image "$tmp/root.img" $boot_mib "$tmp/boot" debian-boot
	put "$tmp/root.img" 1048576
	swap_at $swap_off $(( 128 * 1048576 )) ;;
*)
	sfdisk -q "$tmp/disk.img" <<EOF
label: dos
start=2048, size=$(( root_mib * 2048 )), type=83, bootable
start=$swap_start, size=$swap_sectors, type=82
EOF
	fs_image "$tmp/root.img" $root_mib "$root" debian-root
	put "$tmp/root.img" 1048576
	swap_at $(( swap_start * 512 )) $(( swap_sectors * 512 )) ;;
esac
rm -f "$tmp/root.img"

if [ "$variant" = --uefi ]; then # no BIOS boot code: the protective MBR stays empty
	cp --sparse=always "$tmp/disk.img" "$cached.tmp.$$" && mv "$cached.tmp.$$" "$cached"
	mv "$tmp/disk.img" "$out"
	exit 0
fi
core_sector=1
[ $label = gpt ] && core_sector=34
prefix="(hd0,$part)/boot/grub"
[ "$variant" = --lvm ] && prefix="(hd0,$part)/grub"
grub-mkimage -O i386-pc -o "$tmp/core.img" -p "$prefix" \
	biosdisk part_msdos part_gpt ext2 normal linux configfile search gzio
core_sectors=$(( ($(stat -c %s "$tmp/core.img") + 511) / 512 ))
[ $(( core_sector + core_sectors )) -le 2048 ] || { echo "core.img too big" >&2; exit 1; }
# le64 helper for the two sector numbers GRUB's images carry.
le64() { printf "$(printf '\\%03o\\%03o\\%03o\\%03o\\000\\000\\000\\000' \
	$(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)))"; }
if [ $core_sector -ne 1 ]; then
	# diskboot.img's block list (end of core.img's first sector) names the
	# sector after it; boot.img names core.img's first sector at 0x5c.
	le64 $(( core_sector + 1 )) | dd of="$tmp/core.img" bs=1 seek=500 conv=notrunc status=none
fi
dd if="$tmp/core.img" of="$tmp/disk.img" bs=512 seek=$core_sector conv=notrunc status=none
dd if=/usr/lib/grub/i386-pc/boot.img of="$tmp/disk.img" bs=440 count=1 conv=notrunc status=none
[ $core_sector -eq 1 ] ||
	le64 $core_sector | dd of="$tmp/disk.img" bs=1 seek=$((0x5c)) conv=notrunc status=none

cp --sparse=always "$tmp/disk.img" "$cached.tmp.$$" && mv "$cached.tmp.$$" "$cached"
mv "$tmp/disk.img" "$out"
