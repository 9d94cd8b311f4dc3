#!/usr/bin/env bash
# pgbench -S and -S -C with TLS between the clients and the proxy, through PgBouncer
# (client_tls_sslmode = require) and Sluice (tls = "require"), side by side in one run: TPS and
# each proxy's CPU microseconds per transaction. Same knobs as bench/pgbench_compare.sh.
#   bench/tls_compare.sh                  # BENCH_SECONDS=8, BENCH_ROUNDS=3
set -euo pipefail
BENCH_TLS=1 exec "$(dirname "${BASH_SOURCE[0]}")/pgbench_compare.sh" "$@"
