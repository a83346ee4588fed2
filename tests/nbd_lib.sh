# Shared by the NBD tests (sourced after lib.sh): nbdkit servers on
# loopback, killed on exit with $TMP.
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

# serve NAME ARGS...: nbdkit on a free loopback port (tried in turn), its
# pid in $TMP/NAME.pid, the port in $PORT.
serve() {
	local name=$1 p
	shift
	for p in $(shuf -i 20000-60000 -n 20); do
		if nbdkit -i 127.0.0.1 -p "$p" -P "$TMP/$name.pid" "$@" 2>"$TMP/$name.err"; then
			for _ in $(seq 50); do [ -s "$TMP/$name.pid" ] && break; sleep 0.1; done
			PIDS+=("$(cat "$TMP/$name.pid")")
			PORT=$p
			return 0
		fi
	done
	fail "nbdkit would not start: $(cat "$TMP/$name.err")"
}
# stop NAME: kill that nbdkit and wait until it has gone (its stats are
# written on exit).
stop() {
	local pid
	pid=$(cat "$TMP/$1.pid")
	kill "$pid"
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	fail "nbdkit $1 did not exit"
}
