# Shared by the bench/ scripts (sourced): build and sandbox, a work directory whose processes
# are stopped on exit, CPU accounting and medians.
# Expects ROOT; sets BIN, WORK, PIDS.
BIN="${SLUICE_BIN:-$ROOT/build/sluice}"
[ -x "$BIN" ] || "$ROOT/integration/dev.sh" build
"$ROOT/integration/sandbox.sh" up >/dev/null

# The sandbox servers accept TLS; libpq's default (sslmode=prefer) would then encrypt direct and
# HAProxy connections only. Plain TCP unless a script asks for TLS.
export PGSSLMODE="${PGSSLMODE:-disable}"

WORK="$(mktemp -d /tmp/sluice-bench.XXXXXX)"
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# utime+stime of a process (all threads), in microseconds.
cpu_us() { echo $(($(awk '{print $14 + $15}' "/proc/$1/stat") * 1000000 / $(getconf CLK_TCK))); }
# Median of the whitespace-separated numbers on stdin ("-" when there are none).
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "-"}'; }
