#!/usr/bin/env bash
# Soak: a mixed load through one Sluice for a configurable time, recording its resident memory
# and open file descriptors every few seconds. RSS and fds must stay flat once warm.
#   bench/soak.sh                       # SOAK_MINUTES=30, SOAK_INTERVAL=10 (seconds)
#   SOAK_MINUTES=5 bench/soak.sh        # a short run
#   SOAK_PORT (6472; MySQL on the next port), and the sandbox's variables (SLUICE_SANDBOX,
#   SLUICE_PG_PRIMARY_PORT, ...) to soak against a second sandbox while the first one is busy.
# The load, in parallel, each rate-limited so the run measures leaks rather than throughput:
#   - pgbench tpcb-like (8 clients, transaction pool, read/write split to the replica);
#   - pgbench -S with a new connection per transaction (-C: logins and logouts, TLS on half);
#   - pgbench -M prepared reads of a table nobody writes, through the result cache (2000 keys,
#     2 s TTL: hits, misses, fills and expiries all the time; tables under constant writes are
#     never stored, so pgbench's own tables would not exercise the cache);
#   - sysbench oltp_read_write on MariaDB (4 threads);
#   - a SIGHUP reload every minute, and an admin console query every interval.
# The load uses database app2 on both servers, so tests and benchmarks on "app" do not disturb it.
# Writes bench/out/soak-<timestamp>.csv (seconds, rss_kb, fds, server connections, heap in use and
# free as the allocator counts them, RSS anonymous and file-backed) and prints a summary: each
# after warm-up (the first 10 %) against the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MINUTES="${SOAK_MINUTES:-30}"
INTERVAL="${SOAK_INTERVAL:-10}"
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
PG_REPLICA_PORT="${SLUICE_PG_REPLICA_PORT:-15433}"
MY_PORT="${SLUICE_MY_PRIMARY_PORT:-13306}"
MY_REPLICA_PORT="${SLUICE_MY_REPLICA_PORT:-13307}"
PORT="${SOAK_PORT:-6472}"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
SECS=$((MINUTES * 60))

"$ROOT/integration/certs.sh" "$WORK/certs" >/dev/null
cat >"$WORK/sluice.toml" <<CONF
[general]
log_level = "warn"
admin_users = ["admin"]
max_client_conn = 500
[postgres]
listen = "127.0.0.1:$PORT"
tls = "allow"
tls_cert = "$WORK/certs/server.pem"
tls_key = "$WORK/certs/server.key"
[mysql]
listen = "127.0.0.1:$((PORT + 1))"
[[users]]
name = "app"
password = "app"
[[users]]
name = "admin"
password = "admin"
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:$PG_PORT"
replicas = ["127.0.0.1:$PG_REPLICA_PORT"]
# The cached reads: same servers, eventual consistency (under read-your-writes only the
# primary's answers are stored, and these reads go to the replica).
[clusters.pg_eventual]
protocol = "postgres"
primary = "127.0.0.1:$PG_PORT"
replicas = ["127.0.0.1:$PG_REPLICA_PORT"]
consistency = "eventual"
[clusters.my]
protocol = "mysql"
primary = "127.0.0.1:$MY_PORT"
replicas = ["127.0.0.1:$MY_REPLICA_PORT"]
[[pools]]
database = "app2"
cluster = "pg"
pool_size = 10
[[pools]]
database = "app2_cached"
server_database = "app2"
cluster = "pg_eventual"
pool_size = 4
[[pools]]
database = "app2"
cluster = "my"
pool_size = 10
[cache]
enabled = true
mode = "all"
max_bytes = "32MiB"
default_ttl = "2s"
CONF
"$BIN" -c "$WORK/sluice.toml" 2>"$WORK/sluice.log" &
SLUICE_PID=$!
PIDS+=("$SLUICE_PID")
for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$PORT" && break; sleep 0.1; done

export PGPASSWORD=app
pgbench -i -q -s 5 -h 127.0.0.1 -p "$PG_PORT" -U app app2 >/dev/null 2>&1
psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U app app2 <<'SQL' >/dev/null
DROP TABLE IF EXISTS soak_ref;
CREATE TABLE soak_ref (id int PRIMARY KEY, label text);
INSERT INTO soak_ref SELECT g, md5(g::text) FROM generate_series(1, 2000) g;
SQL
cat >"$WORK/cached.sql" <<'SQL'
\set id random(1, 2000)
SELECT id, label FROM soak_ref WHERE id = :id;
SQL
SB=(--db-driver=mysql --mysql-user=app --mysql-password=app --mysql-db=app2 --tables=2 --table-size=10000)
sysbench oltp_read_write "${SB[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" cleanup >/dev/null 2>&1 || true
sysbench oltp_read_write "${SB[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" prepare >/dev/null

LOADS=()
bg() { "$@" >>"$WORK/load.log" 2>&1 & LOADS+=($!); PIDS+=($!); }
bg timeout $((SECS + 60)) pgbench -n -c 8 -j 2 -T "$SECS" -R 300 -h 127.0.0.1 -p "$PORT" -U app app2
bg timeout $((SECS + 60)) env PGSSLMODE=require pgbench -n -c 2 -j 1 -T "$SECS" -R 20 -C -S -h 127.0.0.1 -p "$PORT" -U app app2
bg timeout $((SECS + 60)) env PGSSLMODE=disable pgbench -n -c 2 -j 1 -T "$SECS" -R 20 -C -S -h 127.0.0.1 -p "$PORT" -U app app2
bg timeout $((SECS + 60)) pgbench -n -c 4 -j 1 -T "$SECS" -R 500 -M prepared -f "$WORK/cached.sql" -h 127.0.0.1 -p "$PORT" -U app app2_cached
bg timeout $((SECS + 60)) sysbench oltp_read_write "${SB[@]}" --mysql-host=127.0.0.1 --mysql-port="$((PORT + 1))" \
  --threads=4 --rate=50 --time="$SECS" --mysql-ignore-errors=1213,1205 run

mkdir -p "$ROOT/bench/out"
CSV="$ROOT/bench/out/soak-$(date -u +%Y%m%dT%H%M%SZ).csv"
echo "seconds,rss_kb,fds,server_connections,heap_in_use_kb,heap_free_kb,rss_anon_kb,rss_file_kb" >"$CSV"
start=$(date +%s)
last_reload=$start
while :; do
  now=$(date +%s)
  elapsed=$((now - start))
  [ "$elapsed" -ge "$SECS" ] && break
  kill -0 "$SLUICE_PID" 2>/dev/null || { echo "Sluice exited during the soak"; tail -20 "$WORK/sluice.log"; exit 1; }
  rss="$(awk '/VmRSS/ {print $2}' "/proc/$SLUICE_PID/status")"
  # RSS is anonymous memory (heap, stacks) plus file pages (the binary's and libraries' code,
  # mapped in as code paths first run): a leak shows in the first.
  rss_parts="$(awk '/RssAnon/ {a = $2} /RssFile/ {f = $2} END {printf "%s,%s", a, f}' "/proc/$SLUICE_PID/status")"
  fds="$(find "/proc/$SLUICE_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)"
  servers="$(PGPASSWORD=admin psql -X -At -h 127.0.0.1 -p "$PORT" -U admin -d sluice -c 'SHOW SERVERS' 2>/dev/null | wc -l)"
  # The allocator's view (SHOW MEMORY): heap in use level while RSS grows is fragmentation,
  # heap in use growing is something Sluice keeps.
  heap="$(PGPASSWORD=admin psql -X -At -F, -h 127.0.0.1 -p "$PORT" -U admin -d sluice -c 'SHOW MEMORY' 2>/dev/null |
    awk -F, '$1 == "heap_in_use" {u = int($2 / 1024)} $1 == "heap_free" {f = int($2 / 1024)} END {printf "%s,%s", u, f}')"
  echo "$elapsed,$rss,$fds,$servers,$heap,$rss_parts" >>"$CSV"
  if [ $((now - last_reload)) -ge 60 ]; then kill -HUP "$SLUICE_PID"; last_reload=$now; fi
  sleep "$INTERVAL"
done
for p in "${LOADS[@]}"; do wait "$p" || true; done
kill -0 "$SLUICE_PID" 2>/dev/null || { echo "Sluice exited during the soak"; exit 1; }

# Summary: warm (after the first 10 %) against the last sample, and RSS at each quarter, so a
# plateau (allocator warm-up) can be told from steady growth (a leak).
awk -F, -v secs="$SECS" 'NR > 1 {
    if ($1 >= secs / 10 && !warm) { warm = $2; wfd = $3; wheap = $5; wanon = $7; wfile = $8 }
    for (q = 1; q <= 3; q++) if ($1 >= secs * q / 4 && !quarter[q]) quarter[q] = $2
    if ($2 > peak) peak = $2
    last = $2; lfd = $3; lheap = $5; lanon = $7; lfile = $8; n++
  }
  END {
    printf "soak: %d samples over %d s; RSS warm %d KiB, end %d KiB (%+.1f%%), peak %d KiB; fds warm %d, end %d\n",
      n, secs, warm, last, (last - warm) * 100.0 / warm, peak, wfd, lfd
    printf "soak: RSS at 10/25/50/75/100 %%: %d %d %d %d %d KiB\n", warm, quarter[1], quarter[2], quarter[3], last
    if (wanon) printf "soak: RSS anonymous warm %d KiB, end %d KiB (%+.1f%%); file-backed warm %d KiB, end %d KiB\n", wanon, lanon, (lanon - wanon) * 100.0 / wanon, wfile, lfile
    if (wheap) printf "soak: heap in use warm %d KiB, end %d KiB (%+.1f%%)\n", wheap, lheap, (lheap - wheap) * 100.0 / wheap
  }' "$CSV"
grep -E "^tps|transactions:|number of transactions actually processed" "$WORK/load.log" | sed 's/^/  load: /' || true
echo "samples: $CSV"
