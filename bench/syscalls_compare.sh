#!/usr/bin/env bash
# System calls per transaction, PgBouncer and Sluice side by side in one run (issue 19): each
# proxy's threads are traced with `strace -c -f` while pgbench -S runs BENCH_TX transactions
# through it; the table gives calls per transaction, the failed ones (nearly all EAGAIN: a read
# that found nothing) and the four most frequent calls. strace slows the proxy down: the counts
# are what is compared, not the time.
#   bench/syscalls_compare.sh                   # BENCH_TX=4000, BENCH_CLIENTS=4, POOL_SIZE=4
#   BENCH_CLIENTS=1 bench/syscalls_compare.sh   # one client: no waiting in line
#   BENCH_KEEP=/tmp/sc bench/syscalls_compare.sh # keep each proxy's whole strace -c summary there
#   BENCH_CONNECT=1 BENCH_CLIENTS=1 BENCH_TX=500 bench/syscalls_compare.sh  # pgbench -C: a login
#     (SCRAM) per transaction, so the counts are per login and its one transaction
# Results are appended to bench/out/<timestamp>-syscalls.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${BENCH_TX:-4000}"
CLIENTS="${BENCH_CLIENTS:-4}"
POOL_SIZE="${POOL_SIZE:-4}"
CONNECT=()
[ "${BENCH_CONNECT:-0}" = 1 ] && CONNECT=(-C)
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
SLUICE_PORT=6476 SLUICE1_PORT=6477 BOUNCER_PORT=6446
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
command -v strace >/dev/null || { echo "bench/syscalls_compare.sh needs strace: apt-get install strace" >&2; exit 1; }

write_sluice_pg_toml "$WORK/sluice.toml" "$SLUICE_PORT" 0 "$POOL_SIZE" </dev/null
sed -e "s/^workers = .*/workers = 1/" -e "s/127.0.0.1:$SLUICE_PORT/127.0.0.1:$SLUICE1_PORT/" "$WORK/sluice.toml" >"$WORK/sluice1.toml"
"$BIN" -c "$WORK/sluice.toml" >/dev/null 2>"$WORK/sluice.log" &
SLUICE_PID=$!
PIDS+=("$SLUICE_PID")
"$BIN" -c "$WORK/sluice1.toml" >/dev/null 2>"$WORK/sluice1.log" &
SLUICE1_PID=$!
PIDS+=("$SLUICE1_PID")

write_pgbouncer_ini "$BOUNCER_PORT" "$POOL_SIZE" <<CONF
server_tls_sslmode = disable
CONF
BOUNCER_PID="$(start_pgbouncer)"
PIDS+=("$BOUNCER_PID")
for port in $SLUICE_PORT $SLUICE1_PORT $BOUNCER_PORT; do
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.1; done
done

export PGPASSWORD=app
pgbench -i -q -s 10 -h 127.0.0.1 -p "$PG_PORT" -U app app >/dev/null 2>&1

OUT_DIR="$ROOT/bench/out"
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/$(date -u +%Y%m%dT%H%M%SZ)-syscalls.md"
{
  echo "pgbench -S$([ ${#CONNECT[@]} = 1 ] && echo " -C (a login per transaction)"), $N transactions, $CLIENTS clients over pool_size $POOL_SIZE, plain TCP, traced with strace -c -f; $(nproc) cores, $(date -u +%F)"
  echo
  echo "| target | syscalls per tx | failed per tx (EAGAIN) | most frequent, per tx |"
  echo "|---|---:|---:|---|"
} | tee "$OUT"

for target in pgbouncer sluice-1w sluice; do
  case "$target" in
    pgbouncer) pid=$BOUNCER_PID port=$BOUNCER_PORT ;;
    sluice) pid=$SLUICE_PID port=$SLUICE_PORT ;;
    *) pid=$SLUICE1_PID port=$SLUICE1_PORT ;;
  esac
  # Warm up (logins, pools), then trace every thread of the proxy during the counted run.
  pgbench -n -S -c "$CLIENTS" -j 1 -t 200 -h 127.0.0.1 -p "$port" -U app app >/dev/null 2>&1 || true
  args=()
  for t in /proc/"$pid"/task/*; do args+=(-p "${t##*/}"); done
  strace -c -f -o "$WORK/strace.$target" "${args[@]}" 2>/dev/null &
  spid=$!
  sleep 1
  # Each client logs in before its first transaction: without -C (BENCH_CONNECT) that is not counted.
  txs=$(pgbench -n -S "${CONNECT[@]}" -c "$CLIENTS" -j 1 -t $((N / CLIENTS)) -h 127.0.0.1 -p "$port" -U app app 2>/dev/null |
    awk '/number of transactions actually processed/ {split($6, a, "/"); print a[1]}')
  kill -INT "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  txs="${txs:-0}"
  row=$(awk -v t="$txs" '
    $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
      calls = $4; errors = (NF == 6 ? $5 : 0); name = $NF
      total += calls; failed += errors; c[name] = calls
    }
    END {
      if (t <= 0) { print "| - | - | no transactions |"; exit }
      n = 0
      PROCINFO["sorted_in"] = "@val_num_desc"
      for (k in c) { if (n++ < 4) top = top sprintf("%s%s %.2f", (n > 1 ? ", " : ""), k, c[k] / t) }
      printf "| %.2f | %.2f | %s |\n", total / t, failed / t, top
    }' "$WORK/strace.$target")
  echo "| $target $row" | tee -a "$OUT"
  if [ -n "${BENCH_KEEP:-}" ]; then mkdir -p "$BENCH_KEEP" && cp "$WORK/strace.$target" "$BENCH_KEEP/"; fi
done
