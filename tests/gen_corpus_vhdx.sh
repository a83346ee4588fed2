#!/bin/bash
# Seed corpus for fuzz_vhdx, generated at test time (fresh VHDX files are
# 4+ MiB: too big for the repository).  Each image is packed as fuzz_vhdx.c
# expects: the 320 KiB header area, a 16-byte map, then the first 80 KiB of
# up to 8 following MiBs that are not all zero (keeping inputs under
# libFuzzer's 1 MiB max_len), the map naming which MiB each piece came from.
# Usage: gen_corpus_vhdx.sh [OUTDIR] (default $P2V_BUILD/corpus/vhdx)
set -euo pipefail
out=${1:-${P2V_BUILD:?}/corpus/vhdx}
: "${P2V:?}" "${P2V_BUILD:?}"
command -v qemu-img >/dev/null || { echo "FAIL: qemu-img is not installed (scripts/install-deps installs it)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/vhdx-corpus.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

pack() { # pack IMAGE NAME [FLAGBYTE]
	local img=$1 dst=$out/$2 flag=${3:-'\x00'} mib k map="" n=0
	mib=$(( $(stat -c %s "$img") / 1048576 ))
	head -c $((320 * 1024)) "$img" > "$dst"
	: > "$work/pieces"
	for k in $(seq 1 $((mib - 1))); do
		[ "$n" -lt 8 ] || break
		dd if="$img" bs=1K skip=$((k * 1024)) count=80 status=none > "$work/piece"
		cmp -s "$work/piece" <(head -c 81920 /dev/zero) && continue
		cat "$work/piece" >> "$work/pieces"
		map+=$(printf '\\x%02x' "$k")
		n=$((n + 1))
	done
	for k in $(seq "$n" 14); do map+='\x00'; done
	printf "$map$flag" >> "$dst"
	cat "$work/pieces" >> "$dst"
}

raw=$work/r.raw
head -c 1200000 /dev/urandom > "$raw"
truncate -s 2M "$raw"
qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=1M "$raw" "$work/qd.vhdx"
qemu-img convert -f raw -O vhdx -o subformat=fixed,block_size=1M "$raw" "$work/qf.vhdx"
qemu-img create -q -f vhdx -o block_size=1M "$work/qe.vhdx" 2M
"$P2V" convert -q -f raw -O vhdx -o block_size=1M "$raw" "$work/pd.vhdx"
"$P2V" convert -q -f raw -O vhdx -o subformat=fixed,block_size=1M,logical_sector_size=4096 "$raw" "$work/pf.vhdx"
"$P2V_BUILD/tests/unit_vhdx" mklog "$work/pd.vhdx" "$work/pl.vhdx" 1048576
for i in qd qf qe pd pf pl; do pack "$work/$i.vhdx" "$i"; done
# the same with "recompute checksums" set (see fuzz_vhdx.c), for deeper mutation
for i in qd pl; do pack "$work/$i.vhdx" "$i-crc" '\x80'; done
# and two short raw inputs: the header area alone, and a torn first header
head -c $((320 * 1024)) "$work/qd.vhdx" > "$out/head"
head -c $((70 * 1024)) "$work/pd.vhdx" > "$out/short"
echo "generated $(ls "$out" | wc -l) seeds in $out"
