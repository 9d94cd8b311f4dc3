#!/usr/bin/env bash
# Sandbox backends for development, tests and benchmarks, on 127.0.0.1 only, under the
# project-local .sandbox/ directory:
#   - a PostgreSQL 15 primary and a streaming replica (pg_basebackup);
#   - a MariaDB primary and a GTID replica (Debian's mariadb-server);
#   - a Redis server (the cache's shared store; Debian's redis-tools, whose redis-check-rdb is the
#     server when called redis-server: the redis-server package would also install a service).
#   integration/sandbox.sh up | down | status | restart-primary | restart-mysql-primary |
#                          start-redis | stop-redis |
#                          stop-pg-replica | start-pg-replica | promote-pg-replica |
#                          rebuild-pg-replica | stop-mysql-replica | start-mysql-replica | env |
#                          pid pg-primary|pg-replica|my-primary|my-replica | promote-pg-replica-only |
#                          promote-mysql-replica-only | rebuild-mysql-replica
# Ports: SLUICE_PG_PRIMARY_PORT (15432), SLUICE_PG_REPLICA_PORT (15433),
#        SLUICE_MY_PRIMARY_PORT (13306), SLUICE_MY_REPLICA_PORT (13307), SLUICE_REDIS_PORT (16379).
# PostgreSQL roles: postgres (superuser, trust from 127.0.0.1), app/app (SCRAM), md5user/md5pass (md5).
# MariaDB users: root (no password, from 127.0.0.1 only), app/app and hashuser/hashpw
# (mysql_native_password).
# Databases: app, app2 on both.
# TLS: both servers accept TLS (plaintext too) with certificates made by integration/certs.sh in
# .sandbox/certs: server.pem (CN localhost, SAN DNS:localhost IP:127.0.0.1) signed by ca.pem.
# PostgreSQL asks for a client certificate signed by ca.pem (root.crt) without requiring one.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SANDBOX="${SLUICE_SANDBOX:-$ROOT/.sandbox}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PRIMARY_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
REPLICA_PORT="${SLUICE_PG_REPLICA_PORT:-15433}"
MY_PRIMARY_PORT="${SLUICE_MY_PRIMARY_PORT:-13306}"
MY_REPLICA_PORT="${SLUICE_MY_REPLICA_PORT:-13307}"
REDIS_PORT="${SLUICE_REDIS_PORT:-16379}"

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

certs_up() {
  "$ROOT/integration/certs.sh" "$SANDBOX/certs" >/dev/null
}

# Server certificate, key and client CA in a PostgreSQL data directory (the default file names),
# and ssl on. Idempotent; a running server re-reads them on reload.
pg_tls() {  # $1 = data dir
  local d=$1
  cp "$SANDBOX/certs/server.pem" "$d/server.crt"
  cp "$SANDBOX/certs/server.key" "$d/server.key"
  cp "$SANDBOX/certs/ca.pem" "$d/root.crt"
  chmod 600 "$d/server.key"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$d/server.crt" "$d/server.key" "$d/root.crt"; fi
  grep -q "^ssl = on" "$d/postgresql.conf" || printf "ssl = on\nssl_ca_file = 'root.crt'\n" >>"$d/postgresql.conf"
  if is_running "$d"; then as_pg "$PG_BIN/pg_ctl" -D "$d" reload >/dev/null; fi
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
  certs_up
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
wal_level = logical
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
  pg_tls "$primary"
  # pg_stat_statements: the query-digest tests compare Sluice's counts with the server's own (a
  # sandbox made before it: restarted once to load the library).
  if ! grep -q "^shared_preload_libraries = 'pg_stat_statements'" "$primary/postgresql.conf"; then
    echo "shared_preload_libraries = 'pg_stat_statements'" >>"$primary/postgresql.conf"
    if is_running "$primary"; then as_pg "$PG_BIN/pg_ctl" -D "$primary" -l "$primary/server.log" -w -t 30 -m fast restart >/dev/null; fi
  fi
  # The cache's change stream (logical decoding): a sandbox made before it is switched over and
  # restarted once.
  if grep -q "^wal_level = replica" "$primary/postgresql.conf"; then
    # (max_wal_senders stays: a replica with fewer than its primary pauses its replay.)
    sed -i 's/^wal_level = replica/wal_level = logical/' "$primary/postgresql.conf"
    if is_running "$primary"; then as_pg "$PG_BIN/pg_ctl" -D "$primary" -l "$primary/server.log" -w -t 30 -m fast restart >/dev/null; fi
  fi
  if ! is_running "$primary"; then
    as_pg "$PG_BIN/pg_ctl" -D "$primary" -l "$primary/server.log" -w -t 30 start >/dev/null
  fi
  wait_ready "$PRIMARY_PORT"
  psql_admin -d postgres <<'SQL'
SELECT 'CREATE ROLE app LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app') \gexec
ALTER ROLE app PASSWORD 'app';
SELECT 'CREATE ROLE streamer LOGIN REPLICATION' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'streamer') \gexec
ALTER ROLE streamer PASSWORD 'streamer';
SET password_encryption = 'md5';
SELECT 'CREATE ROLE md5user LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'md5user') \gexec
ALTER ROLE md5user PASSWORD 'md5pass';
SELECT 'CREATE DATABASE app OWNER app' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'app') \gexec
SELECT 'CREATE DATABASE app2 OWNER app' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'app2') \gexec
GRANT ALL ON DATABASE app TO md5user;
SQL
  psql_admin -d app -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  if [ ! -f "$replica/PG_VERSION" ]; then
    rm -rf "$replica"
    as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$replica" -R -X stream -c fast >/dev/null
    echo "port = $REPLICA_PORT" >>"$replica/postgresql.conf"
    # Reconnect quickly after the primary restarts (tests restart it).
    echo "wal_retrieve_retry_interval = '500ms'" >>"$replica/postgresql.conf"
  fi
  pg_tls "$replica"
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

stop_pg_replica() {
  local dir
  dir="$(readlink -f "$SANDBOX/pg")"
  as_pg "$PG_BIN/pg_ctl" -D "$dir/replica" -m immediate -w -t 30 stop >/dev/null
}

start_pg_replica() {
  local dir
  dir="$(readlink -f "$SANDBOX/pg")"
  as_pg "$PG_BIN/pg_ctl" -D "$dir/replica" -l "$dir/replica/server.log" -w -t 30 start >/dev/null
  wait_ready "$REPLICA_PORT"
}

# Failover drill: the primary goes away and the replica is promoted (as an external tool would).
promote_pg_replica() {
  local dir
  dir="$(readlink -f "$SANDBOX/pg")"
  as_pg "$PG_BIN/pg_ctl" -D "$dir/primary" -m fast -w -t 30 stop >/dev/null
  as_pg "$PG_BIN/pg_ctl" -D "$dir/replica" -w -t 30 promote >/dev/null
}

# Back to the normal shape after a drill: the old primary starts again and the replica is
# re-cloned from it (what the promoted replica wrote meanwhile is discarded).
rebuild_pg_replica() {
  local dir
  dir="$(readlink -f "$SANDBOX/pg")"
  if is_running "$dir/replica"; then
    as_pg "$PG_BIN/pg_ctl" -D "$dir/replica" -m fast -w -t 30 stop >/dev/null
  fi
  rm -rf "$dir/replica"
  pg_up
}

# ---- MariaDB ----------------------------------------------------------------------------------
# mariadbd refuses to run as root unless told to; the data directory is the sandbox's own.
my_user_opt() {
  if [ "$(id -u)" = 0 ]; then echo "--user=root"; fi
}

my_running() {  # $1 = node dir
  [ -f "$1/mariadbd.pid" ] && kill -0 "$(cat "$1/mariadbd.pid")" 2>/dev/null
}

my_client() {  # $1 = port, rest = mariadb client args
  local port=$1
  shift
  mariadb --protocol=TCP -h 127.0.0.1 -P "$port" -u root --batch --skip-column-names "$@"
}

my_wait_ready() {  # $1 = port, $2 = node dir
  for _ in $(seq 1 300); do
    mariadb-admin --protocol=TCP -h 127.0.0.1 -P "$1" -u root --connect-timeout=1 ping >/dev/null 2>&1 && return 0
    # Before root@127.0.0.1 exists, the server answers through its socket only.
    mariadb-admin --socket="$2/mariadbd.sock" -u root ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "sandbox: MariaDB on port $1 did not become ready; see $2/error.log" >&2
  return 1
}

my_start() {  # $1 = node dir, $2 = port, $3 = server id, $4 = extra options
  local dir=$1 port=$2 sid=$3
  if [ ! -d "$dir/data/mysql" ]; then
    rm -rf "$dir"
    mkdir -p "$dir/data"
    mariadb-install-db $(my_user_opt) --datadir="$dir/data" --auth-root-authentication-method=normal \
      --skip-test-db >"$dir/install.log" 2>&1 || { cat "$dir/install.log" >&2; return 1; }
    cat >"$dir/my.cnf" <<CNF
[mariadbd]
datadir = $dir/data
port = $port
bind-address = 127.0.0.1
socket = $dir/mariadbd.sock
pid-file = $dir/mariadbd.pid
log-error = $dir/error.log
server-id = $sid
log-bin = $dir/data/binlog
binlog_format = ROW
gtid_strict_mode = ON
log_slave_updates = ON
skip-name-resolve
max_connections = 600
max_allowed_packet = 64M
innodb_buffer_pool_size = 128M
innodb_log_file_size = 64M
innodb_flush_log_at_trx_commit = 0
sync_binlog = 0
performance_schema = OFF
$4
CNF
  fi
  if ! grep -q "^ssl-cert" "$dir/my.cnf"; then  # TLS (a sandbox made before TLS: restart once)
    printf 'ssl-ca = %s\nssl-cert = %s\nssl-key = %s\n' "$SANDBOX/certs/ca.pem" "$SANDBOX/certs/server.pem" \
      "$SANDBOX/certs/server.key" >>"$dir/my.cnf"
    my_stop_node "$dir"
  fi
  if ! my_running "$dir"; then
    setsid mariadbd --defaults-file="$dir/my.cnf" $(my_user_opt) </dev/null >/dev/null 2>&1 &
  fi
  my_wait_ready "$port" "$dir"
}

my_up() {
  local dir="$SANDBOX/mysql" fresh=0
  certs_up
  [ -d "$dir/primary/data/mysql" ] || fresh=1
  my_start "$dir/primary" "$MY_PRIMARY_PORT" 1 ""
  if [ "$fresh" = 1 ]; then
    mariadb --socket="$dir/primary/mariadbd.sock" -u root <<'SQL'
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'repl'@'127.0.0.1' IDENTIFIED BY 'repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';
SQL
  fi
  my_client "$MY_PRIMARY_PORT" <<'SQL'
CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'app';
ALTER USER 'app'@'%' IDENTIFIED BY 'app';
CREATE DATABASE IF NOT EXISTS app;
CREATE DATABASE IF NOT EXISTS app2;
GRANT ALL ON app.* TO 'app'@'%';
GRANT ALL ON app2.* TO 'app'@'%';
GRANT PROCESS, RELOAD ON *.* TO 'app'@'%';
CREATE USER IF NOT EXISTS 'streamer'@'%' IDENTIFIED BY 'streamer';
GRANT REPLICATION SLAVE ON *.* TO 'streamer'@'%';
CREATE USER IF NOT EXISTS 'hashuser'@'%' IDENTIFIED BY 'hashpw';
GRANT ALL ON app.* TO 'hashuser'@'%';
SQL
  [ -d "$dir/replica/data/mysql" ] || fresh=1
  my_start "$dir/replica" "$MY_REPLICA_PORT" 2 "read_only = ON"
  if [ "$fresh" = 1 ]; then
    # The replica starts empty and replays the primary's whole binary log (users and databases
    # included) from the first GTID.
    mariadb --socket="$dir/replica/mariadbd.sock" -u root <<SQL
SET sql_log_bin = 0;
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
STOP SLAVE;
RESET SLAVE ALL;
SET GLOBAL gtid_slave_pos = '';
CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = $MY_PRIMARY_PORT, MASTER_USER = 'repl',
  MASTER_PASSWORD = 'repl', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1;
START SLAVE;
SQL
  fi
  my_wait_replica_users "the MariaDB replica did not catch up"
}

# Until the replica has the app user (replicated), so clients can log in there; $1 = the failure.
my_wait_replica_users() {
  for _ in $(seq 1 100); do
    [ "$(my_client "$MY_REPLICA_PORT" -e "SELECT COUNT(*) FROM mysql.user WHERE user = 'app'" 2>/dev/null)" = 1 ] && return 0
    sleep 0.1
  done
  echo "sandbox: $1; see $SANDBOX/mysql/replica/error.log" >&2
  return 1
}

my_stop_node() {  # $1 = node dir
  local dir=$1
  my_running "$dir" || return 0
  local pid
  pid="$(cat "$dir/mariadbd.pid")"
  kill "$pid"
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  echo "sandbox: MariaDB ($dir) did not stop in 30 s" >&2
}

my_down() {
  [ -d "$SANDBOX/mysql" ] || return 0
  my_stop_node "$SANDBOX/mysql/replica"
  my_stop_node "$SANDBOX/mysql/primary"
}

my_status() {
  for node in primary replica; do
    local port=$MY_PRIMARY_PORT
    [ "$node" = replica ] && port=$MY_REPLICA_PORT
    if my_running "$SANDBOX/mysql/$node"; then
      echo "mariadb $node: running on 127.0.0.1:$port ($SANDBOX/mysql/$node)"
    else
      echo "mariadb $node: stopped"
    fi
  done
}

restart_mysql_primary() {
  my_stop_node "$SANDBOX/mysql/primary"
  my_start "$SANDBOX/mysql/primary" "$MY_PRIMARY_PORT" 1 ""
}

# Failover drill on MariaDB, after the primary died on its own: the replica stops replicating and
# takes writes.
promote_mysql_replica() {
  my_client "$MY_REPLICA_PORT" -e "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF"
}

# After a failover drill: the old primary is started again (with what it had committed) and the
# replica is made again from a consistent dump of it, so the two agree. What the promoted replica
# took on its own is dropped, as it would be on a rebuilt node. Bounded by the data's size, not by
# the length of the binary log.
rebuild_mysql_replica() {
  local dir="$SANDBOX/mysql" dbs
  my_start "$dir/primary" "$MY_PRIMARY_PORT" 1 ""
  my_stop_node "$dir/replica"
  rm -rf "$dir/replica"
  my_start "$dir/replica" "$MY_REPLICA_PORT" 2 "read_only = ON"
  dbs="$(my_client "$MY_PRIMARY_PORT" -e "SELECT schema_name FROM information_schema.schemata
    WHERE schema_name NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')")"
  {
    echo "SET sql_log_bin = 0;"
    # The users and grants as tables, then the databases at one GTID position.
    echo "USE mysql;"
    mariadb-dump --protocol=TCP -h 127.0.0.1 -P "$MY_PRIMARY_PORT" -u root mysql global_priv db tables_priv \
      columns_priv procs_priv proxies_priv roles_mapping
    # shellcheck disable=SC2086
    mariadb-dump --protocol=TCP -h 127.0.0.1 -P "$MY_PRIMARY_PORT" -u root --single-transaction --gtid \
      --master-data=1 --databases $dbs
    cat <<SQL
FLUSH PRIVILEGES;
CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = $MY_PRIMARY_PORT, MASTER_USER = 'repl',
  MASTER_PASSWORD = 'repl', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1;
START SLAVE;
SQL
  } | mariadb --socket="$dir/replica/mariadbd.sock" -u root
  my_wait_replica_users "the rebuilt MariaDB replica does not answer as root@127.0.0.1 with the app user"
}

redis_pid() { cat "$SANDBOX/redis/redis.pid" 2>/dev/null; }
# Alive and answering (a killed daemon may linger as a zombie that kill -0 still finds).
redis_running() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; }
redis_up() {
  redis_running && return 0
  local dir="$SANDBOX/redis"
  mkdir -p "$dir"
  ln -sf /usr/bin/redis-check-rdb "$dir/redis-server"
  # No persistence: a restarted Redis is an empty one (the cache must not care).
  "$dir/redis-server" --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" --maxmemory 64mb \
    --maxmemory-policy allkeys-lru
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "sandbox: Redis did not start on $REDIS_PORT (see $dir/redis.log)" >&2
  return 1
}
redis_down() {
  local p
  p="$(redis_pid)" || return 0
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  rm -f "$SANDBOX/redis/redis.pid"
}
redis_status() {
  if redis_running; then echo "redis: running on $REDIS_PORT (pid $(redis_pid))"; else echo "redis: stopped"; fi
}

case "${1:-}" in
  up) pg_up; my_up; redis_up; status; my_status; redis_status ;;
  start-redis) redis_up; redis_status ;;
  stop-redis) redis_down; redis_status ;;
  restart-primary) restart_primary; status ;;
  restart-mysql-primary) restart_mysql_primary; my_status ;;
  stop-pg-replica) stop_pg_replica; status ;;
  start-pg-replica) start_pg_replica; status ;;
  stop-mysql-replica) my_stop_node "$SANDBOX/mysql/replica"; my_status ;;
  start-mysql-replica) my_start "$SANDBOX/mysql/replica" "$MY_REPLICA_PORT" 2 "read_only = ON"; my_status ;;
  promote-pg-replica) promote_pg_replica; status ;;
  promote-pg-replica-only)  # after the primary died on its own (fault tests)
    as_pg "$PG_BIN/pg_ctl" -D "$(readlink -f "$SANDBOX/pg")/replica" -w -t 30 promote >/dev/null; status ;;
  rebuild-pg-replica) rebuild_pg_replica; status ;;
  promote-mysql-replica-only) promote_mysql_replica; my_status ;;  # after the primary died (fault tests)
  rebuild-mysql-replica) rebuild_mysql_replica; my_status ;;
  down) pg_down; my_down; redis_down; status; my_status; redis_status ;;
  status) status; my_status; redis_status ;;
  pid)  # pid pg-primary|pg-replica|my-primary|my-replica: the server's main process (fault tests)
    case "${2:-}" in
      pg-primary | pg-replica) head -1 "$(readlink -f "$SANDBOX/pg")/${2#pg-}/postmaster.pid" ;;
      my-primary | my-replica) cat "$SANDBOX/mysql/${2#my-}/mariadbd.pid" ;;
      redis) redis_pid ;;
      *) echo "usage: $0 pid pg-primary|pg-replica|my-primary|my-replica|redis" >&2; exit 2 ;;
    esac
    ;;
  env)
    echo "export SLUICE_PG_PRIMARY_PORT=$PRIMARY_PORT SLUICE_PG_REPLICA_PORT=$REPLICA_PORT"
    echo "export SLUICE_MY_PRIMARY_PORT=$MY_PRIMARY_PORT SLUICE_MY_REPLICA_PORT=$MY_REPLICA_PORT"
    echo "export SLUICE_REDIS_PORT=$REDIS_PORT"
    ;;
  *) echo "usage: $0 up|down|status|restart-primary|restart-mysql-primary|stop-pg-replica|start-pg-replica|promote-pg-replica|rebuild-pg-replica|stop-mysql-replica|start-mysql-replica|start-redis|stop-redis|env|pid" >&2; exit 2 ;;
esac
