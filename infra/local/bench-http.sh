#!/usr/bin/env bash
# BENCH=http make bench: `POST /retrieve` over HTTP against `ragbot dev` (release build) with a
# user token, the evaluation set's questions (../shared/eval/stackfaq-dev) in turn, 10k chunks
# (the retrieval bench's loader, tenant retrieve10000), wrk at 1, 16 and 64 connections, with the
# rate limit off and on (DynamoDB Local counters); plus process start → first answered request.
#   BENCH_HTTP_SECONDS (20), BENCH_HTTP_CONNECTIONS ("1 16 64"); run inside infra/local/throwaway.sh
#   BENCH_HTTP_PERF=1: the server is the `profiling` build (release code with symbols), and each
#   1-connection run (BENCH_HTTP_PERF_CONNECTIONS) is profiled system-wide with perf (server,
#   PostgreSQL, wrk), reported by process and by function in target/bench-http/perf-<run>.txt
#   BENCH_HTTP_BASELINE=path/to/another/ragbot: each run is paired with one on that binary (rows
#   marked "@base"), the two taking turns to go first, so a change is compared in the same
#   minutes of a noisy machine
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SECS="${BENCH_HTTP_SECONDS:-20}"
CONNS="${BENCH_HTTP_CONNECTIONS:-1 16 64}"
OUT="$ROOT/target/bench-http"
rm -rf "$OUT" && mkdir -p "$OUT"
log() { printf '[bench-http] %s\n' "$*" >&2; }
command -v wrk >/dev/null || { log "wrk is missing (bash infra/local/install.sh loadtest installs it)"; exit 1; }
SERVER_BIN=./target/release/ragbot
BASE="${BENCH_HTTP_BASELINE:-}"
[ -z "$BASE" ] || [ -x "$BASE" ] || { log "BENCH_HTTP_BASELINE=$BASE is not an executable"; exit 1; }
if [ "${BENCH_HTTP_PERF:-0}" = 1 ]; then
  command -v perf >/dev/null || { log "BENCH_HTTP_PERF=1 needs perf (apt-get install linux-perf)"; exit 1; }
  log "profiling build of the server (cargo build --profile profiling -p ragbot-cli)"
  cargo build --quiet --profile profiling -p ragbot-cli
  SERVER_BIN=./target/profiling/ragbot
fi

log "loading 10k chunks (the retrieval bench's loader; its in-process figures follow)"
BENCH_RETRIEVE_SIZES=10000 BENCH_KEEP_DATA=1 ./target/release/ragbot-bench retrieve >&2
DATASET="${BENCH_HTTP_DATASET:-$ROOT/../shared/eval/stackfaq-dev}"
python3 -c '
import json, sys
for l in open(sys.argv[1]):
    print(json.loads(l)["text"].replace("\n", " "))' "$DATASET/queries.jsonl" > "$OUT/questions.txt"
export BH_QUESTIONS="$OUT/questions.txt"
BH_TOKEN=$(./target/release/ragbot token --sub bench-user --tenant retrieve10000 --roles user --ttl 2h)
export BH_TOKEN

serve() { # NAME RATE_LIMIT_USER QUERY_CACHE BIN → sets SERVER, URL; writes start → first answer (ms)
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  URL="http://127.0.0.1:$port"
  local t0; t0=$(date +%s%N)
  RAGBOT_DEV_ADDR="127.0.0.1:$port" RATE_LIMIT_USER="$2" EMBEDDING_QUERY_CACHE="$3" \
    LLM_PROVIDER=extractive RUST_LOG=warn \
    LOG_FORMAT=json "$4" dev >"$OUT/server-$1.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 3000); do
    if curl -fs -o /dev/null -X POST "$URL/retrieve" -H "Authorization: Bearer $BH_TOKEN" \
      -H 'Content-Type: application/json' -d '{"query": "how do I start"}' 2>/dev/null; then
      echo $(( ($(date +%s%N) - t0) / 1000000 )) > "$OUT/first-$1"; return 0
    fi
    sleep 0.01
  done
  tail -20 "$OUT/server-$1.log" >&2; log "the server did not answer"; return 1
}

# The query cache is off except in the last run: the questions repeat every 340 requests, so with
# it on every request after the first round is a cache hit.
printf '%-22s %5s %9s %9s %9s %9s %8s\n' "run" conns "p50 ms" "p95 ms" "p99 ms" "req/s" "non-2xx"
# With a baseline, the two builds take turns going first: the second server of a pair finds
# PostgreSQL's caches and DynamoDB Local's JIT warmer (measured: up to a third faster).
RUNS=()
first=1
for run in "no-limit:0:0" "rate-limit:1000000000:0" "rate-limit+cache:1000000000:1024"; do
  if [ -z "$BASE" ]; then RUNS+=("$run:$SERVER_BIN"); continue; fi
  pair=("$run:$SERVER_BIN" "${run/:/@base:}:$BASE")
  if [ "$first" = 1 ]; then RUNS+=("${pair[@]}"); else RUNS+=("${pair[1]}" "${pair[0]}"); fi
  first=$(( 1 - first ))
done
for run in "${RUNS[@]}"; do
  IFS=: read -r name value cache bin <<<"$run"
  serve "$name" "$value" "$cache" "$bin"
  trap 'kill $SERVER 2>/dev/null || true' EXIT
  echo "  $name: process start → first answered /retrieve $(cat "$OUT/first-$name") ms, RSS $(( $(awk '/VmRSS/ {print $2}' /proc/$SERVER/status) / 1024 )) MB" >&2
  # Warm-up: every question once.
  wrk -t1 -c1 -d3s -s infra/local/bench-http.lua "$URL" >/dev/null
  for c in $CONNS; do
    threads=$(( c < 2 ? 1 : 2 ))
    PERF=""
    if [ "${BENCH_HTTP_PERF:-0}" = 1 ] && [ "$c" = "${BENCH_HTTP_PERF_CONNECTIONS:-1}" ]; then
      perf record -q -a -g -F 1999 -o "$OUT/perf-$name.data" -- sleep "$SECS" 2>/dev/null &
      PERF=$!
    fi
    wrk -t"$threads" -c"$c" -d"${SECS}s" --timeout 10s -s infra/local/bench-http.lua "$URL" \
      | tail -1 > "$OUT/$name-$c.json"
    python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("%-22s %5s %9.2f %9.2f %9.2f %9.1f %8d" % (sys.argv[2], sys.argv[3], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["rps"], r["non_2xx"] + r["socket_errors"]))' \
      "$OUT/$name-$c.json" "$name" "$c"
    if [ -n "$PERF" ]; then
      wait "$PERF" || true
      { echo "# by process (share of all samples on every core, idle included)"
        perf report -q -i "$OUT/perf-$name.data" --no-children --sort comm -g none 2>/dev/null | sed -n '1,12p'
        echo "# the server, by function"
        perf report -q -i "$OUT/perf-$name.data" --no-children --comm ragbot,tokio-rt-worker --sort dso,symbol -g none 2>/dev/null | sed -n '1,40p'
      } > "$OUT/perf-$name.txt"
      log "profile: $OUT/perf-$name.txt"
    fi
  done
  echo "  $name: RSS after the runs $(( $(awk '/VmRSS/ {print $2}' /proc/$SERVER/status) / 1024 )) MB" >&2
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
done
