#!/usr/bin/env bash
# Makes the "Scale" table of BENCHMARKS.md: for each size (events; 10 registrations per event,
# as many users as events) it seeds a fresh DATA_DIR through the embedded store
# (eventide-load -seed-scale), starts the server on it and measures
#   - start-up: the server's startup_ms log line (first start on the seeded directory);
#   - idle RSS: VmRSS of the server process 10 s after it is healthy, no request made;
#   - cold events page WITH totalCount: purgeCache before every request (it empties both the
#     data cache and the response cache; the purge is timed apart), 1 worker;
#   - the same page without totalCount (to tell the exact count's growth from the rest's);
#   - cold event detail with its first 10 attendees, as the admin, purgeCache before each, 1 worker;
#   - registerForEvent p50/p99 at 8 workers (the register-cancel scenario's "register" row);
#   - RSS under load: the largest RSS sampled during those runs;
#   - file size: DATA_DIR on disk after the server has stopped.
# Each run is repeated RUNS times and the median printed. Needs jq. Run it alone: the load tool and
# the server share the machine's cores.
#
#   scripts/scale-bench.sh                      # 1 000, 10 000 and 100 000 events, RUNS=3 × 10 s
#   RUNS=1 DURATION=5s scripts/scale-bench.sh 1000
#
# The server: the release binary, APP_ENV=development (memory cache, admin from ADMIN_EMAIL),
# throttles raised out of reach as in load-bench.sh (the tool's traffic all comes from one
# address). The first start logs at info (for startup_ms); the measured runs are on a second
# start at LOG_LEVEL=warn (no access line per request). Raw reports and logs are kept in $OUT.
set -euo pipefail

RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
PORT=${PORT:-18091}
OUT=${OUT:-$(mktemp -d -t eventide-scale.XXXXXX)}
sizes=("$@")
if [ ${#sizes[@]} -eq 0 ]; then
	sizes=(1000 10000 100000)
fi
command -v jq >/dev/null || { echo "scale-bench: needs jq" >&2; exit 2; }

cd "$(dirname "$0")/.."
mkdir -p "$OUT"
go build -o "$OUT/eventide" .
go build -o "$OUT/eventide-load" ./cmd/eventide-load
url="http://127.0.0.1:$PORT/graphql"
server=

start_server() { # $1 data dir, $2 log level, $3 log file
	APP_ENV=development PORT=$PORT DATA_DIR="$1" LOG_LEVEL=$2 \
		THROTTLE_LIMIT=1000000000 LOGIN_THROTTLE_LIMIT=1000000000 SIGNUP_THROTTLE_LIMIT=1000000000 BRUTE_FORCE_THRESHOLD=1000000000 \
		WS_MAX_CONNECTIONS_PER_CLIENT=20000 \
		ADMIN_EMAIL=admin@eventide.local ADMIN_PASSWORD=eventide-admin \
		"$OUT/eventide" >"$3" 2>&1 &
	server=$!
	for _ in $(seq 600); do
		curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
		kill -0 "$server" 2>/dev/null || { echo "scale-bench: server exited; see $3" >&2; exit 1; }
		sleep 0.1
	done
	echo "scale-bench: server not healthy after 60 s; see $3" >&2
	exit 1
}
stop_server() {
	if [ -n "$server" ]; then
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
		server=
	fi
}
trap stop_server EXIT

load() { # $1 output file, rest: eventide-load flags
	local f=$1
	shift
	"$OUT/eventide-load" -url "$url" -duration "$DURATION" -warmup "$WARMUP" -sample-interval 1s -json -quiet "$@" >"$f"
}

median='def median: sort | if length == 0 then null elif length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;'
op() { # $1 size, $2 scenario file prefix, $3 operation name, $4 field (p50, p99): median over runs, ms
	jq -s -r --arg op "$3" --arg f "$4" "$median"' map(.run.operations[] | select(.name == $op) | .latency_ms[$f]) | median * 100 | round / 100' "$OUT/$1/$2"-*.json
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) vCPU, $(free -g | awk '/Mem:/{print $2}') GiB; $(go version)"
echo "runs: median of $RUNS × $DURATION (+$WARMUP warm-up); load average at start: $(cut -d' ' -f1-3 /proc/loadavg); raw reports in $OUT"
printf '%-8s %9s %9s %10s %10s %10s %10s %11s %9s %9s %10s %10s %9s %9s\n' events seed_s file_MiB startup_ms idle_MiB page_p50 page_p99 nocount_p50 detail_p50 detail_p99 reg_p50 reg_p99 load_MiB errors
for n in "${sizes[@]}"; do
	dir="$OUT/$n"
	mkdir -p "$dir"
	t0=$(date +%s.%N)
	"$OUT/eventide-load" -seed-scale "events=$n,registrations=$((10 * n)),users=$n" -data-dir "$dir/data" -quiet >"$dir/seed.txt"
	seed_s=$(echo "$(date +%s.%N) - $t0" | bc)

	# First start: start-up time and idle RSS.
	start_server "$dir/data" info "$dir/server-first.log"
	sleep 10
	idle_kib=$(awk '/^VmRSS:/{print $2}' "/proc/$server/status")
	stop_server
	startup_ms=$( (grep -oE 'startup_ms"?[=:][0-9]+' "$dir/server-first.log" || true) | head -1 | grep -oE '[0-9]+$' || echo '?')

	# Second start: the load runs.
	start_server "$dir/data" warn "$dir/server.log"
	"$OUT/eventide-load" -url "$url" -seed -scenario events-page -duration 1s -warmup 0s -quiet >/dev/null
	for i in $(seq "$RUNS"); do
		load "$dir/page-$i.json" -scenario events-page -cold -total-count -workers 1
		load "$dir/nocount-$i.json" -scenario events-page -cold -workers 1
		load "$dir/detail-$i.json" -scenario event-detail -cold -workers 1
		load "$dir/register-$i.json" -scenario register-cancel -workers 8
	done
	stop_server
	file_mib=$(du -sb "$dir/data" | awk '{printf "%.1f", $1/1048576}')
	load_mib=$(jq -s "$median"' map(.server.rss_max_bytes_during // 0) | max / 1048576 * 10 | round / 10' "$dir"/*-[0-9]*.json)
	errors=$(jq -s 'map(.run.errors) | add' "$dir"/*-[0-9]*.json)
	printf '%-8s %9.1f %9s %10s %10.1f %10s %10s %11s %9s %9s %10s %10s %9s %9s\n' "$n" "$seed_s" "$file_mib" "$startup_ms" "$(echo "$idle_kib / 1024" | bc -l)" \
		"$(op "$n" page events-page-cold p50)" "$(op "$n" page events-page-cold p99)" "$(op "$n" nocount events-page-cold p50)" \
		"$(op "$n" detail event-detail-cold p50)" "$(op "$n" detail event-detail-cold p99)" \
		"$(op "$n" register register p50)" "$(op "$n" register register p99)" "$load_mib" "$errors"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
