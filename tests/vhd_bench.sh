# Benchmark (not part of ctest): p2v convert -O vpc against qemu-img convert
# -O vpc, fixed and dynamic, median of RUNS, each timed up to the output being
# on disk (p2v fsyncs; both get an fsync of the output file after).  Prints times, the speed-up
# and the output sizes.
# usage: P2V=build-rel/p2v/p2v bash tests/vhd_bench.sh [SIZE_MIB] [RUNS]
source "$(dirname "$0")/lib.sh"
need qemu-img python3
size_mib=${1:-2048}
runs=${2:-5}
cd "${BENCH_DIR:-$TMP}"

# Source: a quarter random data, a quarter explicit zeroes (allocated), half holes.
q=$((size_mib / 4))
rm -f src.raw
head -c $((q * 1024 * 1024)) /dev/urandom > src.raw
head -c $((q * 1024 * 1024)) /dev/zero >> src.raw
dd if=/dev/urandom of=src.raw bs=1M seek=$((3 * q)) count=$((q / 8)) conv=notrunc status=none
truncate -s $((size_mib * 1024 * 1024)) src.raw
cat src.raw > /dev/null # warm the page cache for both

t() { # prints "elapsed_seconds cpu_seconds" (elapsed includes the sync)
	local s e
	rm -f out.vhd
	sync
	s=$(date +%s.%N)
	/usr/bin/time -o cpu.t -f "%U %S" "$@" >/dev/null
	sync out.vhd # fsync of the output only: the rest of the system is not ours
	e=$(date +%s.%N)
	echo "$(echo "$e - $s" | bc) $(awk '{print $1 + $2}' cpu.t)"
}
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

for sub in dynamic fixed; do
	: > p.t
	: > q.t
	for i in $(seq "$runs"); do
		t qemu-img convert -f raw -O vpc -o subformat=$sub src.raw out.vhd >> q.t
		qs=$(du -B1 out.vhd | cut -f1)
		t "$P2V" convert -q -f raw -O vpc -o subformat=$sub src.raw out.vhd >> p.t
		ps=$(du -B1 out.vhd | cut -f1)
	done
	qm=$(cut -d' ' -f1 q.t | median)
	pm=$(cut -d' ' -f1 p.t | median)
	qc=$(cut -d' ' -f2 q.t | median)
	pc=$(cut -d' ' -f2 p.t | median)
	echo "$sub: elapsed qemu-img $qm s, p2v $pm s, speed-up $(echo "scale=2; $qm / $pm" | bc)x;" \
		"cpu qemu-img $qc s, p2v $pc s;" \
		"allocated: qemu-img $qs, p2v $ps bytes ($(echo "scale=2; 100 * ($ps - $qs) / $qs" | bc)%)"
done
