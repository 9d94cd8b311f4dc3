#!/usr/bin/env bash
# sysbench against direct MariaDB, HAProxy (TCP pass-through) and Sluice (transaction mode), side
# by side in one run, on the sandbox MariaDB primary. Sluice runs twice: default workers (one per
# core) and one worker ("sluice-1w", HAProxy's default single-threaded shape on 2 cores is nbthread
# = cores, so both shapes are shown).
# Prints TPS, average and 95th-percentile latency and each proxy's CPU microseconds per
# transaction (utime+stime of the proxy process from /proc, before and after each run).
#   bench/sysbench_compare.sh               # BENCH_SECONDS=8, BENCH_ROUNDS=3, THREADS=64, POOL_SIZE=16
#   BENCH_ONLY=oltp_point_select BENCH_ROUNDS=5 bench/sysbench_compare.sh
#   BENCH_COMPRESSION=1 bench/sysbench_compare.sh   # adds direct-zlib and sluice-1w-zlib: the
#     compressed protocol (--mysql-compression) to the server, and to Sluice (whose server
#     connections stay uncompressed), to measure what compression costs Sluice per transaction
# Results are written to bench/out/sysbench-<timestamp>.md as a Markdown table.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_CASE="${BENCH_SECONDS:-8}"
ROUNDS="${BENCH_ROUNDS:-3}"
THREADS="${THREADS:-64}"
POOL_SIZE="${POOL_SIZE:-16}"
TARGETS="direct haproxy sluice sluice-1w"
if [ -n "${BENCH_COMPRESSION:-}" ]; then TARGETS="$TARGETS direct-zlib sluice-1w-zlib"; fi
MY_PORT="${SLUICE_MY_PRIMARY_PORT:-13306}"
SLUICE_PORT=6063 SLUICE1_PORT=6064 HAPROXY_PORT=6053
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

start_sluice() {  # port, workers, name
  write_sluice_my_toml "$WORK/$3.toml" "$1" "$2" "$POOL_SIZE" <<<"max_client_conn = 2000"
  "$BIN" -c "$WORK/$3.toml" >/dev/null 2>"$WORK/$3.log" &
  echo "$!"
}
SLUICE_PID=$(start_sluice $SLUICE_PORT "${SLUICE_WORKERS:-0}" sluice)
SLUICE1_PID=$(start_sluice $SLUICE1_PORT 1 sluice1)
PIDS+=("$SLUICE_PID" "$SLUICE1_PID")

write_haproxy_my_cfg "$WORK/haproxy.cfg" "$HAPROXY_PORT" 4000 </dev/null
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=("$HAPROXY_PID")
for port in $SLUICE_PORT $SLUICE1_PORT $HAPROXY_PORT; do
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done

COMMON=(--db-driver=mysql --mysql-user=app --mysql-password=app --mysql-db=app --tables=4 --table-size=10000)
sysbench oltp_read_write "${COMMON[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" cleanup >/dev/null 2>&1 || true
sysbench oltp_read_write "${COMMON[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" --threads=4 prepare >/dev/null


OUT_DIR="$ROOT/bench/out"
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/sysbench-$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "sysbench ${SECONDS_PER_CASE}s per run, $THREADS threads, median of $ROUNDS interleaved rounds, pool_size $POOL_SIZE (Sluice), 4 tables x 10000 rows, $(nproc) cores, $(date -u +%F)"
  echo
  echo "| case | target | tps | avg latency ms | p95 latency ms | proxy CPU us/tx | of which user space | errors |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
} | tee "$OUT"


measure() {  # target, sysbench test -> "tps avg p95 cpu user errors"
  local target="$1" test="$2" port pid="" zlib=off
  case $target in
    direct) port=$MY_PORT ;;
    haproxy) port=$HAPROXY_PORT; pid=$HAPROXY_PID ;;
    sluice) port=$SLUICE_PORT; pid=$SLUICE_PID ;;
    sluice-1w) port=$SLUICE1_PORT; pid=$SLUICE1_PID ;;
    direct-zlib) port=$MY_PORT; zlib=on ;;
    sluice-1w-zlib) port=$SLUICE1_PORT; pid=$SLUICE1_PID; zlib=on ;;
  esac
  local before=0 after=0 ubefore=0 uafter=0 out
  if [ -n "$pid" ]; then before=$(cpu_us "$pid") ubefore=$(user_us "$pid"); fi
  out="$(timeout $((SECONDS_PER_CASE * 3 + 60)) sysbench "$test" "${COMMON[@]}" --mysql-host=127.0.0.1 --mysql-port="$port" \
    --mysql-compression="$zlib" --threads="$THREADS" --time="$SECONDS_PER_CASE" --mysql-ignore-errors=all run 2>&1)" || true
  if [ -n "$pid" ]; then after=$(cpu_us "$pid") uafter=$(user_us "$pid"); fi
  local txs tps avg p95 errors cpu="-" user="-"
  txs="$(sed -n 's/^ *transactions: *\([0-9]*\).*/\1/p' <<<"$out")"
  tps="$(sed -n 's/^ *transactions: *[0-9]* *(\([0-9.]*\) per sec.*/\1/p' <<<"$out")"
  avg="$(sed -n 's/^ *avg: *\([0-9.]*\).*/\1/p' <<<"$out")"
  p95="$(sed -n 's/^ *95th percentile: *\([0-9.]*\).*/\1/p' <<<"$out")"
  errors="$(sed -n 's/^ *ignored errors: *\([0-9]*\).*/\1/p' <<<"$out")"
  if [ -z "$tps" ]; then
    echo "error - - - - -"
    return
  fi
  if [ -n "$pid" ] && [ "${txs:-0}" -gt 0 ]; then
    cpu=$(awk -v d=$((after - before)) -v t="$txs" 'BEGIN {printf "%.1f", d / t}')
    user=$(awk -v d=$((uafter - ubefore)) -v t="$txs" 'BEGIN {printf "%.1f", d / t}')
  fi
  echo "${tps%.*} ${avg:--} ${p95:--} $cpu $user ${errors:-0}"
}

run() {  # sysbench test
  local test="$1"
  if [ -n "${BENCH_ONLY:-}" ] && [ "$test" != "$BENCH_ONLY" ]; then return; fi
  declare -A T A P C U E
  for _ in $(seq 1 "$ROUNDS"); do
    for target in $TARGETS; do
      read -r tps avg p95 cpu user errors <<<"$(measure "$target" "$test")"
      if [ "$tps" = error ]; then E[$target]="run failed"; continue; fi
      T[$target]+="$tps "
      A[$target]+="$avg "
      P[$target]+="$p95 "
      if [ "$cpu" != "-" ]; then C[$target]+="$cpu " U[$target]+="$user "; fi
      if [ "$errors" != 0 ]; then E[$target]="$errors"; fi
    done
  done
  for target in $TARGETS; do
    local t
    t=$(median <<<"${T[$target]:-}")
    if [ -z "${T[$target]:-}" ]; then t="error"; fi
    echo "| $test | $target | $t | $(median <<<"${A[$target]:-}") | $(median <<<"${P[$target]:-}") | $(median <<<"${C[$target]:-}") | $(median <<<"${U[$target]:-}") | ${E[$target]:-0} |" | tee -a "$OUT"
  done
}

run oltp_point_select
run oltp_read_only
run oltp_read_write
sysbench oltp_read_write "${COMMON[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" cleanup >/dev/null 2>&1 || true
echo
echo "written to $OUT"
