#!/usr/bin/env bash
# Runs the operator binary against the running `make dev` stack (its env file), e.g.
#   bash infra/local/ragbot.sh seed --size small
#   bash infra/local/ragbot.sh ingest ./docs --tenant acme
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
STACK="${RAGBOT_DEV_STACK:-$ROOT/.local/dev-stack}"
if [ ! -f "$STACK/env" ] || ! curl -fs -o /dev/null "http://127.0.0.1:${RAGBOT_DEV_PORT:-3000}/health"; then
  echo "ragbot: the dev stack is not running: start it with 'make dev' (in another terminal) first" >&2
  exit 1
fi
cargo build --quiet -p ragbot-cli
set -a
# shellcheck disable=SC1091
. "$STACK/env"
set +a
export EMBEDDING_MODEL_DIR="${EMBEDDING_MODEL_DIR:-$ROOT/.local/models/all-MiniLM-L6-v2}"
export RUST_LOG="${RUST_LOG:-warn}"
exec "$ROOT/target/debug/ragbot" "$@"
