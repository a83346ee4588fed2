# Helpers of the cost tests (qcow2_cost.sh, vmdk_cost.sh): source after lib.sh.
# reads CMD...: the read/pread64 system calls CMD makes (strace -f -c), its
# output to $TMP/out; fails when CMD fails with anything but exit 2
# (check's "errors found").
reads() {
	local rc=0
	# LeakSanitizer cannot run under ptrace: leaks are the other tests' job
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" strace -f -qq -c -e trace=pread64,read -o "$TMP/strace" "$@" >"$TMP/out" 2>&1 || rc=$?
	[ "$rc" = 0 ] || [ "$rc" = 2 ] || fail "$* exited $rc: $(tail -n 3 "$TMP/out")"
	awk '$NF == "pread64" || $NF == "read" { s += $4 } END { print s + 0 }' "$TMP/strace"
}
# bounded WHAT N LIMIT: N system calls must stay below LIMIT.
bounded() {
	[[ $2 =~ ^[0-9]+$ ]] || fail "$1: no count of reads"
	[ "$2" -lt "$3" ] || fail "$1: $2 reads, expected fewer than $3"
	echo "ok: $1: $2 reads (< $3)"
}
# same_map IMG [REF]: p2v map --output=json of IMG equals qemu-img map's of
# REF (default IMG), jq-normalised.
same_map() {
	"$P2V" map --output=json "$1" | jq -cS '.[]' >"$TMP/map.p2v"
	qemu-img map --output=json "${2:-$1}" | jq -cS '.[]' >"$TMP/map.qemu"
	diff "$TMP/map.qemu" "$TMP/map.p2v" >/dev/null ||
		fail "$1: map differs from qemu-img's: $(diff "$TMP/map.qemu" "$TMP/map.p2v" | head -n 6)"
	echo "ok: $1: map as qemu-img's ($(wc -l <"$TMP/map.p2v") extents)"
}
