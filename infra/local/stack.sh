#!/usr/bin/env bash
# Starts and stops the local stack: PostgreSQL + pgvector, DynamoDB Local, s3s-fs and the local
# OpenAI-compatible LLM server (llama.cpp through llama-cpp-python; RAGBOT_NO_LLM=1 leaves it out).
#
#   stack.sh up DIR [--fixed-ports]   start all three with their state in DIR; writes DIR/env
#   stack.sh down DIR                 stop whatever DIR's stack started (idempotent)
#   stack.sh pg-up DIR [PORT]         start only a PostgreSQL instance in DIR (tests use this)
#   stack.sh pg-stop DIR | pg-start DIR   stop / start again an instance made by pg-up
#   stack.sh stop|start DIR postgres|dynamodb|s3   stop / start one part of a running stack
#
# DIR/env is a sourceable file with the connection settings (see README "Configuration").
# Ports are free ones picked at start, unless --fixed-ports (make dev: 54329, 8000, 9000, 8081).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="${RAGBOT_LOCAL_DIR:-$ROOT/.local}"
PG_TREE="$LOCAL/pg/pgserver/pginstall"
ACCESS_KEY=ragbotlocal   # DynamoDB Local accepts only letters and digits here
SECRET_KEY=ragbotlocalsecret

log() { printf '[stack] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_port() { # port seconds what
  local port=$1 deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    ((SECONDS < deadline)) || die "$3 did not open port $port within $2 s"
    sleep 0.1
  done
}

# PostgreSQL refuses to run as root: as root, run it as the unprivileged `postgres` user.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() {
  # The postgres user must be able to reach the binaries; when the checkout is in a private home
  # directory it cannot, so mirror the tree once to a world-readable place.
  if [ "$(id -u)" -ne 0 ] || runuser -u postgres -- test -x "$PG_TREE/bin/postgres" 2>/dev/null; then
    echo "$PG_TREE/bin"; return
  fi
  # (the whole unpacked wheel: the binaries find their vendored libpq through a relative RPATH)
  local mirror="/var/tmp/ragbot-pg-$(stat -c %Y "$PG_TREE")"
  if [ ! -x "$mirror/pgserver/pginstall/bin/postgres" ]; then
    rm -rf "$mirror.tmp" && cp -a "$LOCAL/pg" "$mirror.tmp" && chmod -R a+rX "$mirror.tmp" && mv "$mirror.tmp" "$mirror"
  fi
  echo "$mirror/pgserver/pginstall/bin"
}

ensure_pg_user() {
  [ "$(id -u)" -eq 0 ] || return 0
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
}

# Directory for PostgreSQL's data and socket: must be reachable by the postgres user.
pg_home() {
  local dir=$1
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
    local alt="/var/tmp/ragbot-pg-$(echo -n "$dir" | sha1sum | cut -c1-12)"
    mkdir -p "$alt"; echo "$alt"
  else
    echo "$dir/pg"
  fi
}

pg_up() { # DIR [PORT]
  local dir=$1 port=${2:-}
  [ -x "$PG_TREE/bin/postgres" ] || die "PostgreSQL is not installed: run infra/local/install.sh"
  ensure_pg_user
  local bin home; bin="$(pg_bin)"; home="$(pg_home "$dir")"
  mkdir -p "$dir" "$home"
  [ -n "$port" ] || port=$(free_port)
  if [ ! -f "$home/data/PG_VERSION" ]; then
    local pw; pw="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
    echo "$pw" > "$home/pwfile"
    [ "$(id -u)" -ne 0 ] || chown -R postgres "$home"
    as_pg "$bin/initdb" -D "$home/data" -U postgres --pwfile="$home/pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$home/initdb.log" 2>&1 \
      || { cat "$home/initdb.log" >&2; die "initdb failed"; }
    echo "$pw" > "$dir/pg-password"
  fi
  echo "$port" > "$dir/pg-port"
  echo "$home" > "$dir/pg-home"
  pg_start "$dir"
}

pg_start() { # DIR
  local dir=$1 bin home port
  bin="$(pg_bin)"; home="$(cat "$dir/pg-home")"; port="$(cat "$dir/pg-port")"
  as_pg "$bin/pg_ctl" -D "$home/data" -l "$home/postgres.log" -w -t 30 \
    -o "-p $port -k $home -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off -c shared_buffers=${RAGBOT_PG_SHARED_BUFFERS:-1GB}" \
    start >/dev/null || { tail -20 "$home/postgres.log" >&2; die "PostgreSQL did not start"; }
}

pg_stop() { # DIR
  local dir=$1
  [ -f "$dir/pg-home" ] || return 0
  local home; home="$(cat "$dir/pg-home")"
  [ -f "$home/data/postmaster.pid" ] || return 0
  as_pg "$(pg_bin)/pg_ctl" -D "$home/data" -m fast -w stop >/dev/null 2>&1 || true
}

start_bg() { # DIR NAME LOG CMD...
  local dir=$1 name=$2 logf=$3; shift 3
  # In its own session (so `down` can stop the whole group) and in DIR (DynamoDB Local writes
  # a metadata file into its working directory).
  ( cd "$dir" && exec setsid "$@" >"$logf" 2>&1 < /dev/null ) &
  echo $! > "$dir/$name.pid"
}

# DynamoDB Local keeps its tables in memory, or (RAGBOT_DDB_PERSIST=1 at `up`, for the load
# test's restarts) in DIR/ddb, so that a restart finds them again as AWS would.
dynamodb_start() { # DIR
  local dir=$1 port; port="$(cat "$dir/ddb-port")"
  [ -f "$LOCAL/dynamodb/DynamoDBLocal.jar" ] || die "DynamoDB Local is not installed: run infra/local/install.sh"
  local store=(-inMemory)
  if [ -f "$dir/ddb-persist" ]; then mkdir -p "$dir/ddb"; store=(-dbPath "$dir/ddb"); fi
  start_bg "$dir" dynamodb "$dir/dynamodb.log" java -Xms64m -Xmx512m \
    -Djava.library.path="$LOCAL/dynamodb/DynamoDBLocal_lib" -jar "$LOCAL/dynamodb/DynamoDBLocal.jar" \
    "${store[@]}" -sharedDb -port "$port"
}

s3_start() { # DIR
  local dir=$1 port; port="$(cat "$dir/s3-port")"
  [ -x "$LOCAL/s3s/bin/s3s-fs" ] || die "s3s-fs is not installed: run infra/local/install.sh"
  mkdir -p "$dir/s3"
  start_bg "$dir" s3 "$dir/s3.log" "$LOCAL/s3s/bin/s3s-fs" --host 127.0.0.1 --port "$port" \
    --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$dir/s3"
}

# Stops / starts one part of a running stack (the load test's faults).
svc() { # stop|start DIR postgres|dynamodb|s3
  local action=$1 dir=$2 name=$3
  case "$action:$name" in
    stop:postgres) pg_stop "$dir" ;;
    start:postgres) pg_start "$dir" ;;
    stop:dynamodb|stop:s3) kill_pidfile "$dir/$name.pid" ;;
    start:dynamodb) dynamodb_start "$dir"; wait_port "$(cat "$dir/ddb-port")" 60 "DynamoDB Local" ;;
    start:s3) s3_start "$dir"; wait_port "$(cat "$dir/s3-port")" 20 s3s-fs ;;
    *) die "usage: stack.sh stop|start DIR postgres|dynamodb|s3" ;;
  esac
}

up() {
  local dir=$1 fixed=${2:-}
  mkdir -p "$dir"
  chmod 755 "$dir"
  local pg_port ddb_port s3_port llm_port
  if [ "$fixed" = "--fixed-ports" ]; then pg_port=54329; ddb_port=8000; s3_port=9000; llm_port=8081
  else pg_port=$(free_port); ddb_port=$(free_port); s3_port=$(free_port); llm_port=$(free_port); fi

  pg_up "$dir" "$pg_port"

  [ "${RAGBOT_DDB_PERSIST:-0}" = 1 ] && touch "$dir/ddb-persist"
  echo "$ddb_port" > "$dir/ddb-port"
  echo "$s3_port" > "$dir/s3-port"
  dynamodb_start "$dir"
  s3_start "$dir"

  local llm_env=""
  if [ "${RAGBOT_NO_LLM:-0}" != 1 ]; then
    local model_file; model_file="$(bash "$ROOT/infra/local/install.sh" llm-model-file 2>/dev/null)"
    [ -x "$LOCAL/llm-venv/bin/python" ] && [ -f "$LOCAL/llm/$model_file" ] \
      || die "the local LLM is not installed: run infra/local/install.sh (or set RAGBOT_NO_LLM=1)"
    # llama.cpp on both cores, a 4k context (a RAG prompt with 5 passages is ~1.5k tokens).
    # One request at a time (LLM_MAX_CONCURRENCY=1 in make dev): this server crashes when a
    # request arrives while it streams an answer.
    start_bg "$dir" llm "$dir/llm.log" "$LOCAL/llm-venv/bin/python" -m llama_cpp.server \
      --model "$LOCAL/llm/$model_file" --model_alias "$model_file" \
      --host 127.0.0.1 --port "$llm_port" --n_ctx 4096 --n_threads "$(nproc)"
    llm_env="export RAGBOT_LLM_BASE_URL=http://127.0.0.1:$llm_port/v1
export RAGBOT_LLM_MODEL=$model_file"
  fi

  wait_port "$s3_port" 20 s3s-fs
  wait_port "$ddb_port" 60 "DynamoDB Local"
  if [ -n "$llm_env" ]; then
    wait_port "$llm_port" 90 "the local LLM server (its log: $dir/llm.log)"
  fi

  local pw; pw="$(cat "$dir/pg-password")"
  # Local-only passwords of the two application roles (created by `ragbot db bootstrap`).
  [ -f "$dir/role-passwords" ] || printf '%s %s\n' "$(head -c 12 /dev/urandom | base64 | tr -d '/+=')" \
    "$(head -c 12 /dev/urandom | base64 | tr -d '/+=')" > "$dir/role-passwords"
  local mig_pw app_pw; read -r mig_pw app_pw < "$dir/role-passwords"
  cat > "$dir/env" <<ENV
# written by infra/local/stack.sh for the stack in $dir
export RAGBOT_ENV=\${RAGBOT_ENV:-local}
export RAGBOT_STACK_DIR=$dir
export RAGBOT_PG_ADMIN_URL=postgres://postgres:$pw@127.0.0.1:$pg_port/postgres
export RAGBOT_PG_PORT=$pg_port
export RAGBOT_PG_BIN=$(pg_bin)
export RAGBOT_MIGRATOR_PASSWORD=$mig_pw
export RAGBOT_APP_PASSWORD=$app_pw
export MIGRATOR_DATABASE_URL=postgres://ragbot_migrator:$mig_pw@127.0.0.1:$pg_port/ragbot
export DATABASE_URL=postgres://ragbot_app:$app_pw@127.0.0.1:$pg_port/ragbot
export RAGBOT_CREATE_LOCAL_RESOURCES=true
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$s3_port
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$ddb_port
export AWS_EC2_METADATA_DISABLED=true
$llm_env
ENV
  log "up: PostgreSQL :$pg_port, DynamoDB Local :$ddb_port, s3s-fs :$s3_port${llm_env:+, LLM :$llm_port} (state in $dir)"
}

kill_pidfile() {
  local f=$1
  [ -f "$f" ] || return 0
  local pid; pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  local dir=$1
  [ -d "$dir" ] || return 0
  kill_pidfile "$dir/s3.pid"
  kill_pidfile "$dir/llm.pid"
  kill_pidfile "$dir/dynamodb.pid"
  pg_stop "$dir"
  log "down: $dir"
}

cmd=${1:-}; shift || true
case "$cmd" in
  up) up "$@" ;;
  down) down "$@" ;;
  pg-up) pg_up "$@"; log "PostgreSQL on :$(cat "$1/pg-port")" ;;
  stop|start) svc "$cmd" "$@" ;;
  pg-stop) pg_stop "$@" ;;
  pg-start) pg_start "$@" ;;
  *) die "usage: stack.sh up DIR [--fixed-ports] | down DIR | pg-up DIR [PORT] | pg-stop DIR | pg-start DIR" ;;
esac
