#!/usr/bin/env bash
# make dev: install what is missing, start the local stack, bootstrap + migrate, serve the API.
# Ctrl-C stops the server and everything this script started. State persists in .local/dev-stack.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
STACK="${RAGBOT_DEV_STACK:-$ROOT/.local/dev-stack}"

bash infra/local/install.sh stack
echo "[dev] building ragbot (first build takes a few minutes)" >&2
cargo build --quiet -p ragbot-cli
BIN="$ROOT/target/debug/ragbot"

SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  bash infra/local/stack.sh down "$STACK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bash infra/local/stack.sh down "$STACK" 2>/dev/null || true   # leftovers of a killed run
bash infra/local/stack.sh up "$STACK" --fixed-ports
# shellcheck disable=SC1091
. "$STACK/env"
export LOG_FORMAT="${LOG_FORMAT:-text}"
export SWAGGER_UI_DIR="${SWAGGER_UI_DIR:-$ROOT/.local/swagger-ui/package}"
export RAGBOT_WEB_DIR="${RAGBOT_WEB_DIR:-$ROOT/web}"
export EMBEDDING_MODEL_DIR="${EMBEDDING_MODEL_DIR:-$ROOT/.local/models/all-MiniLM-L6-v2}"
# Chat answers with the local LLM server unless told otherwise (LLM_PROVIDER=extractive make dev).
# The small CPU model reads a 3-passage prompt in a few seconds and writes ~7 tokens/s on 2
# cores: shorter answers and a deadline for local use (no API Gateway in front here).
if [ -n "${RAGBOT_LLM_BASE_URL:-}" ] && [ -z "${LLM_PROVIDER:-}" ]; then
  export LLM_PROVIDER=openai LLM_BASE_URL="$RAGBOT_LLM_BASE_URL" LLM_MODEL="$RAGBOT_LLM_MODEL"
  export LLM_MAX_TOKENS="${LLM_MAX_TOKENS:-160}" LLM_DEADLINE_MS="${LLM_DEADLINE_MS:-60000}"
  export CHAT_TOP_K="${CHAT_TOP_K:-3}"
  # One request at a time: the local server crashes when a request arrives while it streams.
  export LLM_MAX_CONCURRENCY="${LLM_MAX_CONCURRENCY:-1}"
  # The 0.5B model rewrites follow-ups poorly (it drops what the follow-up adds); the heuristic
  # keeps both questions. Real providers rewrite well: the default elsewhere is on.
  export CHAT_LLM_REWRITE="${CHAT_LLM_REWRITE:-false}"
fi
"$BIN" db bootstrap
"$BIN" migrate
"$BIN" dev &
SERVER=$!
wait "$SERVER"
