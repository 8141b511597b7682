#!/usr/bin/env bash
# make loadtest: wrk drives `ragbot dev` (release build) on a throwaway stack with a mixed
# workload (infra/local/loadtest.lua) at 100 connections: first with users pausing 1-3 s between
# requests, then at saturation (no pauses), then — paused again — while PostgreSQL, DynamoDB Local
# and the S3 server are each stopped for LT_FAULT_SECONDS and started again. Reports p50/p95/p99,
# responses by status, the time to recover after each restart, and checks that every write that
# was acknowledged (201/202) is in the database at the end.
#   LT_SECONDS (60), LT_CONNECTIONS (100), LT_FAULT_SECONDS (5); run inside infra/local/throwaway.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SECONDS_PER_RUN="${LT_SECONDS:-60}"
CONNECTIONS="${LT_CONNECTIONS:-100}"
FAULT_SECONDS="${LT_FAULT_SECONDS:-5}"
STACK="$RAGBOT_STACK_DIR"
OUT="$ROOT/target/loadtest"
rm -rf "$OUT" && mkdir -p "$OUT"
log() { printf '[loadtest] %s\n' "$*" >&2; }

command -v wrk >/dev/null || { log "wrk is missing (bash infra/local/install.sh loadtest installs it)"; exit 1; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"

# The API as `make dev` serves it, with the extractive answerer (the local LLM answers one
# question at a time) and limits high enough that no request is refused for quota: every request
# still counts against DynamoDB.
RAGBOT_DEV_ADDR="127.0.0.1:$PORT" LLM_PROVIDER=extractive RATE_LIMIT_USER=1000000000 \
  RATE_LIMIT_ADMIN=1000000000 DATABASE_POOL_SIZE=8 RUST_LOG=warn LOG_FORMAT=json \
  ./target/release/ragbot dev >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 150); do curl -fs -o /dev/null "$URL/health" && break; sleep 0.2; done
curl -fs -o /dev/null "$URL/health" || { tail -20 "$OUT/server.log" >&2; log "the server did not start"; exit 1; }

export LT_USER_TOKEN LT_ADMIN_TOKEN LT_OUT="$OUT" LT_QUESTIONS="$OUT/questions.txt"
LT_USER_TOKEN=$(./target/release/ragbot token --sub load-user --tenant load --roles user --ttl 2h)
LT_ADMIN_TOKEN=$(./target/release/ragbot token --sub load-admin --tenant load --roles admin --ttl 2h)

# Knowledge: the chat evaluation set's Q&A entries (tenant `load`); questions: its queries.
DATASET="${LT_DATASET:-$ROOT/../shared/eval/stackfaq-dev}"
python3 - "$DATASET" "$OUT" <<'PY'
import json, sys, pathlib
ds, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
pairs = [json.loads(l) for l in (ds / "corpus.jsonl").open()]
body = {"document_title": "stackfaq", "question_answer_data": [{"question": p["question"], "answer": p["answer"]} for p in pairs]}
(out / "knowledge.json").write_text(json.dumps(body))
(out / "questions.txt").write_text("\n".join(json.loads(l)["text"].replace("\n", " ") for l in (ds / "queries.jsonl").open()) + "\n")
PY
curl -fs -o /dev/null -X POST "$URL/embed/qa" -H "Authorization: Bearer $LT_ADMIN_TOKEN" \
  -H 'Content-Type: application/json' --data-binary @"$OUT/knowledge.json"
./target/release/ragbot seed --size small --tenant load --documents-only >/dev/null 2>&1
log "knowledge loaded: generated documents, and $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["question_answer_data"]))' "$OUT/knowledge.json") Q&A pairs; $(wc -l <"$OUT/questions.txt") questions"

# Probes one /retrieve every 100 ms: "epoch_ms status" lines, for the time to recover.
probe() { # FILE
  while :; do
    local s; s=$(curl -s -o /dev/null -w '%{http_code}' -m 5 -X POST "$URL/retrieve" \
      -H "Authorization: Bearer $LT_USER_TOKEN" -H 'Content-Type: application/json' \
      -d '{"query": "how to make text bold in markdown"}') || true
    echo "$(date +%s%3N) $s" >> "$1"
    sleep 0.1
  done
}

run() { # NAME PAUSE [FAULT]
  local name=$1 pause=$2 fault=${3:-}
  mkdir -p "$OUT/$name"
  log "$name: $CONNECTIONS connections for $SECONDS_PER_RUN s${fault:+, $fault stopped for $FAULT_SECONDS s after 15 s}"
  probe "$OUT/$name/probe" & local prober=$! faulter=""
  if [ -n "$fault" ]; then
    ( sleep 15
      echo "$(date +%s%3N)" > "$OUT/$name/fault-start"
      bash infra/local/stack.sh stop "$STACK" "$fault"
      sleep "$FAULT_SECONDS"
      bash infra/local/stack.sh start "$STACK" "$fault" 2>/dev/null
      echo "$(date +%s%3N)" > "$OUT/$name/fault-end" ) &
    faulter=$!
  fi
  LT_OUT="$OUT/$name" LT_PAUSE="$pause" wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" \
    --timeout 10s -s infra/local/loadtest.lua "$URL" > "$OUT/$name/wrk.txt"
  if [ -n "$faulter" ]; then wait "$faulter" || true; fi
  kill "$prober" 2>/dev/null || true
}

run steady 1
run saturation 0
run postgres-restart 1 postgres
run dynamodb-restart 1 dynamodb
run s3-restart 1 s3

# Acknowledged writes, and what the database holds.
"$RAGBOT_PG_BIN/psql" -Atq "$MIGRATOR_DATABASE_URL" \
  -c "SELECT title FROM documents WHERE tenant = 'load' AND title LIKE 'load-%'" > "$OUT/stored-titles"
python3 infra/local/loadtest_report.py "$OUT"
