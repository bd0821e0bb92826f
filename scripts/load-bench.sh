#!/usr/bin/env bash
# Runs the load scenarios RUNS times each against a fresh server on this machine and prints the
# median of each figure: the table of BENCHMARKS.md ("Load"). Needs jq. Run it alone: the load
# tool and the server share the machine's cores, and anything else running skews both.
#
#   scripts/load-bench.sh                       # every scenario, 5 runs of 10s, 4 workers
#   RUNS=3 DURATION=5s scripts/load-bench.sh events-page event-detail
#   RESPONSE_CACHE_MAX_BYTES=0 scripts/load-bench.sh events-page   # the page built every time
#
# The server runs with the demo data (APP_ENV=development) on a fresh embedded store and memory
# cache, its throttles raised out of reach (the tool's traffic all comes from one address), at
# LOG_LEVEL=warn (an access line per request is not what this measures). Raw reports are kept
# as JSON in $OUT.
set -euo pipefail

RUNS=${RUNS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
WORKERS=${WORKERS:-4}
PORT=${PORT:-18089}
OUT=${OUT:-$(mktemp -d -t eventide-bench.XXXXXX)}
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
	scenarios=(events-page events-page-cold event-detail login register-cancel mixed)
fi
command -v jq >/dev/null || { echo "load-bench: needs jq" >&2; exit 2; }

cd "$(dirname "$0")/.."
mkdir -p "$OUT"
go build -o "$OUT/eventide" .
go build -o "$OUT/eventide-load" ./cmd/eventide-load

APP_ENV=development PORT=$PORT DATA_DIR="$OUT/data" LOG_LEVEL=warn \
	THROTTLE_LIMIT=1000000000 LOGIN_THROTTLE_LIMIT=1000000000 SIGNUP_THROTTLE_LIMIT=1000000000 BRUTE_FORCE_THRESHOLD=1000000000 \
	WS_MAX_CONNECTIONS_PER_CLIENT=20000 \
	ADMIN_EMAIL=admin@eventide.local ADMIN_PASSWORD=eventide-admin \
	"$OUT/eventide" >"$OUT/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
url="http://127.0.0.1:$PORT/graphql"
"$OUT/eventide-load" -url "$url" -seed -scenario events-page -duration 1s -warmup 0s -quiet >/dev/null

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs, $(free -g | awk '/Mem:/{print $2}') GiB; $(go version)"
echo "runs: $RUNS × $DURATION (+$WARMUP warm-up), $WORKERS workers, closed loop; raw reports in $OUT"
printf '%-18s %10s %9s %9s %9s %12s %7s %12s %8s\n' scenario req/s p50_ms p95_ms p99_ms baseline_rps ratio rss_max_MiB errors
for sc in "${scenarios[@]}"; do
	baseline=()
	case $sc in events-page | event-detail) baseline=(-baseline) ;; esac
	for i in $(seq "$RUNS"); do
		"$OUT/eventide-load" -url "$url" -scenario "$sc" -workers "$WORKERS" -duration "$DURATION" \
			-warmup "$WARMUP" -sample-interval 2s "${baseline[@]}" -json -quiet >"$OUT/$sc-$i.json"
	done
	jq -s -r --arg sc "$sc" '
		def median: sort | if length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
		[
			$sc,
			(map(.run.requests_per_second) | median | round),
			(map(.run.latency_ms.p50) | median * 100 | round / 100),
			(map(.run.latency_ms.p95) | median * 100 | round / 100),
			(map(.run.latency_ms.p99) | median * 100 | round / 100),
			(map(.baseline.run.requests_per_second // 0) | median | round),
			(map(.baseline.ratio_rps_server_over_baseline // 0) | median * 1000 | round / 1000),
			(map(.server.rss_max_bytes_during // 0) | median / 1048576 * 10 | round / 10),
			(map(.run.errors) | add)
		] | @tsv' "$OUT/$sc"-*.json | awk -F'\t' '{printf "%-18s %10s %9s %9s %9s %12s %7s %12s %8s\n", $1,$2,$3,$4,$5,$6,$7,$8,$9}'
done
