#!/bin/bash
# make-tiny-disk.sh OUT [--no-virtio] [--write-root] [--getty] [--marker TEXT] [--size-mib N]
#
# A tiny bootable BIOS disk, built without mounting anything:
#   MBR (GRUB boot.img, 440 bytes) | GRUB core.img at sector 1 |
#   one ext4 partition at sector 2048 holding /boot/vmlinuz (the host's Debian
#   kernel), /boot/initrd.img (busybox-static) and /boot/grub.
# The initramfs loads the virtio modules, waits for /dev/vda1, prints the
# marker on the serial console and powers off.  With --no-virtio the modules
# are left out, so the init waits for the root device in vain and fails the
# way initramfs-tools does ("ALERT!  /dev/vda1 does not exist.  Dropping to a
# shell!").  With --write-root the init mounts the root read-write, writes a
# file, prints no marker and stays up: only its disk writes tell that it runs.
# With --getty it ends like an installed system: busybox getty on ttyS0
# showing "tiny login: ".
# Needs: linux-image-amd64, busybox-static, grub-pc-bin, kmod, cpio,
# e2fsprogs, fdisk.
set -euo pipefail

usage() { echo "usage: $0 OUT [--no-virtio] [--write-root] [--getty] [--marker TEXT] [--size-mib N]" >&2; exit 2; }
[ $# -ge 1 ] || usage
OUT=$1; shift
VIRTIO=1
WRITE_ROOT=0
GETTY=0
MARKER=P2V-TINY-OK
SIZE_MIB=64
while [ $# -gt 0 ]; do
	case $1 in
	--no-virtio) VIRTIO=0 ;;
	--write-root) WRITE_ROOT=1 ;;
	--getty) GETTY=1 ;;
	--marker) [ $# -ge 2 ] || usage; MARKER=$2; shift ;;
	--size-mib) [ $# -ge 2 ] || usage; SIZE_MIB=$2; shift ;;
	*) usage ;;
	esac
	shift
done
case $MARKER in *[\"\\\$\`]*) echo "$0: the marker must not contain quotes, \\, \$ or \`" >&2; exit 2 ;; esac

KERNEL=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
[ -n "$KERNEL" ] || { echo "$0: no /boot/vmlinuz-* (install linux-image-amd64)" >&2; exit 2; }
KVER=${KERNEL#/boot/vmlinuz-}
GRUBDIR=/usr/lib/grub/i386-pc
[ -f $GRUBDIR/boot.img ] || { echo "$0: no $GRUBDIR/boot.img (install grub-pc-bin)" >&2; exit 2; }
BUSYBOX=$(command -v busybox) || { echo "$0: no busybox (install busybox-static)" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/p2v-tiny.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# ---- initramfs ----
INITRD=$WORK/initrd
mkdir -p "$INITRD"/{bin,dev,proc,sys,modules,root}
cp "$BUSYBOX" "$INITRD/bin/busybox"
ln -s busybox "$INITRD/bin/sh"

copy_module() { # copy one module, decompressed, keep the load order
	local src=$1 n=$2 base
	base=$(basename "$src")
	case $src in
	*.ko.xz) xz -dc "$src" > "$INITRD/modules/$n-${base%.xz}" ;;
	*.ko.zst) zstd -qdc "$src" > "$INITRD/modules/$n-${base%.zst}" ;;
	*.ko.gz) gzip -dc "$src" > "$INITRD/modules/$n-${base%.gz}" ;;
	*) cp "$src" "$INITRD/modules/$n-$base" ;;
	esac
}
# The filesystem driver is always there; the disk driver only with virtio.
MODULES="ext4"
[ $VIRTIO = 0 ] || MODULES="$MODULES virtio_pci virtio_blk"
n=10
for m in $(modprobe -a -S "$KVER" --show-depends $MODULES | awk '$1 == "insmod" { print $2 }' | awk '!seen[$0]++'); do
	copy_module "$m" $n
	n=$((n + 1))
done

cat > "$INITRD/init" <<EOF
#!/bin/sh
/bin/busybox --install -s /bin
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "Loading, please wait..."
for m in /modules/*.ko; do
	[ -e "\$m" ] && insmod "\$m" 2>/dev/null
done
ROOT=/dev/vda1
echo "Begin: Waiting for root file system ... "
i=0
while [ ! -b "\$ROOT" ] && [ \$i -lt 30 ]; do
	sleep 0.1
	i=\$((i + 1))
done
if [ ! -b "\$ROOT" ]; then
	echo "Gave up waiting for root file system device.  Common problems:"
	echo " - Boot args (cat /proc/cmdline)"
	echo " - Missing modules (cat /proc/modules; ls /dev)"
	echo "ALERT!  \$ROOT does not exist.  Dropping to a shell!"
	echo
	PS1='(initramfs) ' exec sh </dev/console >/dev/console 2>&1
fi
echo "root device \$ROOT found: \$(cat /sys/class/block/vda/size) sectors on vda"
echo "cpus online: \$(nproc)"
if [ $WRITE_ROOT = 1 ]; then
	mount -t ext4 "\$ROOT" /root || { echo "mount: cannot mount \$ROOT"; exec sh; }
	date > /root/p2v-was-here
	sync
	echo "root filesystem written; staying up"
	exec sleep 100000
fi
mount -t ext4 -o ro "\$ROOT" /root || { echo "mount: cannot mount \$ROOT"; exec sh; }
[ -f /root/boot/vmlinuz ] && echo "$MARKER"
if [ $GETTY = 1 ]; then
	hostname tiny
	mkdir -p /etc
	echo "P2V tiny (busybox getty)" > /etc/issue
	exec getty -L 115200 ttyS0 vt100
fi
umount /root
poweroff -f
EOF
chmod 755 "$INITRD/init"
(cd "$INITRD" && find . | sort | cpio -o -H newc --quiet -R 0:0) | gzip -9n > "$WORK/initrd.img"

# ---- root filesystem (a partition image) ----
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS/boot/grub/i386-pc"
cp "$KERNEL" "$ROOTFS/boot/vmlinuz"
cp "$WORK/initrd.img" "$ROOTFS/boot/initrd.img"
cp $GRUBDIR/*.mod $GRUBDIR/*.lst "$ROOTFS/boot/grub/i386-pc/"
cat > "$ROOTFS/boot/grub/grub.cfg" <<EOF
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=0
set default=0
menuentry 'p2v tiny' {
	echo 'Loading Linux $KVER ...'
	linux /boot/vmlinuz root=/dev/vda1 ro console=ttyS0,115200
	echo 'Loading initial ramdisk ...'
	initrd /boot/initrd.img
}
EOF

PART_START=2048
DISK_SECTORS=$((SIZE_MIB * 2048))
PART_SECTORS=$((DISK_SECTORS - PART_START))
mkfs.ext4 -q -F -L p2vtiny -d "$ROOTFS" "$WORK/part.img" $((PART_SECTORS / 2))k >/dev/null

# ---- GRUB core image ----
grub-mkimage -O i386-pc -d $GRUBDIR -p '(hd0,msdos1)/boot/grub' -o "$WORK/core.img" \
	biosdisk part_msdos ext2 normal linux boot configfile serial terminal echo test
CORE_SECTORS=$((($(stat -c %s "$WORK/core.img") + 511) / 512))
[ $CORE_SECTORS -lt $PART_START ] || { echo "$0: core.img of $CORE_SECTORS sectors does not fit before sector $PART_START" >&2; exit 1; }

# ---- assemble the disk ----
TMPOUT=$OUT.tmp.$$
rm -f "$TMPOUT"
truncate -s $((DISK_SECTORS * 512)) "$TMPOUT"
echo "$PART_START,$PART_SECTORS,83,*" | sfdisk -q --label dos "$TMPOUT"
dd if=$GRUBDIR/boot.img of="$TMPOUT" bs=440 count=1 conv=notrunc status=none
dd if="$WORK/core.img" of="$TMPOUT" bs=512 seek=1 conv=notrunc status=none
dd if="$WORK/part.img" of="$TMPOUT" bs=512 seek=$PART_START conv=notrunc,sparse status=none
mv -f "$TMPOUT" "$OUT"
