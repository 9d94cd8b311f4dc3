#!/usr/bin/env bash
# Result cache on both front ends: a heavier read against the server directly, Sluice with the
# cache off and Sluice with the cache on (mode = "all"), side by side in one run, 16 clients:
#   - PostgreSQL: the balance total of one branch (an aggregate over pgbench_accounts, scale 10);
#   - MariaDB: a similar aggregate over a sysbench table (a sysbench Lua script, COM_QUERY).
# Prints TPS, average latency and Sluice's CPU microseconds per transaction.
#   bench/cache_compare.sh            # BENCH_SECONDS=8, BENCH_ROUNDS=3
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_CASE="${BENCH_SECONDS:-8}"
ROUNDS="${BENCH_ROUNDS:-3}"
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
MY_PORT="${SLUICE_MY_PRIMARY_PORT:-13306}"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

declare -A PORT PID
start() {  # name, port, cache section
  cat >"$WORK/$1.toml" <<CONF
[general]
log_level = "warn"
[postgres]
listen = "127.0.0.1:$2"
[mysql]
listen = "127.0.0.1:$(($2 + 1000))"
[[users]]
name = "app"
password = "app"
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:$PG_PORT"
[clusters.my]
protocol = "mysql"
primary = "127.0.0.1:$MY_PORT"
[[pools]]
database = "app"
cluster = "pg"
pool_size = 10
[[pools]]
database = "app"
cluster = "my"
pool_size = 10
$3
CONF
  "$BIN" -c "$WORK/$1.toml" >/dev/null 2>"$WORK/$1.log" &
  PID[$1]=$!
  PIDS+=("$!")
  PORT[$1]=$2
}
start sluice 6472 ""
start sluice-cache 6473 $'[cache]\nmode = "all"\ndefault_ttl = "60s"'
PORT[direct]=$PG_PORT
for t in sluice sluice-cache; do
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "${PORT[$t]}" && break; sleep 0.1; done
done
export PGPASSWORD=app
pgbench -i -q -s 10 -h 127.0.0.1 -p "$PG_PORT" -U app app >/dev/null 2>&1
cat >"$WORK/branch_total.sql" <<'SQL'
\set bid random(1, 10)
SELECT sum(abalance), count(*) FROM pgbench_accounts WHERE bid = :bid;
SQL


OUT_DIR="$ROOT/bench/out"
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/cache-$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "cache: ${SECONDS_PER_CASE}s per run, median of $ROUNDS interleaved rounds, 16 clients, scale 10, $(nproc) cores, $(date -u +%F)"
  echo
  echo "| case | target | tps | avg latency ms | Sluice CPU us/tx |"
  echo "|---|---|---:|---:|---:|"
} | tee "$OUT"
declare -A T L C
cat >"$WORK/group_total.lua" <<'LUA'
function thread_init()
  drv = sysbench.sql.driver()
  con = drv:connect()
end
function event()
  con:query(string.format("SELECT SUM(k), COUNT(*) FROM sbtest1 WHERE id %% 10 = %d", sysbench.rand.uniform(0, 9)))
end
function thread_done()
  con:disconnect()
end
LUA
MYCOMMON=(--db-driver=mysql --mysql-user=app --mysql-password=app --mysql-db=app --tables=1 --table-size=100000)
sysbench oltp_read_only "${MYCOMMON[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" cleanup >/dev/null 2>&1 || true
sysbench oltp_read_only "${MYCOMMON[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" prepare >/dev/null
declare -A MYPORT=([direct]=$MY_PORT [sluice]=7472 [sluice-cache]=7473)
declare -A MT MC
for _ in $(seq 1 "$ROUNDS"); do
  for t in direct sluice sluice-cache; do
    before=0
    [ "$t" != direct ] && before=$(cpu_us "${PID[$t]}")
    out="$(timeout $((SECONDS_PER_CASE * 3 + 60)) sysbench "$WORK/group_total.lua" --db-driver=mysql --mysql-user=app \
      --mysql-password=app --mysql-db=app --mysql-host=127.0.0.1 --mysql-port="${MYPORT[$t]}" --threads=16 \
      --time="$SECONDS_PER_CASE" run 2>&1)" || true
    events="$(sed -n 's/^ *total number of events: *\([0-9]*\).*/\1/p' <<<"$out")"
    eps=$(awk -v e="${events:-0}" -v s="$SECONDS_PER_CASE" 'BEGIN {printf "%d", e / s}')
    MT[$t]+="$eps "
    if [ "$t" != direct ] && [ "${events:-0}" -gt 0 ]; then
      MC[$t]+="$(awk -v d=$(($(cpu_us "${PID[$t]}") - before)) -v n="$events" 'BEGIN {printf "%.1f", d / n}') "
    fi
  done
done

for _ in $(seq 1 "$ROUNDS"); do
  for t in direct sluice sluice-cache; do
    before=0
    [ "$t" != direct ] && before=$(cpu_us "${PID[$t]}")
    out="$(timeout $((SECONDS_PER_CASE * 3 + 60)) pgbench -n -c 16 -j 2 -T "$SECONDS_PER_CASE" -f "$WORK/branch_total.sql" \
      -h 127.0.0.1 -p "${PORT[$t]}" -U app app 2>&1)" || true
    tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)"
    lat="$(sed -n 's/^latency average = \([0-9.]*\).*/\1/p' <<<"$out")"
    txs="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
    T[$t]+="${tps%.*} "
    L[$t]+="$lat "
    if [ "$t" != direct ] && [ "${txs:-0}" -gt 0 ]; then
      C[$t]+="$(awk -v d=$(($(cpu_us "${PID[$t]}") - before)) -v n="$txs" 'BEGIN {printf "%.1f", d / n}') "
    fi
  done
done
for t in direct sluice sluice-cache; do
  echo "| PostgreSQL branch total (aggregate over 100k rows) | $t | $(median <<<"${T[$t]}") | $(median <<<"${L[$t]}") | $(median <<<"${C[$t]:-}") |" | tee -a "$OUT"
done
for t in direct sluice sluice-cache; do
  echo "| MariaDB group total (aggregate over 100k rows) | $t | $(median <<<"${MT[$t]}") | - | $(median <<<"${MC[$t]:-}") |" | tee -a "$OUT"
done
sysbench oltp_read_only "${MYCOMMON[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" cleanup >/dev/null 2>&1 || true
echo
echo "written to $OUT"
