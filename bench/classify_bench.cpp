// Classification cost: nanoseconds per statement for the statements the routing benchmarks send
// (compare with Sluice's CPU microseconds per transaction from bench/routing_compare.sh).
//   build/classify_bench [iterations]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "src/sql/classify.hpp"

using namespace sluice::sql;

int main(int argc, char** argv) {
  long iterations = argc > 1 ? std::atol(argv[1]) : 1'000'000;
  struct Case {
    const char* name;
    Dialect d;
    std::string sql;
  };
  std::vector<Case> cases = {
      {"pgbench select", Dialect::Postgres, "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;"},
      {"pgbench update", Dialect::Postgres, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 48213;"},
      {"sysbench point", Dialect::Mysql, "SELECT c FROM sbtest1 WHERE id=?"},
      {"sysbench range", Dialect::Mysql, "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN ? AND ? ORDER BY c"},
      {"ORM-style join", Dialect::Postgres,
       "SELECT u.id, u.name, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE u.email = 'x@y.z' "
       "AND o.created_at > now() - interval '7 days' ORDER BY o.created_at DESC LIMIT 20"},
  };
  volatile int sink = 0;
  for (auto& c : cases) {
    auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < iterations; ++i) sink = sink + static_cast<int>(classify(c.sql, c.d).kind);
    auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() / iterations;
    std::printf("%-16s %6.0f ns per statement (%zu bytes)\n", c.name, ns, c.sql.size());
  }
  return sink == -1;
}
