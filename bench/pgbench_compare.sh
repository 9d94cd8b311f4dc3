#!/usr/bin/env bash
# pgbench against direct PostgreSQL, PgBouncer (transaction mode), HAProxy (TCP pass-through) and
# Sluice (transaction mode), side by side in one run, on the sandbox primary.
# Sluice runs twice: with the default workers (one per core) and with one worker ("sluice-1w",
# PgBouncer's single-threaded shape).
# Prints TPS, average latency and each proxy's CPU microseconds per transaction
# (utime+stime of the proxy process from /proc, before and after each case).
#   bench/pgbench_compare.sh            # BENCH_SECONDS=8 per run, BENCH_ROUNDS=3, POOL_SIZE=10
#   BENCH_ONLY="-S -c 16" bench/pgbench_compare.sh   # one case only
#   SLUICE_WORKERS=1 bench/pgbench_compare.sh          # Sluice worker threads (default: one per core)
#   BENCH_TLS=1 bench/pgbench_compare.sh    # clients speak TLS to Sluice and PgBouncer (bench/tls_compare.sh)
#   BENCH_SERVER_TLS=1 ...                  # and Sluice and PgBouncer speak TLS to the server
#   SLUICE_BIN_B=/tmp/sluice-new bench/pgbench_compare.sh  # a second binary, one worker, as
#                                           # "sluice-b-1w": a before/after in the same run
# Results are written to bench/out/<timestamp>.md as a Markdown table.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_CASE="${BENCH_SECONDS:-8}"
ROUNDS="${BENCH_ROUNDS:-3}"
TARGETS="direct pgbouncer haproxy sluice sluice-1w"
TLS="${BENCH_TLS:-0}"
SERVER_TLS="${BENCH_SERVER_TLS:-0}"
# With TLS: only the proxies that terminate it.
if [ "$TLS" = 1 ] || [ "$SERVER_TLS" = 1 ]; then TARGETS="pgbouncer sluice sluice-1w"; fi
POOL_SIZE="${POOL_SIZE:-10}"
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
SLUICE_PORT=6462 SLUICE1_PORT=6463 SLUICE_B_PORT=6464 BOUNCER_PORT=6442 HAPROXY_PORT=6452
if [ -n "${SLUICE_BIN_B:-}" ]; then TARGETS+=" sluice-b-1w"; fi
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

TLS_SLUICE="" TLS_BOUNCER=""
if [ "$TLS" = 1 ]; then
  "$ROOT/integration/certs.sh" "$WORK/certs" >/dev/null
  cp "$WORK/certs/server.pem" "$WORK/certs/server.key" "$WORK/"
  rm -rf "$WORK/certs"
  TLS_SLUICE="tls = \"require\"
tls_cert = \"$WORK/server.pem\"
tls_key = \"$WORK/server.key\""
  TLS_BOUNCER="client_tls_sslmode = require
client_tls_cert_file = $WORK/server.pem
client_tls_key_file = $WORK/server.key"
  export PGSSLMODE=require
fi
# Proxy to server: plain TCP (PgBouncer's default would be "prefer"), or TLS without verification.
SERVER_TLS_SLUICE="server_tls = \"disable\"" SERVER_TLS_BOUNCER="server_tls_sslmode = disable"
if [ "$SERVER_TLS" = 1 ]; then
  SERVER_TLS_SLUICE="server_tls = \"require\"" SERVER_TLS_BOUNCER="server_tls_sslmode = require"
fi

cat >"$WORK/sluice.toml" <<CONF
[general]
workers = ${SLUICE_WORKERS:-0}
log_level = "warn"
max_client_conn = 2000
[postgres]
listen = "127.0.0.1:$SLUICE_PORT"
$TLS_SLUICE
[[users]]
name = "app"
password = "app"
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:$PG_PORT"
$SERVER_TLS_SLUICE
[[pools]]
database = "app"
cluster = "pg"
pool_mode = "transaction"
pool_size = $POOL_SIZE
CONF
"$BIN" -c "$WORK/sluice.toml" 2>"$WORK/sluice.log" &
SLUICE_PID=$!
PIDS+=("$SLUICE_PID")
# The same with one worker thread: PgBouncer's shape (one thread), for a like-for-like CPU figure.
sed -e "s/^workers = .*/workers = 1/" -e "s/127.0.0.1:$SLUICE_PORT/127.0.0.1:$SLUICE1_PORT/" "$WORK/sluice.toml" >"$WORK/sluice1.toml"
"$BIN" -c "$WORK/sluice1.toml" 2>"$WORK/sluice1.log" &
SLUICE1_PID=$!
PIDS+=("$SLUICE1_PID")
SLUICE_B_PID=""
if [ -n "${SLUICE_BIN_B:-}" ]; then
  sed -e "s/127.0.0.1:$SLUICE1_PORT/127.0.0.1:$SLUICE_B_PORT/" "$WORK/sluice1.toml" >"$WORK/sluice-b.toml"
  "$SLUICE_BIN_B" -c "$WORK/sluice-b.toml" 2>"$WORK/sluice-b.log" &
  SLUICE_B_PID=$!
  PIDS+=("$SLUICE_B_PID")
fi

write_pgbouncer_ini "$BOUNCER_PORT" "$POOL_SIZE" <<CONF
$TLS_BOUNCER
$SERVER_TLS_BOUNCER
CONF
BOUNCER_PID="$(start_pgbouncer)"
PIDS+=("$BOUNCER_PID")

cat >"$WORK/haproxy.cfg" <<CONF
global
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
listen pg
  bind 127.0.0.1:$HAPROXY_PORT
  server primary 127.0.0.1:$PG_PORT
CONF
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=("$HAPROXY_PID")

for port in $SLUICE_PORT $SLUICE1_PORT ${SLUICE_B_PID:+$SLUICE_B_PORT} $BOUNCER_PORT $HAPROXY_PORT; do
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.1; done
done

export PGPASSWORD=app
PGSSLMODE=disable pgbench -i -q -s 10 -h 127.0.0.1 -p "$PG_PORT" -U app app >/dev/null 2>&1


OUT_DIR="$ROOT/bench/out"
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/$(date -u +%Y%m%dT%H%M%SZ).md"
{
  [ "$TLS" = 1 ] && echo "TLS between pgbench and the proxies (sslmode=require; EC P-256 certificate, OpenSSL defaults)"
  [ "$SERVER_TLS" = 1 ] && echo "TLS between the proxies and PostgreSQL (Sluice server_tls = require, PgBouncer server_tls_sslmode = require)"
  echo "pgbench ${SECONDS_PER_CASE}s per run, median of $ROUNDS interleaved rounds, pool_size $POOL_SIZE (Sluice, PgBouncer), scale 10, $(nproc) cores, $(date -u +%F)"
  echo
  echo "| case | target | tps | avg latency ms | proxy CPU us/tx | of which user space | failed |"
  echo "|---|---|---:|---:|---:|---:|---:|"
} | tee "$OUT"


measure() {  # target, clients, pgbench options -> "tps lat cpu_us_per_tx user_us_per_tx failed" (or "error msg")
  local target="$1" clients="$2"
  shift 2
  local port pid=""
  case $target in
    direct) port=$PG_PORT ;;
    pgbouncer) port=$BOUNCER_PORT; pid=$BOUNCER_PID ;;
    haproxy) port=$HAPROXY_PORT; pid=$HAPROXY_PID ;;
    sluice) port=$SLUICE_PORT; pid=$SLUICE_PID ;;
    sluice-1w) port=$SLUICE1_PORT; pid=$SLUICE1_PID ;;
    sluice-b-1w) port=$SLUICE_B_PORT; pid=$SLUICE_B_PID ;;
  esac
  local before=0 after=0 ubefore=0 uafter=0 out
  if [ -n "$pid" ]; then before=$(cpu_us "$pid") ubefore=$(user_us "$pid"); fi
  out="$(timeout $((SECONDS_PER_CASE * 3 + 60)) pgbench -n -c "$clients" -j 2 -T "$SECONDS_PER_CASE" "$@" -h 127.0.0.1 -p "$port" -U app app 2>&1)" || true
  if [ -n "$pid" ]; then after=$(cpu_us "$pid") uafter=$(user_us "$pid"); fi
  local tps lat txs failed cpu="-" user="-"
  tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)"
  lat="$(sed -n 's/^latency average = \([0-9.]*\).*/\1/p' <<<"$out")"
  txs="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
  failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")"
  if [ -z "$tps" ]; then
    echo "error $(grep -m1 -o 'error: .*' <<<"$out" | cut -c1-50 | tr ' |' '_/')"
    return
  fi
  if [ -n "$pid" ] && [ "${txs:-0}" -gt 0 ]; then
    cpu=$(awk -v d=$((after - before)) -v t="$txs" 'BEGIN {printf "%.1f", d / t}')
    user=$(awk -v d=$((uafter - ubefore)) -v t="$txs" 'BEGIN {printf "%.1f", d / t}')
  fi
  echo "${tps%.*} ${lat:--} $cpu $user ${failed:-0}"
}

# Each case runs ROUNDS times with the targets interleaved; the table shows medians, so one noisy
# neighbour on a shared machine does not decide the comparison.
run() {  # case label, clients, pgbench options
  local label="$1" clients="$2"
  shift 2
  if [ -n "${BENCH_ONLY:-}" ] && [ "$label" != "$BENCH_ONLY" ]; then return; fi
  declare -A T L C U F
  for _ in $(seq 1 "$ROUNDS"); do
    for target in $TARGETS; do
      read -r tps lat cpu user failed <<<"$(measure "$target" "$clients" "$@")"
      if [ "$tps" = error ]; then F[$target]="$lat"; continue; fi
      T[$target]+="$tps "
      L[$target]+="$lat "
      if [ "$cpu" != "-" ]; then C[$target]+="$cpu " U[$target]+="$user "; fi
      if [ "$failed" != 0 ]; then F[$target]="$failed"; fi
    done
  done
  for target in $TARGETS; do
    local t l c u
    t=$(median <<<"${T[$target]:-}")
    l=$(median <<<"${L[$target]:-}")
    c=$(median <<<"${C[$target]:-}")
    u=$(median <<<"${U[$target]:-}")
    if [ -z "${T[$target]:-}" ]; then t="error"; fi
    echo "| $label | $target | $t | $l | $c | $u | ${F[$target]:-0} |" | tee -a "$OUT"
  done
}

run "-S -c 16" 16 -S
if [ "$TLS" = 1 ]; then
  run "-S -C -c 16" 16 -S -C
  exit 0
fi
run "-S -c 50" 50 -S
run "-S -M extended -c 50" 50 -S -M extended
run "-S -M prepared -c 50" 50 -S -M prepared
run "tpcb-like -c 50" 50
run "-S -C -c 50" 50 -S -C
echo
echo "written to $OUT"
