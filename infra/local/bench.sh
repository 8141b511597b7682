#!/usr/bin/env bash
# make bench: release build, throwaway local stack, then every benchmark (figures, never pass/fail).
# BENCH=embedding|ingest|large-pdf|large-text|all (default all).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
bash infra/local/install.sh stack
echo "[bench] release build (takes a few minutes the first time)" >&2
cargo build --release --quiet -p ragbot-bench -p ragbot-cli
STACK="$(mktemp -d /tmp/ragbot-bench-stack.XXXXXX)"
cleanup() { bash infra/local/stack.sh down "$STACK"; rm -rf "$STACK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
bash infra/local/stack.sh up "$STACK"
set -a
# shellcheck disable=SC1091
. "$STACK/env"
set +a
export RAGBOT_ENV=test LOG_FORMAT=text RUST_LOG="${RUST_LOG:-warn}"
export EMBEDDING_MODEL_DIR="$ROOT/.local/models/all-MiniLM-L6-v2"
./target/release/ragbot db bootstrap >/dev/null
./target/release/ragbot migrate >/dev/null
./target/release/ragbot-bench "${BENCH:-all}"
