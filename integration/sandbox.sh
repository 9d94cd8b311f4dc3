#!/usr/bin/env bash
# Sandbox backends for development, tests and benchmarks: a PostgreSQL 15 primary and a streaming
# replica (pg_basebackup), on 127.0.0.1 only, under the project-local .sandbox/ directory.
#   integration/sandbox.sh up | down | status | restart-primary | env
# Ports: SLUICE_PG_PRIMARY_PORT (15432), SLUICE_PG_REPLICA_PORT (15433).
# Roles: postgres (superuser, trust from 127.0.0.1), app/app (SCRAM), md5user/md5pass (md5).
# Databases: app, app2.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SANDBOX="${SLUICE_SANDBOX:-$ROOT/.sandbox}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PRIMARY_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
REPLICA_PORT="${SLUICE_PG_REPLICA_PORT:-15433}"

# PostgreSQL refuses to run as root: run it as the 'postgres' system user when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_dir() {
  # The data lives in $SANDBOX/pg unless the postgres user cannot reach the project directory
  # (e.g. a clone under /root); then it lives under /tmp and $SANDBOX/pg is a symlink to it.
  if [ -L "$SANDBOX/pg" ] || [ -d "$SANDBOX/pg" ]; then
    readlink -f "$SANDBOX/pg"
    return
  fi
  mkdir -p "$SANDBOX"
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$SANDBOX"; then
    local alt
    alt="/tmp/sluice-sandbox-$(echo "$SANDBOX" | md5sum | cut -c1-12)"
    mkdir -p "$alt"
    ln -sfn "$alt" "$SANDBOX/pg"
  else
    mkdir -p "$SANDBOX/pg"
  fi
  readlink -f "$SANDBOX/pg"
}

is_running() {  # $1 = data dir
  [ -f "$1/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

wait_ready() {  # $1 = port
  for _ in $(seq 1 100); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$1" && return 0
    sleep 0.1
  done
  echo "sandbox: PostgreSQL on port $1 did not become ready" >&2
  return 1
}

psql_admin() {
  psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres "$@"
}

pg_up() {
  local dir primary replica
  dir="$(pg_dir)"
  primary="$dir/primary"
  replica="$dir/replica"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir"; fi
  if [ ! -f "$primary/PG_VERSION" ]; then
    rm -rf "$primary"
    as_pg "$PG_BIN/initdb" -D "$primary" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PRIMARY_PORT
unix_socket_directories = ''
max_connections = 400
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = replica
max_wal_senders = 5
hot_standby = on
password_encryption = 'scram-sha-256'
logging_collector = off
log_min_messages = warning
CONF
    cat >"$primary/pg_hba.conf" <<HBA
host replication postgres 127.0.0.1/32 trust
host all postgres 127.0.0.1/32 trust
host all md5user 127.0.0.1/32 md5
host all all 127.0.0.1/32 scram-sha-256
HBA
  fi
  if ! is_running "$primary"; then
    as_pg "$PG_BIN/pg_ctl" -D "$primary" -l "$primary/server.log" -w -t 30 start >/dev/null
  fi
  wait_ready "$PRIMARY_PORT"
  psql_admin -d postgres <<'SQL'
SELECT 'CREATE ROLE app LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app') \gexec
ALTER ROLE app PASSWORD 'app';
SET password_encryption = 'md5';
SELECT 'CREATE ROLE md5user LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'md5user') \gexec
ALTER ROLE md5user PASSWORD 'md5pass';
SELECT 'CREATE DATABASE app OWNER app' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'app') \gexec
SELECT 'CREATE DATABASE app2 OWNER app' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'app2') \gexec
GRANT ALL ON DATABASE app TO md5user;
SQL
  if [ ! -f "$replica/PG_VERSION" ]; then
    rm -rf "$replica"
    as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$replica" -R -X stream -c fast >/dev/null
    echo "port = $REPLICA_PORT" >>"$replica/postgresql.conf"
  fi
  if ! is_running "$replica"; then
    as_pg "$PG_BIN/pg_ctl" -D "$replica" -l "$replica/server.log" -w -t 30 start >/dev/null
  fi
  wait_ready "$REPLICA_PORT"
}

pg_down() {
  [ -e "$SANDBOX/pg" ] || return 0
  local dir
  dir="$(readlink -f "$SANDBOX/pg")"
  for node in replica primary; do
    if is_running "$dir/$node"; then
      as_pg "$PG_BIN/pg_ctl" -D "$dir/$node" -m fast -w -t 30 stop >/dev/null || true
    fi
  done
}

status() {
  local dir
  dir="$(readlink -f "$SANDBOX/pg" 2>/dev/null || true)"
  for node in primary replica; do
    local port=$PRIMARY_PORT
    [ "$node" = replica ] && port=$REPLICA_PORT
    if [ -n "$dir" ] && is_running "$dir/$node"; then
      echo "postgres $node: running on 127.0.0.1:$port ($dir/$node)"
    else
      echo "postgres $node: stopped"
    fi
  done
}

restart_primary() {
  local dir
  dir="$(readlink -f "$SANDBOX/pg")"
  as_pg "$PG_BIN/pg_ctl" -D "$dir/primary" -l "$dir/primary/server.log" -m fast -w -t 30 restart >/dev/null
  wait_ready "$PRIMARY_PORT"
}

case "${1:-}" in
  up) pg_up; status ;;
  restart-primary) restart_primary; status ;;
  down) pg_down; status ;;
  status) status ;;
  env)
    echo "export SLUICE_PG_PRIMARY_PORT=$PRIMARY_PORT SLUICE_PG_REPLICA_PORT=$REPLICA_PORT"
    ;;
  *) echo "usage: $0 up|down|status|restart-primary|env" >&2; exit 2 ;;
esac
