#!/usr/bin/env bash
# make eval-chat (inside a throwaway stack): the chat eval with the configured provider.
# LLM_PROVIDER=openai (the default when the stack's local LLM is up) answers with the local LLM
# server; LLM_PROVIDER=extractive with no model. The LLM token budget and the answer cache are off.
set -euo pipefail
dataset=$1
if [ -n "${RAGBOT_LLM_BASE_URL:-}" ] && [ -z "${LLM_PROVIDER:-}" ]; then
  export LLM_PROVIDER=openai LLM_BASE_URL="$RAGBOT_LLM_BASE_URL" LLM_MODEL="$RAGBOT_LLM_MODEL"
fi
export LLM_PROVIDER="${LLM_PROVIDER:-extractive}"
export LLM_TENANT_DAILY_TOKENS=0 ANSWER_CACHE_TTL_SECONDS=0 RATE_LIMIT_USER=0
# The local server answers one request at a time on two cores.
export LLM_DEADLINE_MS="${LLM_DEADLINE_MS:-120000}"
exec ./target/release/ragbot eval-chat --dataset "$dataset" ${EVAL_LIMIT:+--limit "$EVAL_LIMIT"}
