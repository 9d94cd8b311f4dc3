#!/usr/bin/env bash
# Memory per idle, logged-in client, side by side in one run (issue 19): N clients log in through
# the proxy, run one query each and stay idle; the proxy's RSS before, with them, and BENCH_AFTER
# seconds after they leave (Sluice gives freed memory back to the system every 30 s). The
# per-client figure is read twice: 4 s after the last login (every Sluice client parked and
# asleep) and BENCH_IDLE s after it (default 35: Sluice's periodic trims have run, so what is
# left is what idle clients keep, not what the burst of logins left behind).
# PostgreSQL (default): PgBouncer and Sluice, SCRAM logins (build/idle_clients). MySQL
# (BENCH_PROTOCOL=mysql): HAProxy in TCP mode and Sluice (build/idle_mysql_clients). HAProxy
# opens a server connection per client, so its row holds at most HAPROXY_CLIENTS (default 550:
# the sandbox MariaDB admits 600 connections).
#   bench/idle_compare.sh                      # BENCH_CLIENTS=10000, BENCH_AFTER=65
#   BENCH_CLIENTS=2000 BENCH_AFTER=5 bench/idle_compare.sh
#   BENCH_PROTOCOL=mysql BENCH_CLIENTS=5000 bench/idle_compare.sh
#   BENCH_TARGETS="sluice-1w" bench/idle_compare.sh   # a subset of the targets, in that order
#   BENCH_TLS=1 bench/idle_compare.sh          # clients on TLS (PgBouncer and Sluice terminate
#     it; HAProxy in TCP mode passes it through to MariaDB)
# "RSS warm" is read after POOL_SIZE clients have logged in, run their query and left, before the
# N come: the process with its code paged in and its server connections open, as a proxy that has
# served anyone is. "after / warm" is then what the N clients left behind; "after / before"
# counts those first pages and connections too.
# The open-file limit bounds BENCH_CLIENTS: the script raises the soft limit to the hard one
# (and the hard one when it may). Past about 25,000 clients one destination would also run out
# of ephemeral ports (Linux's default range holds 28,232).
# Results are appended to bench/out/<timestamp>.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${BENCH_CLIENTS:-10000}"
AFTER="${BENCH_AFTER:-65}"
IDLE_S="${BENCH_IDLE:-35}"
POOL_SIZE="${POOL_SIZE:-20}"
PROTOCOL="${BENCH_PROTOCOL:-postgres}"
TLS="${BENCH_TLS:-0}"
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
MY_PORT="${SLUICE_MY_PRIMARY_PORT:-13306}"
SLUICE_PORT=6472 SLUICE1_PORT=6473 BOUNCER_PORT=6444 HAPROXY_PORT=6445
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
case "$PROTOCOL" in
  postgres) TOOL=idle_clients LOGIN="SCRAM login" TARGETS="pgbouncer sluice-1w sluice" ;;
  mysql) TOOL=idle_mysql_clients LOGIN="mysql_native_password login" TARGETS="haproxy sluice-1w sluice" ;;
  *) echo "idle_compare: BENCH_PROTOCOL is postgres or mysql" >&2; exit 2 ;;
esac
TARGETS="${BENCH_TARGETS:-$TARGETS}"
IDLE="$ROOT/build/$TOOL"
[ -x "$IDLE" ] || ninja -C "$ROOT/build" "$TOOL" >/dev/null
ulimit -Hn $((2 * N + 1000)) 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((N + 200)) ]; then
  echo "idle_compare: the open-file limit $(ulimit -n) is below $N clients; lower BENCH_CLIENTS" >&2
  exit 1
fi

if [ "$PROTOCOL" = postgres ]; then
  write_many_client_configs "$((N + 100))"
else
  write_sluice_my_toml "$WORK/sluice.toml" "$SLUICE_PORT" 0 "$POOL_SIZE" disable <<<"max_client_conn = $((N + 100))"
  write_sluice_my_toml "$WORK/sluice1.toml" "$SLUICE1_PORT" 1 "$POOL_SIZE" disable <<<"max_client_conn = $((N + 100))"
  HAPROXY_N=$((N < ${HAPROXY_CLIENTS:-550} ? N : ${HAPROXY_CLIENTS:-550}))
  write_haproxy_my_cfg "$WORK/haproxy.cfg" "$HAPROXY_PORT" "$((HAPROXY_N + 100))" </dev/null
fi

if [ "$TLS" = 1 ]; then
  "$ROOT/integration/certs.sh" "$WORK/certs" >/dev/null
  chmod -R a+rX "$WORK/certs"
  section="[$PROTOCOL]"
  for f in "$WORK/sluice.toml" "$WORK/sluice1.toml"; do
    sed -i "s|^\\$section\$|$section\\ntls = \"allow\"\\ntls_cert = \"$WORK/certs/server.pem\"\\ntls_key = \"$WORK/certs/server.key\"|" "$f"
  done
  if [ "$PROTOCOL" = postgres ]; then
    printf 'client_tls_sslmode = allow\nclient_tls_cert_file = %s\nclient_tls_key_file = %s\n' \
      "$WORK/certs/server.pem" "$WORK/certs/server.key" >>"$WORK/pgbouncer.ini"
  fi
  LOGIN="$LOGIN over TLS"
fi

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

start() {  # target -> pid
  case "$1" in
    pgbouncer)
      start_pgbouncer
      ;;
    haproxy) haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 & echo $! ;;
    sluice) "$BIN" -c "$WORK/sluice.toml" >/dev/null 2>>"$WORK/sluice.log" & echo $! ;;
    sluice-1w) "$BIN" -c "$WORK/sluice1.toml" >/dev/null 2>>"$WORK/sluice1.log" & echo $! ;;
  esac
}
port_of() {
  case "$1" in
    pgbouncer) echo $BOUNCER_PORT ;;
    haproxy) echo $HAPROXY_PORT ;;
    sluice) echo $SLUICE_PORT ;;
    *) echo $SLUICE1_PORT ;;
  esac
}
clients_for() { if [ "$1" = haproxy ]; then echo "$HAPROXY_N"; else echo "$N"; fi; }
run_clients() {  # port, clients
  if [ "$PROTOCOL" = postgres ]; then
    local mode=disable
    [ "$TLS" = 1 ] && mode=require
    "$IDLE" "host=127.0.0.1 port=$1 user=app password=app dbname=app sslmode=$mode" "$2" 100
  else
    if [ "$TLS" = 1 ]; then "$IDLE" "$1" "$2" tls; else "$IDLE" "$1" "$2"; fi
  fi
}

OUT_DIR="$ROOT/bench/out"
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/$(date -u +%Y%m%dT%H%M%SZ)-idle.md"
{
  echo "$N idle $PROTOCOL clients ($LOGIN, one SELECT 1 each, then idle), transaction mode, pool_size $POOL_SIZE, $(nproc) cores, $(date -u +%F)"
  echo
  echo "| target | RSS before KiB | RSS warm KiB | RSS with clients KiB (${IDLE_S} s) | bytes per idle client, 4 s | bytes per idle client, ${IDLE_S} s | login s | RSS ${AFTER}s after KiB | after / before | after / warm |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} | tee "$OUT"

for target in $TARGETS; do
  pid="$(start "$target")"
  PIDS+=("$pid")
  port="$(port_of "$target")"
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  sleep 1
  before="$(rss_kb "$pid")"
  run_clients "$port" "$(($(clients_for "$target") < POOL_SIZE ? $(clients_for "$target") : POOL_SIZE))" \
    <<<"release" >/dev/null 2>>"$WORK/idle.err" || true
  sleep 2
  warm="$(rss_kb "$pid")"
  # The clients wait for a line on a FIFO before they leave.
  mkfifo "$WORK/release.$target"
  n="$(clients_for "$target")"
  run_clients "$port" "$n" <"$WORK/release.$target" >"$WORK/idle.$target" 2>>"$WORK/idle.err" &
  ipid=$!
  exec 7>"$WORK/release.$target"
  for _ in $(seq 1 $((N / 5 + 900))); do grep -q '^ready' "$WORK/idle.$target" && break; sleep 0.1; done
  read -r _ ok failed secs < <(grep '^ready' "$WORK/idle.$target" || echo "ready 0 $n -")
  sleep 4  # every client idle long enough to park, and (Sluice, PostgreSQL) to sleep (2 s)
  with4="$(rss_kb "$pid")"
  [ "$IDLE_S" -gt 4 ] && sleep $((IDLE_S - 4))
  with="$(rss_kb "$pid")"
  echo release >&7
  exec 7>&-
  wait "$ipid" 2>/dev/null || true
  sleep "$AFTER"
  after="$(rss_kb "$pid")"
  per4=$(((with4 - before) * 1024 / (ok > 0 ? ok : 1)))
  per=$(((with - before) * 1024 / (ok > 0 ? ok : 1)))
  ratio=$(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.2f", a / b}')
  wratio=$(awk -v a="$after" -v b="$warm" 'BEGIN {printf "%.2f", a / b}')
  note=""
  [ "$n" != "$N" ] && note=" ($n clients)"
  [ "$failed" != 0 ] && note="$note ($failed of $n failed to log in)"
  echo "| $target$note | $before | $warm | $with | $per4 | $per | $secs | $after | $ratio | $wratio |" | tee -a "$OUT"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
