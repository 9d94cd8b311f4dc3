#!/usr/bin/env bash
# Where each proxy's CPU goes, kernel included, side by side in one run (issue 19): PgBouncer and
# Sluice with one worker are sampled by `perf record -e cpu-clock` (a software clock: this
# machine's hardware counters are not available) while `pgbench -S -c BENCH_CLIENTS` runs
# BENCH_SECONDS through each, alternated BENCH_ROUNDS times. The table gives, per function
# (kernel functions marked [k]), the microseconds of CPU per transaction it accounts for (samples
# x sample period / transactions), summed over the rounds: the kernel's share that the bench's
# utime/stime split cannot break down.
#   bench/kernel_profile.sh        # BENCH_CLIENTS=16, POOL_SIZE=10, BENCH_SECONDS=6, BENCH_ROUNDS=2
#   BENCH_TOP=40 bench/kernel_profile.sh     # rows shown (default 30)
#   BENCH_PGBENCH="-S -C" BENCH_CLIENTS=50 bench/kernel_profile.sh  # pgbench's options (default
#     -S): -C makes each transaction a new connection with its SCRAM login
#   BENCH_KEEP=/tmp/kp bench/kernel_profile.sh   # keep each perf.data there
#   BENCH_SCHED=1 bench/kernel_profile.sh    # and one more round per proxy with the scheduler's
#     switch and wake-up events recorded system-wide (bench/sched_summary.py): how often the
#     proxy is preempted and by what, and whom it wakes on its own CPU or the other
# Results are appended to bench/out/<timestamp>-kernel.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLIENTS="${BENCH_CLIENTS:-16}"
POOL_SIZE="${POOL_SIZE:-10}"
SECS="${BENCH_SECONDS:-6}"
ROUNDS="${BENCH_ROUNDS:-2}"
TOP="${BENCH_TOP:-30}"
read -r -a PGB_OPTS <<<"${BENCH_PGBENCH:--S}"
FREQ=4000  # samples per second of CPU: one stands for 250 us
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
SLUICE_PORT=6478 SLUICE1_PORT=6479 BOUNCER_PORT=6447
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
command -v perf >/dev/null || { echo "bench/kernel_profile.sh needs perf: apt-get install linux-perf" >&2; exit 1; }

write_many_client_configs 2000 "$POOL_SIZE"
start_pg_proxies
export PGPASSWORD=app
pgbench -i -q -s 10 -h 127.0.0.1 -p "$PG_PORT" -U app app >/dev/null 2>&1

declare -A TX VOL INVOL
# Context switches of a process so far (its live threads): "voluntary involuntary".
switches_of() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^voluntary_ctxt_switches/ {v += $2} /^nonvoluntary_ctxt_switches/ {n += $2} END {print v + 0, n + 0}'
}
TARGETS="pgbouncer sluice-1w"
for round in $(seq 1 "$ROUNDS"); do
  for target in $TARGETS; do
    pid="$(pid_of "$target")"
    perf record -q -e cpu-clock -F "$FREQ" -p "$pid" -o "$WORK/$target.$round.data" -- sleep "$((SECS + 1))" 2>/dev/null &
    rec=$!
    sleep 0.5
    read -r v0 n0 <<<"$(switches_of "$pid")"
    out="$(pgbench -n -c "$CLIENTS" -j 2 -T "$SECS" "${PGB_OPTS[@]}" -h 127.0.0.1 -p "$(port_of "$target")" -U app app 2>&1)" || true
    wait "$rec" || true
    tx="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
    TX[$target]=$((${TX[$target]:-0} + ${tx:-0}))
    read -r v1 n1 <<<"$(switches_of "$pid")"
    VOL[$target]=$((${VOL[$target]:-0} + v1 - v0)) INVOL[$target]=$((${INVOL[$target]:-0} + n1 - n0))
  done
done

# "target symbol us_per_tx" lines: perf's per-symbol sample counts over every round's file.
per_symbol() {  # target
  local f
  for f in "$WORK/$1".*.data; do
    perf report -i "$f" --stdio -n --no-children --sort dso,sym -q 2>/dev/null
  done | awk -v t="${TX[$1]}" -v us=$((1000000 / FREQ)) -v name="$1" '
    NF >= 5 && $2 ~ /^[0-9]+$/ {
      kind = $4; sym = $5; for (i = 6; i <= NF; i++) sym = sym " " $i
      if (kind == "[k]") sym = sym " [k]"
      n[sym] += $2
    }
    END { for (s in n) printf "%s\t%s\t%.3f\n", name, s, n[s] * us / t }'
}
{ per_symbol pgbouncer; per_symbol sluice-1w; } >"$WORK/symbols.tsv"

mkdir -p "$ROOT/bench/out"
OUT="$ROOT/bench/out/$(date -u +%Y%m%dT%H%M%SZ)-kernel.md"
{
  echo "perf record -e cpu-clock -F $FREQ of each proxy, pgbench ${PGB_OPTS[*]} -c $CLIENTS -T $SECS x $ROUNDS rounds, pool_size $POOL_SIZE, $(nproc) cores, $(uname -r), $(date -u +%F)"
  echo "transactions: PgBouncer ${TX[pgbouncer]}, Sluice (1 worker) ${TX[sluice-1w]}"
  for t in $TARGETS; do
    awk -v t="$t" -v v="${VOL[$t]}" -v n="${INVOL[$t]}" -v x="${TX[$t]}" \
      'BEGIN {printf "context switches per transaction, %s: %.3f voluntary (waits), %.3f involuntary (preempted)\n", t, v / x, n / x}'
  done
  echo
  awk -F'\t' '
    { v[$2, $1] = $3; syms[$2] = 1; tot[$1] += $3; if ($2 ~ /\[k\]$/) ktot[$1] += $3 }
    END {
      printf "| all samples | %.2f | %.2f |\n", tot["pgbouncer"], tot["sluice-1w"]
      printf "| kernel ([k]) | %.2f | %.2f |\n", ktot["pgbouncer"], ktot["sluice-1w"]
      for (s in syms) printf "%s\t%.3f\t%.3f\n", s, v[s, "pgbouncer"], v[s, "sluice-1w"] > "/dev/stderr"
    }' "$WORK/symbols.tsv" 2>"$WORK/rows.tsv" | { echo "| function | PgBouncer us/tx | Sluice 1w us/tx |"; echo "|---|---:|---:|"; cat; }
  sort -t$'\t' -k2,2gr -k3,3gr "$WORK/rows.tsv" | awk -F'\t' '{ m = $2 > $3 ? $2 : $3; print m "\t" $0 }' |
    sort -t$'\t' -k1,1gr | awk -v n="$TOP" 'NR <= n' | awk -F'\t' '{ gsub(/\|/, "/", $2); printf "| %s | %.3f | %.3f |\n", $2, $3, $4 }'
} | tee "$OUT"
if [ "${BENCH_SCHED:-0}" = 1 ]; then
  echo
  echo "Scheduler events, one more round of pgbench ${PGB_OPTS[*]} -c $CLIENTS -T 3 each (perf record -e sched:sched_switch,sched:sched_wakeup -a):"
  for target in $TARGETS; do
    pid="$(pid_of "$target")"
    comms="$(cat /proc/"$pid"/task/*/comm | sort -u | tr '\n' ' ')"
    perf record -q -e sched:sched_switch -e sched:sched_wakeup -a -o "$WORK/$target.sched" -- sleep 3.5 >/dev/null 2>&1 &
    rec=$!
    sleep 0.2
    out="$(pgbench -n -c "$CLIENTS" -j 2 -T 3 "${PGB_OPTS[@]}" -h 127.0.0.1 -p "$(port_of "$target")" -U app app 2>&1)" || true
    wait "$rec" || true
    tx="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
    echo "$target ($tx transactions):"
    # shellcheck disable=SC2086 # one argument per thread name
    perf script -i "$WORK/$target.sched" -F comm,tid,cpu,event,trace 2>/dev/null | python3 "$ROOT/bench/sched_summary.py" "$tx" $comms
  done
fi | tee -a "$OUT"
if [ -n "${BENCH_KEEP:-}" ]; then mkdir -p "$BENCH_KEEP" && cp "$WORK"/*.data "$BENCH_KEEP/"; fi
