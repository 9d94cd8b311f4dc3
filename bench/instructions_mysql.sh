#!/usr/bin/env bash
# User-space instructions per MySQL transaction, Sluice (one worker, transaction mode) against
# HAProxy (TCP mode, one thread), under valgrind's callgrind: the MySQL counterpart of
# bench/instructions_compare.sh, a count the noise of a shared machine does not move, to go beside
# the CPU-time figures of bench/sysbench_compare.sh (issue 19: CPU per oltp_point_select at most
# 0.9x HAProxy's). Each proxy runs under callgrind; after a warm-up, counters are zeroed, sysbench
# oltp_point_select runs N and then 3N events (BENCH_CLIENTS threads, pool_size 4 for Sluice),
# each followed by a dump; per transaction = (I(3N) - I(N)) / 2N, which leaves out logins and
# start-up. Kernel time is not counted (HAProxy's relay is mostly kernel work: see the CPU figures).
#   bench/instructions_mysql.sh                    # N = 2000, 4 threads
#   BENCH_TX=6000 BENCH_CLIENTS=1 bench/instructions_mysql.sh   # one client: steadier counts
#   BENCH_KEEP=/tmp/cgm bench/instructions_mysql.sh # keep the dumps, to compare per function
#   BENCH_DIGESTS=1 bench/instructions_mysql.sh     # with [digests] on: what the query digests cost
# Needs valgrind and sysbench.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${BENCH_TX:-2000}"
CLIENTS="${BENCH_CLIENTS:-4}"
MY_PORT="${SLUICE_MY_PRIMARY_PORT:-13306}"
SLUICE_PORT=6741 HAPROXY_PORT=6742
command -v valgrind >/dev/null || { echo "bench/instructions_mysql.sh needs valgrind: apt-get install valgrind" >&2; exit 1; }
command -v sysbench >/dev/null || { echo "bench/instructions_mysql.sh needs sysbench" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
# Valgrind 3.19 cannot read clang's DWARF 5: Sluice runs from a copy without debug sections.
# BENCH_KEEP_DEBUG=1: keep a -gdwarf-4 build's line tables (bench/callgrind_self.py --lines).
if [ "${BENCH_KEEP_DEBUG:-0}" = 1 ]; then cp "$BIN" "$WORK/sluice"; else strip --strip-debug -o "$WORK/sluice" "$BIN"; fi

write_sluice_my_toml "$WORK/sluice.toml" "$SLUICE_PORT" 1 4 disable </dev/null
[ "${BENCH_DIGESTS:-0}" = 1 ] && printf '[digests]\nenabled = true\n' >>"$WORK/sluice.toml"
write_haproxy_my_cfg "$WORK/haproxy.cfg" "$HAPROXY_PORT" 200 <<<"nbthread 1"
mkdir -p "$WORK/cg-sluice" "$WORK/cg-haproxy"

SB=(--db-driver=mysql --mysql-user=app --mysql-password=app --mysql-db=app --tables=4 --table-size=10000
  --mysql-ssl=off)
sysbench oltp_point_select "${SB[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" cleanup >/dev/null 2>&1 || true
sysbench oltp_point_select "${SB[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" --threads=4 prepare >/dev/null

measure() {  # name, pid, port: (I(3N) - I(N)) / 2N
  local name=$1 pid=$2 port=$3 out=()
  sysbench oltp_point_select "${SB[@]}" --mysql-host=127.0.0.1 --mysql-port="$port" --threads="$CLIENTS" \
    --time=0 --events=200 run >/dev/null
  for events in "$N" $((3 * N)); do
    out+=("$(callgrind_count "$name" "$pid" "$events" sysbench oltp_point_select "${SB[@]}" --mysql-host=127.0.0.1 \
      --mysql-port="$port" --threads="$CLIENTS" --time=0 --events="$events" run)")
  done
  echo "$(((out[1] - out[0]) / (2 * N)))"
}

# Sluice starts itself again with glibc's per-thread cache off (src/app/allocator_env.hpp), but
# not under valgrind, where that exec would leave the tool: give it the setting from here.
(cd "$WORK/cg-sluice" && GLIBC_TUNABLES=glibc.malloc.tcache_count=0 exec valgrind --tool=callgrind --callgrind-out-file="$WORK/cg-sluice/cg.out.%p" \
  "$WORK/sluice" -c "$WORK/sluice.toml" 2>"$WORK/sluice.vg.log") &
PIDS+=($!)
(cd "$WORK/cg-haproxy" && exec valgrind --tool=callgrind --callgrind-out-file="$WORK/cg-haproxy/cg.out.%p" \
  haproxy -db -f "$WORK/haproxy.cfg" 2>"$WORK/haproxy.vg.log") &
PIDS+=($!)
for port in $SLUICE_PORT $HAPROXY_PORT; do
  for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done
SLUICE_VG="$(pgrep -f "callgrind-out-file=$WORK/cg-sluice" | tail -1)"
HAPROXY_VG="$(pgrep -f "callgrind-out-file=$WORK/cg-haproxy" | tail -1)"
PIDS+=("$SLUICE_VG" "$HAPROXY_VG")

s="$(measure sluice "$SLUICE_VG" $SLUICE_PORT)"
h="$(measure haproxy "$HAPROXY_VG" $HAPROXY_PORT)"
mkdir -p "$ROOT/bench/out"
OUT="$ROOT/bench/out/instructions-mysql-$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "User-space instructions per sysbench oltp_point_select transaction (callgrind), plain TCP, $CLIENTS threads (Sluice: pool_size 4, transaction mode), $(date -u +%F)"
  echo
  echo "| proxy | instructions per transaction | ratio to HAProxy |"
  echo "|---|---:|---:|"
  echo "| HAProxy (TCP mode, 1 thread) | $h | 1.00 |"
  echo "| Sluice (1 worker) | $s | $(awk -v s="$s" -v h="$h" 'BEGIN {printf "%.3g", s / h}') |"
} | tee "$OUT"
