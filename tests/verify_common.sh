# Helpers for the verify_*.sh tests: source after lib.sh.
need qemu-system-x86_64 sha256sum python3 grub-mkimage cpio modprobe sfdisk mkfs.ext4 flock
# sample_disk NAME SCRIPT [ARGS...]: a sample disk built by samples/SCRIPT,
# cached in the build tree under a key of the script's content, its
# arguments and the host kernel it packs; prints the path.
sample_disk() {
	local name=$1 script=$P2V_SRC/samples/$2 key dir out
	shift 2
	key=$({ cat "$script"; echo "$*"; ls /boot/vmlinuz-* 2>/dev/null; } | sha256sum | cut -c1-16)
	dir=${P2V_BUILD:-$TMP}/samples
	out=$dir/$name-$key.raw
	mkdir -p "$dir"
	# parallel tests: one builds, the others wait for the finished file
	exec 8>"$out.lock"
	flock 8
	if [ ! -f "$out" ]; then
		bash "$script" "$out.tmp.$$" "$@" >&2 || fail "building the $name sample with $script"
		mv "$out.tmp.$$" "$out"
	fi
	exec 8>&-
	echo "$out"
}
# json_get FILE KEY: a top-level JSON value (the file must parse).
json_get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
