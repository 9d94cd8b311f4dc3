#!/usr/bin/env bash
# User-space instructions per transaction, Sluice (one worker) against PgBouncer, under
# valgrind's callgrind: a count that does not move with the noise of a shared machine, to go
# beside the CPU-time figures of bench/pgbench_compare.sh and bench/tls_compare.sh.
# Each proxy runs under callgrind; after a warm-up, counters are zeroed, pgbench -S runs N and
# then 3N transactions (8 clients over pool_size 4, so most transactions wait in line for a
# server connection), each followed by a dump; per transaction = (I(3N) - I(N)) / 2N, which
# leaves out logins and start-up. Kernel time is not counted (see the CPU figures for that).
#   bench/instructions_compare.sh              # TLS between pgbench and the proxies, N = 2000
#   BENCH_TLS=0 bench/instructions_compare.sh  # plain TCP
#   BENCH_KEEP=/tmp/cg bench/instructions_compare.sh  # keep the N and 3N dumps there, to compare
#     per function: callgrind_annotate each, subtract (functions named, no lines: see below)
#   BENCH_CONNECT=1 BENCH_TX=200 bench/instructions_compare.sh  # pgbench -C: a login (SCRAM) per
#     transaction, so the count is what a login and its one transaction cost
#   BENCH_ACCESS_RULES=50 BENCH_CONNECT=1 BENCH_TX=200 bench/instructions_compare.sh  # Sluice with 50
#     [[access]] rules, the one that matches last: what the rules add to a login (compare with 0)
#   BENCH_FIREWALL_RULES=200 BENCH_TLS=0 BENCH_CLIENTS=1 bench/instructions_compare.sh  # Sluice with 200
#     [[firewall.rules]] that pgbench's statement does not match (tables, patterns, kinds): what they
#     add per statement
#   BENCH_QUERY_RULES=100 BENCH_TLS=0 BENCH_CLIENTS=1 bench/instructions_compare.sh  # Sluice with 100
#     [[rules]]: 99 that pgbench's statement does not match (tables, patterns, kinds, applications,
#     users, a time window) and a last one that tags every statement: what they add per statement
#   BENCH_DIGESTS=1 BENCH_TLS=0 BENCH_CLIENTS=1 bench/instructions_compare.sh  # with [digests] on:
#     what the query digests add per statement
#   BENCH_CLIENTS=1 bench/instructions_compare.sh  # one client: no waiting in line, so the count
#     hardly moves between runs (with 8, how the waits fall moves it by several hundred); for a
#     before/after comparison of a change on the hot path
#   POOL_SIZE=20 BENCH_CLIENTS=16 BENCH_TLS=0 bench/instructions_compare.sh  # many clients, none
#     waiting in line (pool_size for both proxies; default 4)
#   BENCH_CACHE=1 BENCH_TLS=0 BENCH_CLIENTS=1 bench/instructions_compare.sh  # Sluice's result
#     cache on ([cache] mode = "all") and every transaction the same SELECT of one row: after the
#     first, each is a cache hit (PgBouncer forwards them: the row compares a hit with a relay)
# Needs valgrind (apt-get install valgrind). Valgrind 3.19 cannot read clang's DWARF 5, so
# Sluice runs from a copy with the debug sections stripped (symbols stay). For costs per source
# line, build with -gdwarf-4 and set BENCH_KEEP_DEBUG=1 (then bench/callgrind_self.py --lines).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${BENCH_TX:-2000}"
CLIENTS="${BENCH_CLIENTS:-8}"
POOL_SIZE="${POOL_SIZE:-4}"
TLS="${BENCH_TLS:-1}"
CONNECT=()
[ "${BENCH_CONNECT:-0}" = 1 ] && CONNECT=(-C)
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
SLUICE_PORT=6731 BOUNCER_PORT=6732
command -v valgrind >/dev/null || { echo "bench/instructions_compare.sh needs valgrind: apt-get install valgrind" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
chown postgres "$WORK" 2>/dev/null || true
"$ROOT/integration/certs.sh" "$WORK/certs" >/dev/null
chmod -R a+rX "$WORK/certs"
MODE=disable
[ "$TLS" = 1 ] && MODE=require
if [ "${BENCH_KEEP_DEBUG:-0}" = 1 ]; then cp "$BIN" "$WORK/sluice"; else strip --strip-debug -o "$WORK/sluice" "$BIN"; fi

cat >"$WORK/sluice.toml" <<CONF
[general]
workers = 1
log_level = "warn"
[postgres]
listen = "127.0.0.1:$SLUICE_PORT"
tls = "allow"
tls_cert = "$WORK/certs/server.pem"
tls_key = "$WORK/certs/server.key"
[[users]]
name = "app"
password = "app"
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:$PG_PORT"
server_tls = "disable"
[[pools]]
database = "app"
cluster = "pg"
pool_mode = "transaction"
pool_size = $POOL_SIZE
CONF
# [[access]] rules: N - 1 for other networks (each one's addresses compared), then the one that
# lets the bench in.
RULES="${BENCH_ACCESS_RULES:-0}"
if [ "$RULES" -gt 0 ]; then
  for i in $(seq 1 $((RULES - 1))); do
    printf '[[access]]\naddress = ["10.%d.0.0/16", "fd00:%x::/32"]\naction = "reject"\n' $((i % 256)) "$i" >>"$WORK/sluice.toml"
  done
  printf '[[access]]\naddress = "127.0.0.1"\naction = "allow"\n' >>"$WORK/sluice.toml"
fi
# [[firewall.rules]]: N that do not match pgbench -S's statement, a third each on tables, patterns
# and statement kinds.
FW="${BENCH_FIREWALL_RULES:-0}"
for i in $(seq 1 "$FW"); do
  case $((i % 3)) in
    0) printf '[[firewall.rules]]\ntables = ["nope_%d"]\naction = "deny"\n' "$i" ;;
    1) printf '[[firewall.rules]]\nmatch = "nope_%d|pg_sleep"\naction = "deny"\n' "$i" ;;
    2) printf '[[firewall.rules]]\nkinds = ["truncate", "drop"]\nuser = ["u%d"]\naction = "deny"\n' "$i" ;;
  esac >>"$WORK/sluice.toml"
done
# [[rules]]: N-1 that do not match pgbench -S's statement, then one that tags everything.
QR="${BENCH_QUERY_RULES:-0}"
for i in $(seq 1 $((QR > 0 ? QR - 1 : 0))); do
  case $((i % 5)) in
    0) printf '[[rules]]\ntables = ["nope_%d"]\nroute = "primary"\n' "$i" ;;
    1) printf '[[rules]]\nmatch = "nope_%d|pg_sleep"\ncache = false\n' "$i" ;;
    2) printf '[[rules]]\nkinds = ["truncate", "drop"]\naction = "deny"\n' ;;
    3) printf '[[rules]]\napplication = ["app_%d"]\ntag = "t%d"\n' "$i" "$i" ;;
    4) printf '[[rules]]\nuser = ["u%d"]\ndays = "sat"\nhours = "01:00-02:00"\ntime_zone = "Europe/Berlin"\ntag = "w%d"\n' "$i" "$i" ;;
  esac >>"$WORK/sluice.toml"
done
[ "$QR" -gt 0 ] && printf '[[rules]]\nname = "everything"\ntag = "all"\n' >>"$WORK/sluice.toml"
[ "${BENCH_DIGESTS:-0}" = 1 ] && printf '[digests]\nenabled = true\n' >>"$WORK/sluice.toml"
SCRIPT=(-S)
if [ "${BENCH_CACHE:-0}" = 1 ]; then
  printf '[cache]\nmode = "all"\ndefault_ttl = "1h"\n' >>"$WORK/sluice.toml"
  echo "SELECT abalance FROM pgbench_accounts WHERE aid = 1;" >"$WORK/hit.sql"
  SCRIPT=(-f "$WORK/hit.sql")
fi
write_pgbouncer_ini "$BOUNCER_PORT" "$POOL_SIZE" <<CONF
client_tls_sslmode = allow
client_tls_cert_file = $WORK/certs/server.pem
client_tls_key_file = $WORK/certs/server.key
server_tls_sslmode = disable
CONF
mkdir -p "$WORK/cg-sluice" "$WORK/cg-pgbouncer"
chmod -R a+rwX "$WORK"

export PGPASSWORD=app
PGSSLMODE=disable pgbench -i -q -s 10 -h 127.0.0.1 -p "$PG_PORT" -U app app >/dev/null 2>&1

# Per transaction: (I(3N) - I(N)) / 2N. $4: the user owning the process (PgBouncer runs as postgres).
measure() {  # name, pid, port, as-user ("" or postgres)
  local name=$1 pid=$2 port=$3 out=()
  PGSSLMODE=$MODE pgbench -n "${SCRIPT[@]}" -c "$CLIENTS" -j 1 -t 200 -h 127.0.0.1 -p "$port" -U app app >/dev/null 2>&1
  for per_client in $((N / CLIENTS)) $((3 * N / CLIENTS)); do
    out+=("$(CG_USER=$4 callgrind_count "$name" "$pid" "$per_client" env PGSSLMODE="$MODE" pgbench -n "${SCRIPT[@]}" \
      "${CONNECT[@]}" -c "$CLIENTS" -j 1 -t "$per_client" -h 127.0.0.1 -p "$port" -U app app)")
  done
  echo "$(((out[1] - out[0]) / (2 * N)))"
}

# BENCH_CALLGRIND_ARGS: more callgrind options for Sluice's run (e.g. --dump-instr=yes).
# shellcheck disable=SC2086
# Sluice starts itself again with glibc's per-thread cache off (src/app/allocator_env.hpp), but
# not under valgrind, where that exec would leave the tool: give it the setting from here.
(cd "$WORK/cg-sluice" && GLIBC_TUNABLES=glibc.malloc.tcache_count=0 exec valgrind --tool=callgrind --callgrind-out-file="$WORK/cg-sluice/cg.out.%p" \
  ${BENCH_CALLGRIND_ARGS:-} "$WORK/sluice" -c "$WORK/sluice.toml" 2>"$WORK/sluice.vg.log") &
PIDS+=($!)
if [ "$(id -u)" = 0 ]; then
  (cd "$WORK/cg-pgbouncer" && exec runuser -u postgres -- valgrind --tool=callgrind \
    --callgrind-out-file="$WORK/cg-pgbouncer/cg.out.%p" pgbouncer "$WORK/pgbouncer.ini" 2>"$WORK/pgbouncer.vg.log") &
  BOUNCER_USER=postgres
else
  (cd "$WORK/cg-pgbouncer" && exec valgrind --tool=callgrind --callgrind-out-file="$WORK/cg-pgbouncer/cg.out.%p" \
    pgbouncer "$WORK/pgbouncer.ini" 2>"$WORK/pgbouncer.vg.log") &
  BOUNCER_USER=""
fi
PIDS+=($!)
for port in $SLUICE_PORT $BOUNCER_PORT; do
  for _ in $(seq 1 300); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.1; done
done
SLUICE_VG="$(pgrep -f "callgrind-out-file=$WORK/cg-sluice" | tail -1)"
BOUNCER_VG="$(pgrep -f "callgrind-out-file=$WORK/cg-pgbouncer" | tail -1)"
PIDS+=("$SLUICE_VG" "$BOUNCER_VG")

s="$(measure sluice "$SLUICE_VG" $SLUICE_PORT "")"
b="$(measure pgbouncer "$BOUNCER_VG" $BOUNCER_PORT "$BOUNCER_USER")"
mkdir -p "$ROOT/bench/out"
OUT="$ROOT/bench/out/instructions-$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "User-space instructions per pgbench $([ "${BENCH_CACHE:-0}" = 1 ] && echo "transaction of one fixed SELECT, Sluice's cache on (hits)" || echo "-S transaction")$([ ${#CONNECT[@]} = 1 ] && echo " with a login each (-C)") (callgrind), $([ "$TLS" = 1 ] && echo "TLS between pgbench and the proxy" || echo "plain TCP"), $CLIENTS clients over pool_size $POOL_SIZE, $(date -u +%F)"
  echo
  echo "| proxy | instructions per transaction | ratio to PgBouncer |"
  echo "|---|---:|---:|"
  echo "| PgBouncer | $b | 1.00 |"
  echo "| Sluice (1 worker) | $s | $(awk -v s="$s" -v b="$b" 'BEGIN {printf "%.3g", s / b}') |"
} | tee "$OUT"
