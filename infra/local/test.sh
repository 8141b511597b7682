#!/usr/bin/env bash
# make test: install what is missing, start a throwaway stack on free ports, run every test
# (unit + integration against the real stack), tear the stack down whatever happens.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

bash infra/local/install.sh stack
bash infra/local/validate.sh
STACK="$(mktemp -d /tmp/ragbot-test-stack.XXXXXX)"
cleanup() { bash infra/local/stack.sh down "$STACK"; rm -rf "$STACK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
bash infra/local/stack.sh up "$STACK"
# shellcheck disable=SC1091
. "$STACK/env"
export RAGBOT_ENV=test
export EMBEDDING_MODEL_DIR="$ROOT/.local/models/all-MiniLM-L6-v2"
export RAGBOT_REFERENCE_DIR="${RAGBOT_REFERENCE_DIR:-$ROOT/../shared/reference}"
# The whole run's counts, from every test binary's "test result:" line (also .ci/run's last line).
LOG="$ROOT/target/test-output/cargo-test.log"
mkdir -p "$(dirname "$LOG")"
status=0
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$LOG" || status=$?
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$LOG" \
  | tee "$ROOT/target/test-output/summary"
exit "$status"
