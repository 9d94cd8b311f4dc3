#!/usr/bin/env bash
# Throughput and tail latency with many clients, and under a connection storm: PgBouncer and
# Sluice (default workers, and one worker) side by side in one run (issue 19).
#   - pgbench -S with 200 and with 2000 clients over pool_size 20: TPS, p99 latency (from
#     pgbench's per-transaction logs);
#   - storm: 100 busy clients (pgbench -S); after 2 s, BENCH_STORM new clients (SCRAM login and
#     one SELECT each, all started at once by build/idle_clients) arrive while they run. The busy
#     clients' p99 while the storm lasts, against their p99 in a calm run of the same length.
#   bench/latency_compare.sh                  # BENCH_SECONDS=15, BENCH_ROUNDS=2, BENCH_STORM=5000
#   BENCH_ONLY=storm bench/latency_compare.sh # one part: 200, 2000 or storm
# Results are appended to bench/out/<timestamp>-latency.md. Every run is bounded by timeouts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECS="${BENCH_SECONDS:-15}"  # 2000 clients through PgBouncer need more than 5 s to log in
ROUNDS="${BENCH_ROUNDS:-2}"
STORM="${BENCH_STORM:-5000}"
POOL_SIZE="${POOL_SIZE:-20}"
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
SLUICE_PORT=6476 SLUICE1_PORT=6477 BOUNCER_PORT=6446
TARGETS="pgbouncer sluice sluice-1w"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
IDLE="$ROOT/build/idle_clients"
[ -x "$IDLE" ] || ninja -C "$ROOT/build" idle_clients >/dev/null
ulimit -n "$(ulimit -Hn)"
MAXC=$((STORM + 2500))
if [ "$(ulimit -n)" -lt $((MAXC + 500)) ]; then
  echo "latency_compare: the open-file limit $(ulimit -n) is too low for $STORM storm clients" >&2
  exit 1
fi

write_many_client_configs "$MAXC"

start_pg_proxies

export PGPASSWORD=app
mkdir -p "$WORK/logs"
# The p99 of the transaction latencies (ms) in the pgbench logs `prefix`.*, counting only
# transactions that ended between epoch seconds $2 and $3 (optional).
p99() {
  cat "$WORK/logs/$1".* 2>/dev/null |
    awk -v from="${2:-0}" -v to="${3:-1e12}" '{ t = $5 + $6 / 1e6; if (t >= from && t <= to) print $3 }' |
    sort -n | awk '{ a[NR] = $1 } END { if (NR) { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.2f", a[i] / 1000 } else print "-" }'
}
# The machine's CPU time so far, busy and idle (all cores, µs): "busy idle".
machine_us() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / {printf "%d %d\n", ($2 + $3 + $4 + $7 + $8 + $9) * 1000000 / hz, ($5 + $6) * 1000000 / hz}' /proc/stat
}
# pgbench -S through `target` with `clients` for `secs`, logging every transaction under `prefix`:
# prints "tps cpu_us_per_tx pgbench_cpu_us_per_tx machine_idle_percent pgbench_waits_per_tx
# proxy_waits_per_tx" (waits: voluntary context switches, each a sleep in poll/epoll_wait).
pgb() {  # target clients secs prefix
  local port pid before after out tps txs m0 m1 ru w0 w1
  port="$(port_of "$1")" pid="$(pid_of "$1")"
  rm -f "$WORK/logs/$4".*
  before=$(cpu_us "$pid") w0=$(waits_of "$pid")
  m0="$(machine_us)"
  out="$(cd "$WORK/logs" && with_rusage timeout $(($3 * 3 + 180)) pgbench -n -S -c "$2" -j 2 -T "$3" --log \
    --log-prefix="$4" -h 127.0.0.1 -p "$port" -U app app 2>&1)" || true
  after=$(cpu_us "$pid") w1=$(waits_of "$pid")
  m1="$(machine_us)"
  ru="$(grep '^rusage ' <<<"$out" | tail -n 1)"
  tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)"
  txs="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
  if [ -z "$tps" ] || [ -z "$txs" ] || [ "$txs" = 0 ] || [ -z "$ru" ]; then
    echo "error -"
    { echo "== $1 $2 clients"; grep -v "^progress" <<<"$out" | tail -n 3; } >>"$WORK/pgbench.err"
    return
  fi
  echo "${tps%.*} $(awk -v d=$((after - before)) -v t="$txs" -v ru="$ru" -v m0="$m0" -v m1="$m1" \
    -v pw=$((w1 - w0)) 'BEGIN {
    split(m0, a, " "); split(m1, b, " "); busy = b[1] - a[1]; idle = b[2] - a[2]; split(ru, r, " ")
    printf "%.1f %.1f %.0f %.2f %.2f", d / t, (r[2] + r[3]) / t, 100 * idle / (busy + idle), r[4] / t, pw / t }')"
}

OUT_DIR="$ROOT/bench/out"
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/$(date -u +%Y%m%dT%H%M%SZ)-latency.md"
echo "pgbench -S, transaction mode, pool_size $POOL_SIZE, ${SECS}s per run, medians of $ROUNDS rounds, $(nproc) cores, $(date -u +%F)" | tee "$OUT"

many() {  # clients
  if [ -n "${BENCH_ONLY:-}" ] && [ "$BENCH_ONLY" != "$1" ]; then return; fi
  echo | tee -a "$OUT"
  echo "| clients | target | tps | p99 latency ms | proxy CPU us/tx | pgbench CPU us/tx | machine idle % | pgbench waits/tx | proxy waits/tx |" | tee -a "$OUT"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|" | tee -a "$OUT"
  declare -A T P C G I W X
  for _ in $(seq 1 "$ROUNDS"); do
    for target in $TARGETS; do
      read -r tps cpu gcpu idle gw pw <<<"$(pgb "$target" "$1" "$SECS" "m$1$target")"
      [ "$tps" = error ] && continue
      T[$target]+="$tps " C[$target]+="$cpu " G[$target]+="$gcpu " I[$target]+="$idle " W[$target]+="$gw " X[$target]+="$pw "
      P[$target]+="$(p99 "m$1$target") "
    done
  done
  for target in $TARGETS; do
    echo "| $1 | $target | $(median <<<"${T[$target]:-}") | $(median <<<"${P[$target]:-}") | $(median <<<"${C[$target]:-}") | $(median <<<"${G[$target]:-}") | $(median <<<"${I[$target]:-}") | $(median <<<"${W[$target]:-}") | $(median <<<"${X[$target]:-}") |" | tee -a "$OUT"
  done
}

storm() {
  if [ -n "${BENCH_ONLY:-}" ] && [ "$BENCH_ONLY" != storm ]; then return; fi
  echo | tee -a "$OUT"
  echo "Storm: 100 busy clients; after 2 s, $STORM new clients log in (SCRAM) and run one query." | tee -a "$OUT"
  echo | tee -a "$OUT"
  echo "| target | calm p99 ms | storm p99 ms | storm / calm | storm logins | storm s | busy tps calm | busy tps storm |" | tee -a "$OUT"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|" | tee -a "$OUT"
  declare -A CP SP R L S CT ST
  for _ in $(seq 1 "$ROUNDS"); do
    for target in $TARGETS; do
      read -r ctps _ <<<"$(pgb "$target" 100 "$SECS" "calm$target")"
      [ "$ctps" = error ] && continue
      local calm
      calm="$(p99 "calm$target")"
      # The busy run, with the storm 2 s in: the storm's window is from its start until its
      # clients are all in (or the busy run ends).
      rm -f "$WORK/logs/busy$target".* "$WORK/release"
      (pgb "$target" 100 "$SECS" "busy$target" >"$WORK/busy.out") &
      local bpid=$!
      sleep 2
      mkfifo "$WORK/release"
      local t0 t1
      t0="$(date +%s.%N)"
      "$IDLE" "host=127.0.0.1 port=$(port_of "$target") user=app password=app dbname=app sslmode=disable" "$STORM" "$STORM" \
        <"$WORK/release" >"$WORK/storm.out" 2>>"$WORK/storm.err" &
      local ipid=$!
      exec 8>"$WORK/release"
      for _ in $(seq 1 $((SECS * 10 + STORM / 5 + 600))); do grep -q '^ready' "$WORK/storm.out" && break; sleep 0.1; done
      t1="$(date +%s.%N)"
      echo release >&8
      exec 8>&-
      wait "$ipid" 2>/dev/null || true
      wait "$bpid" || true
      read -r btps _ <"$WORK/busy.out"
      read -r _ ok _ secs < <(grep '^ready' "$WORK/storm.out" || echo "ready 0 $STORM -")
      local sp
      sp="$(p99 "busy$target" "$t0" "$t1")"
      CP[$target]+="$calm " SP[$target]+="$sp " L[$target]+="$ok " S[$target]+="$secs "
      CT[$target]+="$ctps " ST[$target]+="$btps "
      R[$target]+="$(awk -v a="$sp" -v b="$calm" 'BEGIN { if (b > 0 && a != "-") printf "%.2f", a / b; else print "-" }') "
    done
  done
  for target in $TARGETS; do
    echo "| $target | $(median <<<"${CP[$target]:-}") | $(median <<<"${SP[$target]:-}") | $(median <<<"${R[$target]:-}") | $(median <<<"${L[$target]:-}") | $(median <<<"${S[$target]:-}") | $(median <<<"${CT[$target]:-}") | $(median <<<"${ST[$target]:-}") |" | tee -a "$OUT"
  done
}

many 200
many 2000
storm
if [ -s "$WORK/pgbench.err" ]; then
  echo
  echo "pgbench errors (a failed run counts as no result):"
  sed 's/^/    /' "$WORK/pgbench.err"
fi | tee -a "$OUT"
echo
echo "written to $OUT"
