#!/usr/bin/env bash
# Result cache on both front ends: a heavier read against the server directly, Sluice with the
# cache off and Sluice with the cache on (mode = "all"), side by side in one run, 16 clients. Sluice
# runs with the default routing: each cluster has its replica, reads are split off to it under
# read-your-writes, so the cache keeps replicas' answers (stamped with their replication position):
#   - PostgreSQL: the balance total of one branch (an aggregate over pgbench_accounts, scale 10);
#   - MariaDB: a similar aggregate over a sysbench table (a sysbench Lua script, COM_QUERY).
# Prints TPS, average latency and Sluice's CPU microseconds per transaction, for the cache with
# local invalidation (sluice-cache) and with the change stream (sluice-stream, invalidation =
# "stream"), the share of reads each answered from memory, and then what following the change
# stream costs per write: a write load directly on the PostgreSQL primary (pgbench simple-update)
# and on MariaDB (sysbench oltp_write_only), with the CPU of the server's walsender and of the
# following Sluice per transaction.
#   bench/cache_compare.sh            # BENCH_SECONDS=8, BENCH_ROUNDS=3
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_CASE="${BENCH_SECONDS:-8}"
ROUNDS="${BENCH_ROUNDS:-3}"
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
PG_REPLICA_PORT="${SLUICE_PG_REPLICA_PORT:-15433}"
MY_PORT="${SLUICE_MY_PRIMARY_PORT:-13306}"
MY_REPLICA_PORT="${SLUICE_MY_REPLICA_PORT:-13307}"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

declare -A PORT PID
start() {  # name, port, cache section
  cat >"$WORK/$1.toml" <<CONF
[general]
log_level = "warn"
admin_users = ["admin"]
[postgres]
listen = "127.0.0.1:$2"
[mysql]
listen = "127.0.0.1:$(($2 + 1000))"
[[users]]
name = "app"
password = "app"
[[users]]
name = "admin"
password = "admin"
[[users]]
name = "streamer"
password = "streamer"
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:$PG_PORT"
replicas = ["127.0.0.1:$PG_REPLICA_PORT"]
stream_user = "streamer"
[clusters.my]
protocol = "mysql"
primary = "127.0.0.1:$MY_PORT"
replicas = ["127.0.0.1:$MY_REPLICA_PORT"]
stream_user = "streamer"
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
start sluice-stream 6474 $'[cache]\nmode = "all"\ndefault_ttl = "60s"\ninvalidation = "stream"'
TARGETS="direct sluice sluice-cache sluice-stream"
PORT[direct]=$PG_PORT
for t in sluice sluice-cache sluice-stream; do
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "${PORT[$t]}" && break; sleep 0.1; done
done
export PGPASSWORD=app
pgbench -i -q -s 10 -h 127.0.0.1 -p "$PG_PORT" -U app app >/dev/null 2>&1
# The replica has replayed the tables before anything is measured.
wait_pg_replica
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
pos="$(mariadb --protocol=TCP -h 127.0.0.1 -P "$MY_PORT" -u root -N -e 'SELECT @@gtid_binlog_pos')"
mariadb --protocol=TCP -h 127.0.0.1 -P "$MY_REPLICA_PORT" -u root -N -e "SELECT MASTER_GTID_WAIT('$pos', 60)" >/dev/null
declare -A MYPORT=([direct]=$MY_PORT [sluice]=7472 [sluice-cache]=7473 [sluice-stream]=7474)
declare -A MT MC
for _ in $(seq 1 "$ROUNDS"); do
  for t in $TARGETS; do
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
  for t in $TARGETS; do
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
for t in $TARGETS; do
  echo "| PostgreSQL branch total (aggregate over 100k rows) | $t | $(median <<<"${T[$t]}") | $(median <<<"${L[$t]}") | $(median <<<"${C[$t]:-}") |" | tee -a "$OUT"
done
for t in $TARGETS; do
  echo "| MariaDB group total (aggregate over 100k rows) | $t | $(median <<<"${MT[$t]}") | - | $(median <<<"${MC[$t]:-}") |" | tee -a "$OUT"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.1f", a / b; else print "-"}'; }
{
  echo
  echo "cached / direct TPS: PostgreSQL $(ratio "$(median <<<"${T[sluice-cache]}")" "$(median <<<"${T[direct]}")")x," \
       "MariaDB $(ratio "$(median <<<"${MT[sluice-cache]}")" "$(median <<<"${MT[direct]}")")x"
  echo "cache counters (SHOW CACHE, both engines; replica_hits of hits), and the share of reads answered from memory:"
  for t in sluice-cache sluice-stream; do
    PGPASSWORD=admin psql -X -At -F ' ' -h 127.0.0.1 -p "${PORT[$t]}" -U admin sluice -c "SHOW CACHE LIKE '*'" |
      awk -v t="$t" '{printf "  %s: hits %s, misses %s (%.1f %% from memory), replica_hits %s, behind_client %s, refused_fills %s\n",
        t, $6, $7, ($6 + $7) ? 100 * $6 / ($6 + $7) : 0, $12, $13, $14}'
  done
} | tee -a "$OUT"

# What the change stream costs per write: writes directly on each primary (bypassing Sluice),
# the CPU of the server process that sends the stream and of the Sluice that follows it.
walsender="$(psql -X -At -h 127.0.0.1 -p "$PG_PORT" -U postgres -d app \
  -c "SELECT pid FROM pg_stat_activity WHERE usename = 'streamer' AND backend_type = 'walsender' LIMIT 1")"
s0=$(cpu_us "${PID[sluice-stream]}") w0=$(cpu_us "$walsender")
out="$(timeout $((SECONDS_PER_CASE * 3 + 60)) pgbench -n -c 4 -j 2 -T "$SECONDS_PER_CASE" -b simple-update \
  -h 127.0.0.1 -p "$PG_PORT" -U app app 2>&1)" || true
s1=$(cpu_us "${PID[sluice-stream]}") w1=$(cpu_us "$walsender")
txs="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
my0=$(cpu_us "${PID[sluice-stream]}")
myout="$(timeout $((SECONDS_PER_CASE * 3 + 60)) sysbench oltp_write_only "${MYCOMMON[@]}" --mysql-host=127.0.0.1 \
  --mysql-port="$MY_PORT" --threads=4 --time="$SECONDS_PER_CASE" run 2>&1)" || true
my1=$(cpu_us "${PID[sluice-stream]}")
mytx="$(sed -n 's/^ *transactions: *\([0-9]*\).*/\1/p' <<<"$myout")"
{
  echo
  echo "change stream cost, writes directly on the primary (4 clients, ${SECONDS_PER_CASE}s):"
  awk -v t="${txs:-0}" -v s=$((s1 - s0)) -v w=$((w1 - w0)) 'BEGIN { if (t > 0)
    printf "  PostgreSQL pgbench simple-update: %d transactions; walsender %.1f us/tx, Sluice %.1f us/tx\n", t, w / t, s / t }'
  awk -v t="${mytx:-0}" -v s=$((my1 - my0)) 'BEGIN { if (t > 0)
    printf "  MariaDB oltp_write_only: %d transactions; Sluice %.1f us/tx (the dump thread is not separable in mariadbd)\n", t, s / t }'
  PGPASSWORD=admin psql -X -At -F '|' -h 127.0.0.1 -p "${PORT[sluice-stream]}" -U admin sluice -c "SHOW CACHE_STREAMS" |
    awk -F'|' '{print "  stream " $1 "/" $2 ": up " $3 ", commits " $9 ", tables invalidated " $10 ", losses " $11}'
} | tee -a "$OUT"
sysbench oltp_read_only "${MYCOMMON[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" cleanup >/dev/null 2>&1 || true
echo
echo "written to $OUT"
