#!/usr/bin/env bash
# The fault matrix (issue 8), each case under a running pgbench tpcb-like load through Sluice
# (and, where it matters, a read-only load that the router sends to the replica). Every case
# asserts: Sluice stays up; clients the fault does not touch see no error; affected clients only
# lose work in flight; afterwards no server connection is left inside a transaction; and the data
# is consistent (pgbench's invariant: the sums of pgbench_branches.bbalance,
# pgbench_tellers.tbalance and pgbench_accounts.abalance equal the sum of pgbench_history.delta).
#   integration/fault_test.sh /path/to/sluice [case ...]     # default: every case
# Cases: killed_clients replica_kill replica_immediate replica_stop reload_storm connection_storm slow_clients
#        mysql_killed_clients (sysbench oltp_read_write as the load, a counter table as the check)
#        mysql_replica_kill mysql_replica_shutdown (sysbench oltp_read_only as the load)
#        password_flood address_flood killed_mid_stream
#        online_upgrade (SIGUSR2 twice under a pgbench load of writes and replica reads)
#        cache_staleness (two more Sluice instances, the cache on with invalidation = "stream",
#        sharing the sandbox's Redis, killed mid-run: integration/staleness_check.py for
#        STALENESS_SECONDS, default 60)
#        mysql_primary_failover primary_failover (last: they rebuild the sandbox's replicas)
# The cases are in integration/fault_cases_pg.sh and integration/fault_cases_mysql.sh.
# Uses the sandbox from SLUICE_SANDBOX_SCRIPT (ports from the SLUICE_PG_* variables).
set -euo pipefail
BIN="${1:?usage: $0 /path/to/sluice [case ...]}"
shift
CASES=("$@")
[ ${#CASES[@]} -gt 0 ] || CASES=(killed_clients replica_kill replica_immediate replica_stop reload_storm
                                  connection_storm slow_clients killed_mid_stream mysql_killed_clients
                                  mysql_replica_kill mysql_replica_shutdown password_flood address_flood
                                  online_upgrade cache_staleness mysql_primary_failover
                                  primary_failover)
SANDBOX="${SLUICE_SANDBOX_SCRIPT:?set SLUICE_SANDBOX_SCRIPT to integration/sandbox.sh}"
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
PG_REPLICA_PORT="${SLUICE_PG_REPLICA_PORT:-15433}"
MY_PORT="${SLUICE_MY_PRIMARY_PORT:-13306}"
MY_REPLICA_PORT="${SLUICE_MY_REPLICA_PORT:-13307}"
PORT="${SLUICE_TEST_PORT:-26540}"
MYSQL_PORT=$((PORT + 1))
MAX_CLIENTS=40
WORK="$(mktemp -d)"
export PGSSLMODE=disable PGCONNECT_TIMEOUT=10
SLUICE_PID=""
BG=()

cleanup() {
  for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
  # An upgraded Sluice is not this script's child: stopped by the pid its file names.
  if [ -n "${UPGRADE_PID_FILE:-}" ] && [ -f "$UPGRADE_PID_FILE" ]; then kill "$(cat "$UPGRADE_PID_FILE")" 2>/dev/null || true; fi
  # Leave the replica running whatever happened.
  if [ -n "${STOPPED_PID:-}" ]; then kill -CONT $STOPPED_PID 2>/dev/null || true; fi
  "$SANDBOX" start-pg-replica >/dev/null 2>&1 || true
  if [ -n "$SLUICE_PID" ]; then kill "$SLUICE_PID" 2>/dev/null || true; wait "$SLUICE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

write_config() {  # extra [general] lines
  cat >"$WORK/sluice.toml" <<CONF
[general]
workers = 2
max_client_conn = $MAX_CLIENTS
log_level = "${LOG_LEVEL:-warn}"
query_wait_timeout = "20s"
client_login_timeout = "3s"
login_failure_delay = "4s"  # far above any login's own time, so a held correct login shows
$1
[postgres]
listen = ["127.0.0.1:$PORT", "[::1]:$PORT"]
[mysql]
listen = "127.0.0.1:$MYSQL_PORT"
$2
[[users]]
name = "app"
password = "app"
auth = "password"  # a raw test client logs in without SCRAM
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:$PG_PORT"
replicas = ["127.0.0.1:$PG_REPLICA_PORT"]
health_check_period = "200ms"
consistency = "read_your_writes"
[[pools]]
database = "app"
cluster = "pg"
pool_mode = "transaction"
pool_size = 8
[clusters.my]
protocol = "mysql"
primary = "127.0.0.1:$MY_PORT"
replicas = ["127.0.0.1:$MY_REPLICA_PORT"]
health_check_period = "200ms"
[[pools]]
database = "app"
cluster = "my"
pool_mode = "transaction"
pool_size = 8
CONF
}

start_sluice() {  # [general] lines, more sections
  write_config "${1:-}" "${2:-}"
  "$BIN" -c "$WORK/sluice.toml" 2>>"$WORK/sluice.log" &
  SLUICE_PID=$!
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$PORT" && return 0; sleep 0.1; done
  echo "FAIL Sluice did not start"; cat "$WORK/sluice.log"; exit 1
}

restart_sluice() {  # as start_sluice, after stopping the running one
  kill "$SLUICE_PID" 2>/dev/null || true
  wait "$SLUICE_PID" 2>/dev/null || true
  start_sluice "$@"
}

direct() { psql -X -At -h 127.0.0.1 -p "$PG_PORT" -U postgres -d app -c "$1"; }

invariant_holds() {
  [ "$(direct "select (select sum(abalance) from pgbench_accounts) = (select coalesce(sum(delta),0) from pgbench_history)
     and (select sum(bbalance) from pgbench_branches) = (select coalesce(sum(delta),0) from pgbench_history)
     and (select sum(tbalance) from pgbench_tellers)  = (select coalesce(sum(delta),0) from pgbench_history)")" = t ]
}

# Server connections of the app user left inside a transaction (Sluice's own or orphaned).
in_transaction() {
  direct "select count(*) from pg_stat_activity where usename = 'app' and state like 'idle in transaction%'"
}

# pgbench through Sluice in the background: name, seconds, clients, options...
load() {
  local name=$1 secs=$2 clients=$3
  shift 3
  PGPASSWORD=app timeout $((secs + 60)) pgbench -n -c "$clients" -j 2 -T "$secs" "$@" -h 127.0.0.1 -p "$PORT" -U app app \
    >"$WORK/$name.out" 2>&1 &
  BG+=($!)
  eval "${name}_PID=$!"
}

# Waits for a load; sets PROCESSED, ABORTED (clients pgbench aborted on an error), FAILED
# (transactions pgbench reports failed) and STATUS.
finish() {
  local pid_var="${1}_PID"
  STATUS=0
  wait "${!pid_var}" || STATUS=$?
  PROCESSED="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/$1.out")"
  PROCESSED="${PROCESSED:-0}"
  ABORTED="$(grep -c "client [0-9]* .*aborted" "$WORK/$1.out" || true)"
  FAILED="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/$1.out")"
  FAILED="${FAILED:-0}"
}

fail=0
report() {  # ok?, case, message
  if [ "$1" = 0 ]; then echo "ok   $2: $3"; return; fi
  echo "FAIL $2: $3"
  fail=1
  # What Sluice itself said about its server connections meanwhile (the last of it).
  grep -a "server connection\|lost\|health check" "$WORK/sluice.log" 2>/dev/null | tail -15 | sed 's/^/     sluice: /' || true
}

common_checks() {  # case name: Sluice up, nothing left in a transaction, invariant
  local c=$1 ok=0
  kill -0 "$SLUICE_PID" 2>/dev/null || { report 1 "$c" "Sluice exited"; cat "$WORK/sluice.log"; exit 1; }
  local left=1
  for _ in $(seq 1 50); do left="$(in_transaction)"; [ "$left" = 0 ] && break; sleep 0.1; done
  [ "$left" = 0 ] || ok=1
  invariant_holds || ok=1
  report $ok "$c" "Sluice up; $left server sessions left in a transaction; balance invariant $(invariant_holds && echo holds || echo BROKEN)"
}

# The cases, one function each (case_<name>): PostgreSQL's and MariaDB's.
# shellcheck source=integration/fault_cases_pg.sh
source "$(dirname "$0")/fault_cases_pg.sh"
# shellcheck source=integration/fault_cases_mysql.sh
source "$(dirname "$0")/fault_cases_mysql.sh"

PGPASSWORD=app pgbench -i -q -s 1 -h 127.0.0.1 -p "$PG_PORT" -U app app >/dev/null 2>&1
start_sluice
for c in "${CASES[@]}"; do
  started=$SECONDS
  "case_$c"
  echo "     $c: $((SECONDS - started)) s"
  BG=()
done
if [ "$fail" = 0 ]; then echo "fault matrix: all cases passed"; else echo "fault matrix: FAILED"; fi
exit $fail
