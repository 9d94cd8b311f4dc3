#!/usr/bin/env bash
# System calls and context switches per transaction under load, PgBouncer and Sluice side by side
# in one run (issue 19): `pgbench -S` with BENCH_CLIENTS (200) clients over POOL_SIZE (20) for
# BENCH_SECONDS (8) through each proxy, BENCH_ROUNDS (2) interleaved rounds, while `perf stat`
# counts the proxy's system calls by tracepoint (every thread, at full speed: unlike strace it
# does not slow the proxy down, so the counts are those of the real run). Per transaction: all
# system calls and the failed ones, recvfrom and the failed recvfrom (EAGAIN: a read that found
# nothing), sendto, epoll_wait, epoll_ctl, the proxy's context switches and pgbench's. Medians.
# Needs perf with tracepoints (perf_event_paranoid <= 1 or root).
#   bench/syscalls_load.sh
#   BENCH_CLIENTS=2000 bench/syscalls_load.sh
# Results are appended to bench/out/<timestamp>-syscalls-load.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLIENTS="${BENCH_CLIENTS:-200}"
SECS="${BENCH_SECONDS:-8}"
ROUNDS="${BENCH_ROUNDS:-2}"
POOL_SIZE="${POOL_SIZE:-20}"
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
SLUICE_PORT=6478 SLUICE1_PORT=6479 BOUNCER_PORT=6447
TARGETS="pgbouncer sluice-1w sluice"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
command -v perf >/dev/null || { echo "bench/syscalls_load.sh needs perf: apt-get install linux-perf" >&2; exit 1; }
if ! perf stat -e syscalls:sys_enter_recvfrom -- true >/dev/null 2>&1; then
  echo "bench/syscalls_load.sh: perf cannot count syscall tracepoints here (run as root)" >&2
  exit 1
fi
ulimit -n "$(ulimit -Hn)"

write_many_client_configs "$((CLIENTS + 100))"
start_pg_proxies

export PGPASSWORD=app
pgbench -i -q -s 10 -h 127.0.0.1 -p "$PG_PORT" -U app app >/dev/null 2>&1

# The proxy's events, in this order (each --filter applies to the event before it).
PROXY_EVENTS=(-e raw_syscalls:sys_enter -e raw_syscalls:sys_exit --filter 'ret < 0'
  -e syscalls:sys_enter_recvfrom -e syscalls:sys_exit_recvfrom --filter 'ret < 0'
  -e syscalls:sys_enter_sendto -e syscalls:sys_enter_epoll_wait -e syscalls:sys_enter_epoll_ctl
  -e context-switches)
COLUMNS_OF_PROXY="syscalls failed recvfrom recvfrom_failed sendto epoll_wait epoll_ctl proxy_cs"

# One run: prints "tps <the proxy's counts per tx, in COLUMNS_OF_PROXY order> pgbench_cs".
run_one() {  # target
  local port pid out txs tps
  port="$(port_of "$1")" pid="$(pid_of "$1")"
  # Warm up: logins, the pool's connections.
  pgbench -n -S -c "$CLIENTS" -j 2 -T 1 -h 127.0.0.1 -p "$port" -U app app >/dev/null 2>&1 || true
  perf stat -x, -o "$WORK/proxy.$1" "${PROXY_EVENTS[@]}" -p "$pid" -- sleep "$((SECS + 3))" &
  local spid=$!
  sleep 0.5
  out="$(perf stat -x, -o "$WORK/pgbench.$1" -e context-switches -- \
    timeout $((SECS * 3 + 120)) pgbench -n -S -c "$CLIENTS" -j 2 -T "$SECS" -h 127.0.0.1 -p "$port" -U app app 2>&1)" || true
  wait "$spid" 2>/dev/null || true
  txs="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
  tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)"
  if [ -z "$txs" ] || [ "$txs" = 0 ]; then
    echo "error"
    return
  fi
  # The counts cover the whole traced window (warm-up excluded); pgbench's logins happen before
  # its timed run and fall inside the window too, which both proxies pay alike.
  echo "${tps%.*} $(awk -F, -v t="$txs" '$1 ~ /^[0-9]+$/ {printf "%.3f ", $1 / t}' "$WORK/proxy.$1")$(
    awk -F, -v t="$txs" '$1 ~ /^[0-9]+$/ {printf "%.3f", $1 / t}' "$WORK/pgbench.$1")"
}

OUT_DIR="$ROOT/bench/out"
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/$(date -u +%Y%m%dT%H%M%SZ)-syscalls-load.md"
{
  echo "pgbench -S, $CLIENTS clients over pool_size $POOL_SIZE, ${SECS}s per run, medians of $ROUNDS interleaved rounds, perf stat on the proxy; $(nproc) cores, $(date -u +%F)"
  echo
  echo "| target | tps | syscalls/tx | failed/tx | recvfrom/tx | failed recvfrom/tx | sendto/tx | epoll_wait/tx | epoll_ctl/tx | proxy cs/tx | pgbench cs/tx |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} | tee "$OUT"

declare -A results
for _ in $(seq 1 "$ROUNDS"); do
  for target in $TARGETS; do
    results[$target]+="$(run_one "$target")"$'\n'
  done
done
ncols=$((2 + $(wc -w <<<"$COLUMNS_OF_PROXY")))
for target in $TARGETS; do
  row="| $target"
  for col in $(seq 1 "$ncols"); do
    row="$row | $(awk -v c="$col" 'NF > 1 {print $c}' <<<"${results[$target]}" | median)"
  done
  echo "$row |" | tee -a "$OUT"
done
