#!/usr/bin/env bash
# The cache's shared store ([cache] shared, Redis): how a cold instance fares when another has
# already filled the keys. Per round, two fresh instances start, "cold-local" (stream
# invalidation, no shared store) and "cold-shared" (the same plus the sandbox's Redis); then a
# third, "warm", fills Redis with a point-read load over 20,000 keys; then each cold instance runs
# the same load in turn. Prints TPS, Sluice's CPU microseconds per transaction, the share of reads
# answered from local memory, the misses answered from Redis instead of the server, and the
# Redis server's CPU per Redis lookup. PostgreSQL, pgbench scale 10, reads split to the replica.
#   bench/cache_shared_compare.sh            # BENCH_SECONDS=8, BENCH_ROUNDS=3
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_CASE="${BENCH_SECONDS:-8}"
ROUNDS="${BENCH_ROUNDS:-3}"
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
PG_REPLICA_PORT="${SLUICE_PG_REPLICA_PORT:-15433}"
REDIS_PORT="${SLUICE_REDIS_PORT:-16379}"
KEYS=20000
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

declare -A PID
start() {  # name, port, extra [cache] lines
  cat >"$WORK/$1.toml" <<CONF
[general]
log_level = "warn"
admin_users = ["admin"]
[postgres]
listen = "127.0.0.1:$2"
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
[[pools]]
database = "app"
cluster = "pg"
pool_size = 10
[cache]
mode = "all"
default_ttl = "600s"
invalidation = "stream"
$3
CONF
  "$BIN" -c "$WORK/$1.toml" >/dev/null 2>"$WORK/$1.log" &
  PID[$1]=$!
  PIDS+=("$!")
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$2" && break; sleep 0.1; done
  # Its change stream up (until then nothing is kept).
  for _ in $(seq 1 100); do
    [ "$(PGPASSWORD=admin psql -X -At -h 127.0.0.1 -p "$2" -U admin sluice -c 'SHOW CACHE_STREAMS' 2>/dev/null |
      cut -d'|' -f3)" = t ] && break
    sleep 0.1
  done
}
stop() { kill "${PID[$1]}" 2>/dev/null || true; wait "${PID[$1]}" 2>/dev/null || true; }
admin() { PGPASSWORD=admin psql -X -At -F ' ' -h 127.0.0.1 -p "$1" -U admin sluice -c "$2"; }

export PGPASSWORD=app
pgbench -i -q -s 10 -h 127.0.0.1 -p "$PG_PORT" -U app app >/dev/null 2>&1
wait_pg_replica
redis_pid="$("$ROOT/integration/sandbox.sh" pid redis)"
cat >"$WORK/point.sql" <<SQL
\\set aid random(1, $KEYS)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SQL

SHARED="shared = \"127.0.0.1:$REDIS_PORT\""
declare -A T C H R L
warm_sets=""
for round in $(seq 1 "$ROUNDS"); do
  # An instance uses only what was filled after its own change stream started (what came
  # before is unknown to it), so the cold instances start first, then the warm one fills Redis.
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" FLUSHALL >/dev/null
  start cold-local 6481 ""
  start cold-shared 6482 "$SHARED"
  start warm 6480 "$SHARED"
  pgbench -n -c 16 -j 2 -t 5000 -f "$WORK/point.sql" -h 127.0.0.1 -p 6480 -U app app >/dev/null 2>&1
  warm_sets+="$(admin 6480 'SHOW CACHE_SHARED' | awk '{print $8}') "
  for t in cold-local cold-shared; do
    port=6481
    [ "$t" = cold-shared ] && port=6482
    before=$(cpu_us "${PID[$t]}") rbefore=$(cpu_us "$redis_pid")
    out="$(timeout $((SECONDS_PER_CASE * 3 + 60)) pgbench -n -c 16 -j 2 -T "$SECONDS_PER_CASE" -f "$WORK/point.sql" \
      -h 127.0.0.1 -p "$port" -U app app 2>&1)" || true
    after=$(cpu_us "${PID[$t]}") rafter=$(cpu_us "$redis_pid")
    tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)"
    txs="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
    T[$t]+="${tps%.*} "
    [ "${txs:-0}" -gt 0 ] && C[$t]+="$(awk -v d=$((after - before)) -v n="$txs" 'BEGIN {printf "%.1f", d / n}') "
    read -r hits misses < <(admin "$port" "SHOW CACHE LIKE '*'" | awk '{print $6, $7}')
    L[$t]+="$(awk -v h="$hits" -v m="$misses" 'BEGIN {printf "%.1f", (h + m) ? 100 * h / (h + m) : 0}') "
    if [ "$t" = cold-shared ]; then
      read -r gets rhits stale < <(admin "$port" 'SHOW CACHE_SHARED' | awk '{print $3, $4, $6}')
      H[$t]+="$rhits/$misses (stale $stale) "
      [ "${gets:-0}" -gt 0 ] && R[$t]+="$(awk -v d=$((rafter - rbefore)) -v n="$gets" 'BEGIN {printf "%.1f", d / n}') "
    fi
  done
  stop warm
  stop cold-local
  stop cold-shared
done

OUT_DIR="$ROOT/bench/out"
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/cache-shared-$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "cache shared store: ${SECONDS_PER_CASE}s per run, median of $ROUNDS rounds, 16 clients, point reads over $KEYS keys" \
       "(pgbench scale 10, reads on the replica), fresh instances per round; the warm instance stored ${warm_sets}answers in Redis;" \
       "$(nproc) cores, $(date -u +%F)"
  echo
  echo "| target | tps | Sluice CPU us/tx | local hits % | misses answered by Redis (per run) | Redis CPU us/lookup |"
  echo "|---|---:|---:|---:|---|---:|"
  for t in cold-local cold-shared; do
    echo "| $t | $(median <<<"${T[$t]}") | $(median <<<"${C[$t]:-}") | $(median <<<"${L[$t]}") | ${H[$t]:--} | $(median <<<"${R[$t]:-}") |"
  done
} | tee "$OUT"
echo
echo "written to $OUT"
