#!/usr/bin/env bash
# Memory per idle, logged-in client, PgBouncer and Sluice side by side in one run (issue 19):
# N clients log in (SCRAM) through the proxy, run one query each and stay idle
# (build/idle_clients); the proxy's RSS before, with them, and BENCH_AFTER seconds after they
# leave (Sluice gives freed memory back to the system once a minute).
#   bench/idle_compare.sh                      # BENCH_CLIENTS=10000, BENCH_AFTER=65
#   BENCH_CLIENTS=2000 BENCH_AFTER=5 bench/idle_compare.sh
# Results are appended to bench/out/<timestamp>.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${BENCH_CLIENTS:-10000}"
AFTER="${BENCH_AFTER:-65}"
POOL_SIZE="${POOL_SIZE:-20}"
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
SLUICE_PORT=6472 SLUICE1_PORT=6473 BOUNCER_PORT=6444
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
IDLE="$ROOT/build/idle_clients"
[ -x "$IDLE" ] || ninja -C "$ROOT/build" idle_clients >/dev/null
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((N + 200)) ]; then
  echo "idle_compare: the open-file limit $(ulimit -n) is below $N clients; lower BENCH_CLIENTS" >&2
  exit 1
fi

write_many_client_configs "$((N + 100))"

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

start() {  # target -> pid
  case "$1" in
    pgbouncer)
      start_pgbouncer
      ;;
    sluice) "$BIN" -c "$WORK/sluice.toml" >/dev/null 2>>"$WORK/sluice.log" & echo $! ;;
    sluice-1w) "$BIN" -c "$WORK/sluice1.toml" >/dev/null 2>>"$WORK/sluice1.log" & echo $! ;;
  esac
}
port_of() { case "$1" in pgbouncer) echo $BOUNCER_PORT ;; sluice) echo $SLUICE_PORT ;; *) echo $SLUICE1_PORT ;; esac; }

OUT_DIR="$ROOT/bench/out"
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/$(date -u +%Y%m%dT%H%M%SZ)-idle.md"
{
  echo "$N idle clients (SCRAM login, one SELECT 1 each, then idle), transaction mode, pool_size $POOL_SIZE, $(nproc) cores, $(date -u +%F)"
  echo
  echo "| target | RSS before KiB | RSS with clients KiB | bytes per idle client | login s | RSS ${AFTER}s after KiB | after / before |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
} | tee "$OUT"

for target in pgbouncer sluice-1w sluice; do
  pid="$(start "$target")"
  PIDS+=("$pid")
  port="$(port_of "$target")"
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.1; done
  sleep 1
  before="$(rss_kb "$pid")"
  # The clients wait for a line on a FIFO before they leave.
  mkfifo "$WORK/release.$target"
  "$IDLE" "host=127.0.0.1 port=$port user=app password=app dbname=app sslmode=disable" "$N" 100 \
    <"$WORK/release.$target" >"$WORK/idle.$target" 2>>"$WORK/idle.err" &
  ipid=$!
  exec 7>"$WORK/release.$target"
  for _ in $(seq 1 $((N / 5 + 900))); do grep -q '^ready' "$WORK/idle.$target" && break; sleep 0.1; done
  read -r _ ok failed secs < <(grep '^ready' "$WORK/idle.$target" || echo "ready 0 $N -")
  sleep 2
  with="$(rss_kb "$pid")"
  echo release >&7
  exec 7>&-
  wait "$ipid" 2>/dev/null || true
  sleep "$AFTER"
  after="$(rss_kb "$pid")"
  per=$(((with - before) * 1024 / (ok > 0 ? ok : 1)))
  ratio=$(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.2f", a / b}')
  note=""
  [ "$failed" != 0 ] && note=" ($failed of $N failed to log in)"
  echo "| $target$note | $before | $with | $per | $secs | $after | $ratio |" | tee -a "$OUT"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
