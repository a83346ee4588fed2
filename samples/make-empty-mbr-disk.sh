#!/bin/bash
# make-empty-mbr-disk.sh OUT [--size-mib N]
# A disk with an MBR partition table (one empty Linux partition) and no boot
# code at all: the firmware must report that there is nothing to boot.
set -euo pipefail

usage() { echo "usage: $0 OUT [--size-mib N]" >&2; exit 2; }
[ $# -ge 1 ] || usage
OUT=$1; shift
SIZE_MIB=8
while [ $# -gt 0 ]; do
	case $1 in
	--size-mib) [ $# -ge 2 ] || usage; SIZE_MIB=$2; shift ;;
	*) usage ;;
	esac
	shift
done

TMPOUT=$OUT.tmp.$$
rm -f "$TMPOUT"
truncate -s $((SIZE_MIB * 1024 * 1024)) "$TMPOUT"
echo "2048,,83" | sfdisk -q --label dos "$TMPOUT"
mv -f "$TMPOUT" "$OUT"
