#!/bin/bash
# Hostile VHDX files through the CLI: each is refused with a one-line error
# naming the field, a non-zero exit and no sanitizer report.
source "$(dirname "$0")/lib.sh"

mkrandom "$TMP/in.raw" $((2 * 1024 * 1024))
truncate -s 8M "$TMP/in.raw"
good=$TMP/good.vhdx
"$P2V" convert -q -f raw -O vhdx -o block_size=1M "$TMP/in.raw" "$good"
"$P2V" info "$good" >/dev/null || fail "the unmodified image does not open"

MIB=1048576
META=$((2 * MIB)) # layout of p2v-made images: log at 1 MiB, metadata 2 MiB, BAT 3 MiB
poke() { # poke FILE OFFSET HEXBYTES...
	local f=$1 off=$2; shift 2
	printf "$(printf '\\x%s' "$@")" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}
variant() { cp "$good" "$TMP/$1.vhdx"; echo "$TMP/$1.vhdx"; }
refuse() { # refuse FILE EXPECTED-TEXT WHAT
	local f=$1 text=$2 what=$3 out
	expect_fail "$what (info)" "$P2V" info "$f"
	expect_fail "$what (convert)" "$P2V" convert -q -O raw "$f" "$TMP/out.raw"
	out=$("$P2V" info "$f" 2>&1 | grep -v "^p2v: warning: " || true)
	[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "$what: error is not one line: $out"
	grep -q -- "$text" <<<"$out" || fail "$what: error lacks '$text': $out"
}

f=$(variant hdr); poke "$f" $((64 * 1024 + 200)) ff; poke "$f" $((128 * 1024 + 200)) ff
refuse "$f" "header 1: checksum 0x.* does not match computed CRC-32C" "both headers corrupt"

f=$(variant rt); poke "$f" $((192 * 1024 + 300)) ff; poke "$f" $((256 * 1024 + 300)) ff
refuse "$f" "no valid region table: table 1: checksum" "both region tables corrupt"

f=$(variant bs); poke "$f" $((META + 65536)) 00 00 30 00
refuse "$f" "block size 3145728 is not a power of two" "block size 3 MiB"

f=$(variant lss); poke "$f" $((META + 65536 + 32)) 00 00 02 00
refuse "$f" "logical sector size 131072" "logical sector size"

f=$(variant req); poke "$f" $((META + 32 + 4 * 32)) 99 99 99 99
refuse "$f" "unknown required item" "unknown required metadata item"

f=$(variant mrange); poke "$f" $((META + 32 + 16)) 00 00 30 00
refuse "$f" "outside the metadata region" "metadata item out of range"

f=$(variant trunc); truncate -s $(( $(stat -c %s "$good") - MIB )) "$f"
refuse "$f" "BAT entry 1: block at file offset .* extends past the end of the file" "truncated image"

f=$(variant tiny); truncate -s 100000 "$f"
refuse "$f" "header log offset 1048576 length 1048576 must be" "image cut inside the header area"

f=$(variant bat); poke "$f" $((3 * MIB + 8)) 06 00 00 00 00 00 00 00
refuse "$f" "BAT entry 1: block at file offset 0 (1048576 bytes) lies in the 1 MiB header area" "BAT entry pointing at the headers"
echo "all hostile images refused"
