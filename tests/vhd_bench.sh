# Benchmark (not part of ctest): p2v convert -O vpc against qemu-img convert
# -O vpc, fixed and dynamic, median of RUNS, each timed up to the data being
# on disk (p2v fsyncs; qemu-img gets a sync).  Prints times, the speed-up
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

t() { # prints seconds
	local s e
	rm -f out.vhd
	sync
	s=$(date +%s.%N)
	"$@" >/dev/null
	sync
	e=$(date +%s.%N)
	echo "$e - $s" | bc
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
	qm=$(median < q.t)
	pm=$(median < p.t)
	echo "$sub: qemu-img $qm s, p2v $pm s, speed-up $(echo "scale=2; $qm / $pm" | bc)x;" \
		"allocated: qemu-img $qs, p2v $ps bytes ($(echo "scale=2; 100 * ($ps - $qs) / $qs" | bc)%)"
done
