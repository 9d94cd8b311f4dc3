#!/usr/bin/env bash
# Runs the libFuzzer targets (tests/fuzz) over their seed corpora for a bounded time each:
#   integration/fuzz.sh BUILD_DIR [SECONDS]      # the test command: SECONDS=20 per target
#   FUZZ_SECONDS=3600 integration/fuzz.sh build-san   # a release run (an hour per target)
# New inputs go to a scratch corpus, not into the repository; a crash leaves its input in
# BUILD_DIR/fuzz-crashes/<target>/ and fails the run (add it to the seed corpus as a regression
# test once fixed). Prints one line per target: executions, corpus size, result.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:?usage: fuzz.sh BUILD_DIR [SECONDS]}"
SECONDS_PER_TARGET="${2:-${FUZZ_SECONDS:-20}}"
status=0
for name in fuzz_pg fuzz_mysql fuzz_sql fuzz_config fuzz_front_door fuzz_shared_store; do
  bin="$BUILD/tests/fuzz/$name"
  [ -x "$bin" ] || { echo "$name: not built ($bin)"; status=1; continue; }
  seeds="$ROOT/tests/fuzz/corpus/${name#fuzz_}"
  work="$BUILD/fuzz-corpus/$name"
  crashes="$BUILD/fuzz-crashes/$name"
  mkdir -p "$work" "$crashes"
  log="$BUILD/fuzz-$name.log"
  # -rss_limit_mb and -timeout: a slow or greedy input is a finding too.
  if "$bin" "$work" "$seeds" -max_total_time="$SECONDS_PER_TARGET" -max_len=8192 -timeout=10 \
       -rss_limit_mb=2048 -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log and $crashes)"
    status=1
  fi
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
  corpus="$(find "$work" -type f | wc -l)"
  echo "$name: $execs executions in ${SECONDS_PER_TARGET}s, corpus $corpus, $result"
done
exit $status
