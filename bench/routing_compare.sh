#!/usr/bin/env bash
# Read/write splitting through Sluice, in one run, on the sandbox primaries and replicas:
#   - PostgreSQL: a read-mostly pgbench custom script (9 point SELECTs for 1 UPDATE, weighted
#     scripts), 16 clients over pool_size 10 per member;
#   - MariaDB: sysbench oltp_read_only with --skip-trx (its statements in autocommit; inside
#     BEGIN ... COMMIT everything would stay on the primary), 64 threads over pool_size 16;
# each with routing = "primary_only", "read_write_split" (read-your-writes) and
# "read_write_split" with consistency = "eventual". Prints TPS, Sluice's CPU microseconds per
# transaction, and the share of statements the replica executed (from the servers' own counters:
# pg_stat_database.xact_commit, Com_select). Classification's own cost: build/classify_bench.
#   bench/routing_compare.sh            # BENCH_SECONDS=8, BENCH_ROUNDS=3
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_CASE="${BENCH_SECONDS:-8}"
ROUNDS="${BENCH_ROUNDS:-3}"
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}" PG_REPLICA="${SLUICE_PG_REPLICA_PORT:-15433}"
MY_PORT="${SLUICE_MY_PRIMARY_PORT:-13306}" MY_REPLICA="${SLUICE_MY_REPLICA_PORT:-13307}"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

declare -A PGPORT MYPORT PID
start() {  # name, routing, consistency, base port
  local name=$1 routing=$2 consistency=$3 base=$4
  cat >"$WORK/$name.toml" <<CONF
[general]
workers = 0
log_level = "warn"
max_client_conn = 2000
[postgres]
listen = "127.0.0.1:$base"
[mysql]
listen = "127.0.0.1:$((base + 1))"
[[users]]
name = "app"
password = "app"
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:$PG_PORT"
replicas = ["127.0.0.1:$PG_REPLICA"]
routing = "$routing"
consistency = "$consistency"
[clusters.my]
protocol = "mysql"
primary = "127.0.0.1:$MY_PORT"
replicas = ["127.0.0.1:$MY_REPLICA"]
routing = "$routing"
consistency = "$consistency"
[[pools]]
database = "app"
cluster = "pg"
pool_size = 10
[[pools]]
database = "app"
cluster = "my"
pool_size = 16
CONF
  "$BIN" -c "$WORK/$name.toml" >/dev/null 2>"$WORK/$name.log" &
  PID[$name]=$!
  PIDS+=("$!")
  PGPORT[$name]=$base
  MYPORT[$name]=$((base + 1))
}
start primary_only primary_only read_your_writes 6470
start split read_write_split read_your_writes 6480
start split_eventual read_write_split eventual 6490
TARGETS="primary_only split split_eventual"
for t in $TARGETS; do
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "${PGPORT[$t]}" && break; sleep 0.1; done
done
sleep 1  # first health checks

export PGPASSWORD=app
pgbench -i -q -s 10 -h 127.0.0.1 -p "$PG_PORT" -U app app >/dev/null 2>&1
cat >"$WORK/read.sql" <<'SQL'
\set aid random(1, 1000000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SQL
cat >"$WORK/write.sql" <<'SQL'
\set aid random(1, 1000000)
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
SQL
COMMON=(--db-driver=mysql --mysql-user=app --mysql-password=app --mysql-db=app --tables=4 --table-size=10000)
sysbench oltp_read_only "${COMMON[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" cleanup >/dev/null 2>&1 || true
sysbench oltp_read_only "${COMMON[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" --threads=4 prepare >/dev/null
sleep 2  # let the replicas catch up with the set-up

pg_commits() { psql -X -At -h 127.0.0.1 -p "$1" -U postgres -d app -c "SELECT xact_commit FROM pg_stat_database WHERE datname = 'app'"; }
my_selects() { mariadb --protocol=TCP -h 127.0.0.1 -P "$1" -u root -N -e "SHOW GLOBAL STATUS LIKE 'Com_select'" | awk '{print $2}'; }

OUT_DIR="$ROOT/bench/out"
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/routing-$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "routing: ${SECONDS_PER_CASE}s per run, median of $ROUNDS interleaved rounds, $(nproc) cores, $(date -u +%F)"
  echo
  echo "| case | target | tps | Sluice CPU us/tx | share on replica |"
  echo "|---|---|---:|---:|---:|"
} | tee "$OUT"

pg_case() {  # target -> "tps cpu share"
  local t=$1 before after p0 r0 p1 r1 out tps txs
  p0=$(pg_commits "$PG_PORT"); r0=$(pg_commits "$PG_REPLICA"); before=$(cpu_us "${PID[$t]}")
  # synchronous_commit = on for these clients (the sandbox defaults to off, which holds WAL back
  # from the replica for up to 200 ms and so hides how fast a replica really catches up).
  out="$(PGOPTIONS="-c synchronous_commit=on" timeout $((SECONDS_PER_CASE * 3 + 60)) pgbench -n -c 16 -j 2 -T "$SECONDS_PER_CASE" -f "$WORK/read.sql@9" -f "$WORK/write.sql@1" \
    -h 127.0.0.1 -p "${PGPORT[$t]}" -U app app 2>&1)" || true
  after=$(cpu_us "${PID[$t]}"); p1=$(pg_commits "$PG_PORT"); r1=$(pg_commits "$PG_REPLICA")
  tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)"
  txs="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
  awk -v tps="${tps:-0}" -v d=$((after - before)) -v t="${txs:-1}" -v p=$((p1 - p0)) -v r=$((r1 - r0)) \
    'BEGIN {printf "%d %.1f %.0f\n", tps, d / t, (p + r) ? 100 * r / (p + r) : 0}'
}
my_case() {
  local t=$1 before after p0 r0 p1 r1 out tps txs
  p0=$(my_selects "$MY_PORT"); r0=$(my_selects "$MY_REPLICA"); before=$(cpu_us "${PID[$t]}")
  out="$(timeout $((SECONDS_PER_CASE * 3 + 60)) sysbench oltp_read_only "${COMMON[@]}" --mysql-host=127.0.0.1 \
    --mysql-port="${MYPORT[$t]}" --threads=64 --time="$SECONDS_PER_CASE" --skip-trx=on --mysql-ignore-errors=all run 2>&1)" || true
  after=$(cpu_us "${PID[$t]}"); p1=$(my_selects "$MY_PORT"); r1=$(my_selects "$MY_REPLICA")
  txs="$(sed -n 's/^ *transactions: *\([0-9]*\).*/\1/p' <<<"$out")"
  tps="$(sed -n 's/^ *transactions: *[0-9]* *(\([0-9.]*\) per sec.*/\1/p' <<<"$out")"
  awk -v tps="${tps:-0}" -v d=$((after - before)) -v t="${txs:-1}" -v p=$((p1 - p0)) -v r=$((r1 - r0)) \
    'BEGIN {printf "%d %.1f %.0f\n", tps, d / t, (p + r) ? 100 * r / (p + r) : 0}'
}

for kind in pg my; do
  declare -A T C S
  T=() C=() S=()
  for _ in $(seq 1 "$ROUNDS"); do
    for t in $TARGETS; do
      read -r tps cpu share <<<"$(${kind}_case "$t")"
      T[$t]+="$tps "; C[$t]+="$cpu "; S[$t]+="$share "
    done
  done
  label="pgbench 9 reads : 1 write, 16 clients"
  [ "$kind" = my ] && label="sysbench oltp_read_only --skip-trx, 64 threads"
  for t in $TARGETS; do
    echo "| $label | $t | $(median <<<"${T[$t]}") | $(median <<<"${C[$t]}") | $(median <<<"${S[$t]}") % |" | tee -a "$OUT"
  done
done
sysbench oltp_read_only "${COMMON[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" cleanup >/dev/null 2>&1 || true
echo
"$ROOT/build/classify_bench" 1000000 | tee -a "$OUT"
echo
echo "written to $OUT"
