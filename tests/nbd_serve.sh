#!/bin/bash
# p2v serve: execs nbdkit read-only with TLS-PSK (a new 0600 key), prints the
# line for the conversion host (p2v migrate); its source and target, given to
# p2v capture (migrate's first step; a boot is too slow here), make an image
# equal to the served disk (qemu-img compare); a disk mounted read-write is
# refused; the served export is read-only (nbdinfo).
. "$(dirname "$0")/lib.sh"
command -v nbdkit >/dev/null 2>&1 || skip "nbdkit is not installed"
need qemu-img nbdinfo findmnt

SPID=
cleanup() {
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
export TMPDIR=$TMP

D=$TMP/disk.raw
truncate -s 32M "$D"
head -c 2M /dev/urandom | dd of="$D" bs=1M seek=3 conv=notrunc status=none

for port in $(shuf -i 20000-60000 -n 20); do
	"$P2V" serve --bind 127.0.0.1 --port "$port" "$D" >"$TMP/serve.out" 2>"$TMP/serve.err" &
	SPID=$!
	for _ in $(seq 50); do
		grep -q "p2v migrate" "$TMP/serve.out" 2>/dev/null && nbdinfo --size \
			"nbds://p2v@127.0.0.1:$port/?tls-psk-file=$(ls "$TMP"/p2v-serve-*.psk 2>/dev/null | head -n 1)" \
			>/dev/null 2>&1 && break
		kill -0 "$SPID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$SPID" 2>/dev/null && break
	SPID=
done
[ -n "$SPID" ] || fail "p2v serve would not start: $(cat "$TMP/serve.err")"
cat "$TMP/serve.out"
key=$(ls "$TMP"/p2v-serve-*.psk)
[ "$(stat -c %a "$key")" = 600 ] || fail "the key file is not mode 0600"
grep -Eq '^p2v:[0-9a-f]{64}$' "$key" || fail "the key file is not p2v:<64 hex digits>"
grep -q "$(cut -d: -f2 "$key")" "$TMP/serve.out" "$TMP/serve.err" && fail "the key itself was printed"
[ "$(ps -o comm= -p "$SPID")" = nbdkit ] || fail "p2v serve did not exec nbdkit: $(ps -o args= -p "$SPID")"
ps -o args= -p "$SPID" | grep -q -- " -r " || fail "nbdkit is not read-only: $(ps -o args= -p "$SPID")"

line=$(sed -n 's/^  p2v migrate //p' "$TMP/serve.out")
[ -n "$line" ] || fail "no conversion line printed"
uri=$(printf '%s' "$line" | sed "s/^'\([^']*\)'.*/\1/")
[ "$(nbdinfo --json "$uri" | jq -r '.exports[0]."is_read_only"')" = true ] || fail "the export is writable"
[ "$(nbdinfo --size "$uri")" = 33554432 ] || fail "nbdinfo size of the export"
eval "\"\$P2V\" capture -q $(printf '%s' "$line" | sed "s|OUTPUT.qcow2|$TMP/out.qcow2|")" ||
	fail "the printed line failed"
qemu-img compare -f raw "$D" "$TMP/out.qcow2" >/dev/null || fail "the served copy differs"
echo "ok: the printed migrate line's source and target, captured (migrate without the boot), equal"

# Without the key: refused (TLS required).
expect_fail "no key" "$P2V" info "${uri%%\?*}"
expect_fail "plain NBD to a TLS-only server" "$P2V" info "nbd://127.0.0.1:$(echo "$uri" | sed 's|.*:\([0-9]*\)/.*|\1|')/"

# A disk mounted read-write is refused (the root filesystem's, when it is a block device).
root=$(findmnt -no SOURCE / 2>/dev/null || true)
if [ -b "$root" ] && findmnt -no OPTIONS / | grep -q '^rw'; then
	expect_fail "serving the root filesystem's disk" "$P2V" serve --dry-run "$root"
	out=$("$P2V" serve --dry-run "$root" 2>&1) || true
	echo "$out" | grep -q "mounted read-write" || fail "the refusal does not say why: $out"
else
	echo "note: / is not on a block device here; the mounted check is not exercised"
fi
echo "PASS"
