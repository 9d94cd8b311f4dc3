#!/usr/bin/env bash
# The README's two commands, and their helpers. Every subcommand is idempotent.
#   integration/dev.sh up     install deps, build, start the sandbox and Sluice, print how to connect
#   integration/dev.sh test   install deps, build with ASan+UBSan, run every test (CTest) there, then
#                             the fuzz targets for a bounded time
#   integration/dev.sh down   stop Sluice and the sandbox
#   integration/dev.sh build  install deps and build only
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD="${SLUICE_BUILD_DIR:-$ROOT/build}"
SAN_BUILD="${SLUICE_SAN_BUILD_DIR:-$ROOT/build-san}"
GCC_BUILD="${SLUICE_GCC_BUILD_DIR:-$ROOT/build-gcc}"
RUN="$ROOT/.sandbox"
# clang 16 (Debian 12's clang-16 package) for the release and the sanitizer builds: its coroutines
# resume with less work than Debian's default clang 14 (bench/RESULTS.md, "clang 16").
CLANG=clang++-16

build() {
  "$ROOT/integration/setup.sh"
  # clang for the release build (GCC 12 builds it too; the test command checks that build).
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_WERROR=ON \
    -DCMAKE_CXX_COMPILER="$CLANG" >/dev/null
  cmake --build "$BUILD" -j2
}

sluice_running() {
  [ -f "$RUN/sluice.pid" ] && kill -0 "$(cat "$RUN/sluice.pid")" 2>/dev/null
}

stop_sluice() {
  if sluice_running; then
    local pid
    pid="$(cat "$RUN/sluice.pid")"
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$RUN/sluice.pid"
}

up() {
  build
  "$ROOT/integration/sandbox.sh" up
  stop_sluice  # restart so the freshly built binary runs
  mkdir -p "$RUN"
  # Detached from the caller's terminal and pipes: Sluice keeps running after this script exits.
  setsid "$BUILD/sluice" -c "$ROOT/config/sluice.dev.toml" </dev/null >>"$RUN/sluice.log" 2>&1 &
  echo $! >"$RUN/sluice.pid"
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p 6432 && break; sleep 0.1; done
  pg_isready -q -h 127.0.0.1 -p 6432 || { echo "Sluice did not start; see $RUN/sluice.log" >&2; exit 1; }
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/6033) 2>/dev/null && break; sleep 0.1; done
  cat <<MSG

Sluice is running (pid $(cat "$RUN/sluice.pid"), log $RUN/sluice.log) in front of the sandbox
PostgreSQL 15 primary 127.0.0.1:15432 + replica 127.0.0.1:15433 and MariaDB primary
127.0.0.1:13306 + replica 127.0.0.1:13307. Connect with:

  PGPASSWORD=app psql -h 127.0.0.1 -p 6432 -U app app
  postgresql://app:app@127.0.0.1:6432/app
  mysql -h 127.0.0.1 -P 6033 -u app -papp app
  mysql://app:app@127.0.0.1:6033/app

Admin console and metrics:

  PGPASSWORD=admin psql -h 127.0.0.1 -p 6432 -U admin sluice -c 'SHOW POOLS'
  mysql -h 127.0.0.1 -P 6033 -u admin -padmin sluice -e 'SHOW STATS'
  curl -s 127.0.0.1:9930/metrics

Stop everything with: integration/dev.sh down
MSG
}

# The whole suite again, built with ASan+UBSan (failures abort), plus the libFuzzer targets.
# Line tables only for debug information: the sanitizers' stack traces name files and lines
# with them, and the build takes less time than with full -g (a tenth to an eighth per file).
build_san() {
  cmake -S "$ROOT" -B "$SAN_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS=-O1 \
    -DCMAKE_CXX_FLAGS_DEBUG=-gline-tables-only -DSLUICE_WERROR=ON \
    -DCMAKE_CXX_COMPILER="$CLANG" -DSLUICE_SANITIZE=address,undefined -DSLUICE_FUZZ=ON >/dev/null
  cmake --build "$SAN_BUILD" -j2
}

run_ctest() {  # build dir [ctest arguments]
  cd "$1"
  shift
  # A sandbox of its own (other ports, other directory) so tests never disturb `up`.
  SLUICE_SANDBOX="$ROOT/.sandbox-test" SLUICE_PG_PRIMARY_PORT=25432 SLUICE_PG_REPLICA_PORT=25433 \
    SLUICE_MY_PRIMARY_PORT=23306 SLUICE_MY_REPLICA_PORT=23307 SLUICE_REDIS_PORT=26379 \
    ctest --output-on-failure --timeout 900 "$@"
}

# The system compiler (GCC 12 on Debian 12), ASan at -O0 without debug info (226 s to build
# here, against 622 s with UBSan at -O1 -g; the clang stage has UBSan): the unit tests, the
# coroutine-shape program, and the wire-level differential and front-end suites against the
# binary GCC built.
GCC_TARGETS=(unit_tests gcc12_shapes sluice pg_wire_diff_integration_tests my_wire_diff_integration_tests
  pg_integration_tests mysql_integration_tests)
GCC_TESTS='^(unit|gcc12_shape_.*|(pg_wire_diff|my_wire_diff|pg|mysql)_integration)$'
build_gcc() {
  cmake -S "$ROOT" -B "$GCC_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS=-O0 -g0" -DSLUICE_WERROR=ON \
    -DCMAKE_CXX_COMPILER=g++ -DSLUICE_SANITIZE=address >/dev/null
  cmake --build "$GCC_BUILD" -j2 --target "${GCC_TARGETS[@]}"
}

# Every test runs on the ASan+UBSan build (what CI runs: one build, failures abort); then the
# fuzz targets. SLUICE_TEST_RELEASE=1 also builds the release binary first and runs the suite on it.
test_all() {
  "$ROOT/integration/setup.sh"
  # Sanitizer traces with files and lines: clang 16's symbolizer (setup.sh installs llvm-16).
  export ASAN_SYMBOLIZER_PATH="${ASAN_SYMBOLIZER_PATH:-/usr/lib/llvm-16/bin/llvm-symbolizer}"
  if [ "${SLUICE_TEST_RELEASE:-0}" = 1 ]; then
    build
    run_ctest "$BUILD"
  fi
  build_san
  echo "== every test, ASan+UBSan build ($SAN_BUILD, $($CLANG --version | head -1))"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 run_ctest "$SAN_BUILD"
  build_gcc
  echo "== unit and wire-level tests, ASan build with the system compiler ($GCC_BUILD, $(g++ --version | head -1))"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest "$GCC_BUILD" -R "$GCC_TESTS"
  echo "== fuzz targets, ${FUZZ_SECONDS:-15} s each"
  "$ROOT/integration/fuzz.sh" "$SAN_BUILD" "${FUZZ_SECONDS:-15}"
}

case "${1:-}" in
  up) up ;;
  test) test_all ;;
  build) build ;;
  down) stop_sluice; "$ROOT/integration/sandbox.sh" down ;;
  *) echo "usage: $0 up|test|down|build" >&2; exit 2 ;;
esac
