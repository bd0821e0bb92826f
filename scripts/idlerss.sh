#!/usr/bin/env bash
# Idle RSS of the server with the demo data (issue 12; BENCHMARKS.md "Idle RSS, part by part").
#
#   scripts/idlerss.sh              # builds the tree, RUNS=3 runs of a first and a later start
#   scripts/idlerss.sh /tmp/ev      # measures an already built binary instead
#   RUNS=5 WAIT=10 scripts/idlerss.sh
#
# Each run: a fresh DATA_DIR; the "first" start creates the store and seeds the demo data, is
# read WAIT seconds after it started (VmRSS, RssAnon, RssFile of /proc/PID/status) and stopped
# with SIGTERM; the "later" start restarts on the same directory and is read the same way.
# Prints every run and the medians, in MiB.
#
# The binary is first copied with 4 KiB writes (dd bs=4k): Linux keeps a file's page-cache pages
# in large folios when it was written in large chunks (a fresh `go build` output, `dd bs=4M`), and
# a fault maps the whole folio, so the same binary shows 26 or 44 MiB of RssFile depending on how
# it was written. The 4 KiB copy makes builds comparable with each other.
set -euo pipefail

RUNS=${RUNS:-3}
WAIT=${WAIT:-10}
PORT=${PORT:-18190}
work=$(mktemp -d -t eventide-idlerss.XXXXXX)
trap 'rm -rf "$work"' EXIT

cd "$(dirname "$0")/.."
src=${1:-}
if [ -z "$src" ]; then
	src=$work/eventide.built
	go build -o "$src" .
fi
bin=$work/eventide
dd if="$src" of="$bin" bs=4k status=none
chmod +x "$bin"

kib() { awk -v k="$1" '/^'"$1"':/{print $2}' "/proc/$2/status"; }

# measure DIR -> prints "VmRSS RssAnon RssFile" in KiB of a server started on DIR.
measure() {
	local dir=$1 pid vm an fl
	DATA_DIR=$dir PORT=$PORT SEED_DEMO=true USE_REDIS=false LOG_LEVEL=warn \
		"$bin" >>"$work/server.log" 2>&1 &
	pid=$!
	local began=$SECONDS
	# Read WAIT seconds after the start, or once healthy if that takes longer (seeding hashes
	# passwords: slow on a loaded machine).
	until curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null || ((SECONDS - began > 120)); then
			echo "idlerss: the server exited or is not healthy after 120s; its log:" >&2
			cat "$work/server.log" >&2
			kill "$pid" 2>/dev/null || true
			exit 1
		fi
		sleep 0.2
	done
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "idlerss: the server exited, yet port $PORT answers: another process holds it; its log:" >&2
		cat "$work/server.log" >&2
		exit 1
	fi
	if ((SECONDS - began < WAIT)); then
		sleep $((WAIT - (SECONDS - began)))
	else
		echo "idlerss: healthy only after $((SECONDS - began))s; read 2s later" >&2
		sleep 2
	fi
	vm=$(kib VmRSS "$pid")
	an=$(kib RssAnon "$pid")
	fl=$(kib RssFile "$pid")
	kill -TERM "$pid"
	wait "$pid" || true
	echo "$vm $an $fl"
}

mib() { awk '{printf "%.1f", $1/1024}' <<<"$1"; }
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "binary: $src ($(stat -c %s "$src") bytes); $(go version); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %4s %8s %8s %8s\n' start run VmRSS RssAnon RssFile
: >"$work/first"
: >"$work/later"
for i in $(seq "$RUNS"); do
	dir=$work/data-$i
	mkdir -p "$dir"
	for kind in first later; do
		read -r vm an fl < <(measure "$dir")
		echo "$vm $an $fl" >>"$work/$kind"
		printf '%-6s %4d %8s %8s %8s\n' "$kind" "$i" "$(mib "$vm")" "$(mib "$an")" "$(mib "$fl")"
	done
done
for kind in first later; do
	vm=$(cut -d' ' -f1 "$work/$kind" | median)
	an=$(cut -d' ' -f2 "$work/$kind" | median)
	fl=$(cut -d' ' -f3 "$work/$kind" | median)
	echo "median $kind start: VmRSS $(mib "$vm") MiB (anon $(mib "$an") + file $(mib "$fl"))"
done
