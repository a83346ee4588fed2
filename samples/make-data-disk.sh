#!/bin/sh
# make-data-disk.sh OUT [SIZE_MIB] [FILL_DIR]
# A "used" raw disk without mounting: random garbage everywhere (as on a disk
# that has lived), an MBR with one ext4 partition at sector 2048 populated
# from FILL_DIR (default /usr/share/doc) with mkfs.ext4 -d, a few files
# written and deleted.  Needs: e2fsprogs, fdisk (sfdisk), coreutils.
set -eu
out=$1
size_mib=${2:-256}
fill=${3:-/usr/share/doc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Garbage in what will be free space: a lived-in disk is never zero.
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$out.tmp"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$out.tmp"
part_sectors=$(( size_mib * 2048 - 2048 ))
# The partition image starts as garbage too, then mkfs writes only metadata.
dd if="$out.tmp" of="$tmp/part.img" bs=512 skip=2048 count=$part_sectors status=none
mkdir -p "$tmp/root/data"
cp -a "$fill/." "$tmp/root/data/" 2>/dev/null || true
head -c 3000000 /dev/urandom > "$tmp/root/data/random.bin"
mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=0 -L p2v-sample -d "$tmp/root" "$tmp/part.img" >/dev/null
# Write then delete a file: its blocks keep their content but are free.
debugfs -w -R "write /etc/services deleted.txt" "$tmp/part.img" >/dev/null 2>&1
debugfs -w -R "rm deleted.txt" "$tmp/part.img" >/dev/null 2>&1
dd if="$tmp/part.img" of="$out.tmp" bs=512 seek=2048 conv=notrunc status=none
mv "$out.tmp" "$out"
