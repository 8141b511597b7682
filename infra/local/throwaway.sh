#!/usr/bin/env bash
# Runs a command against a throwaway local stack (free ports, removed afterwards), with the
# database bootstrapped and migrated and the stack's variables exported. Used by make bench/eval.
#   bash infra/local/throwaway.sh <command> [args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
bash infra/local/install.sh stack
echo "[$(basename "$1")] release build (takes a few minutes the first time)" >&2
cargo build --release --quiet -p ragbot-bench -p ragbot-cli
STACK="$(mktemp -d /tmp/ragbot-throwaway.XXXXXX)"
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
"$@"
