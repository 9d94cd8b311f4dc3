// Cache rules' patterns run on client-sent text: they must take time linear in it and never
// recurse with its length (libstdc++'s std::regex does, and a long query overflowed the stack).
#include <doctest/doctest.h>

#include "src/cache/policy.hpp"

using namespace sluice;

namespace {
cache::Policy rules_policy(const std::string& match) {
  config::Cache c;
  c.enabled = true;
  config::CacheRule r;
  r.match = match;
  c.rules.push_back(r);
  return cache::Policy(c);
}
}  // namespace

TEST_CASE("a rule's pattern over a long query: linear time, no recursion") {
  auto p = rules_policy("'(a|b)*c'");
  std::string text = "SELECT v FROM t WHERE k = '" + std::string(400'000, 'a') + "'";
  CHECK_FALSE(p.consider(text, sql::Dialect::Postgres, "db", "u"));  // no 'c' after the run: no match
  text = "SELECT v FROM t WHERE k = '" + std::string(400'000, 'b') + "c'";
  CHECK(p.consider(text, sql::Dialect::Postgres, "db", "u"));
}

TEST_CASE("rules: the pattern searches the normalized text") {
  auto p = rules_policy("^select v from t");
  CHECK(p.consider("SELECT   v FROM t WHERE k = 1", sql::Dialect::Postgres, "db", "u"));
  CHECK_FALSE(p.consider("SELECT w FROM t", sql::Dialect::Postgres, "db", "u"));
}

TEST_CASE("uncacheable: volatile functions when called, volatile keywords when not, catalogs, variables") {
  const auto P = sql::Dialect::Postgres, M = sql::Dialect::Mysql;
  struct Case {
    sql::Dialect d;
    const char* text;
    bool uncacheable;
  };
  const Case cases[] = {
      {P, "SELECT abalance FROM pgbench_accounts WHERE aid = 1", false},
      {P, "SELECT now()", true},
      {P, "SELECT NOW ( )", true},
      {P, "SELECT now FROM t", false},  // a column named now
      {P, "SELECT random(), 1", true},
      {P, "SELECT clock_timestamp()", true},
      {P, "SELECT gen_random_uuid()", true},
      {P, "SELECT nextval('s')", true},
      {P, "SELECT currval('s'), setval('s', 1), lastval()", true},
      {P, "SELECT pg_backend_pid()", true},
      {P, "SELECT txid_current()", true},
      {P, "SELECT current_setting('x')", true},
      {P, "SELECT version()", true},
      {P, "SELECT version FROM releases", false},
      {P, "SELECT current_timestamp", true},
      {P, "SELECT CURRENT_DATE", true},
      {P, "SELECT current_time, 1", true},
      {P, "SELECT localtime", true},
      {P, "SELECT localtimestamp", true},
      {P, "SELECT current_user", true},
      {P, "SELECT session_user", true},
      {P, "SELECT current_role", true},
      {P, "SELECT current_schema", true},
      {P, "SELECT current_catalog", true},
      {P, "SELECT user", true},
      {P, "SELECT username FROM users", false},
      {P, "SELECT * FROM pg_stat_activity", true},
      // Server functions read the server's state (pg_current_wal_lsn(), pg_postmaster_start_time(),
      // pg_stat_get_*): every pg_ call is taken for one.
      {P, "SELECT pg_current_wal_lsn()", true},
      {P, "SELECT pg_last_xact_replay_timestamp()", true},
      {P, "SELECT pg_size_pretty(1)", true},
      {P, "SELECT current_time(2)", true},  // the keyword with a precision
      {P, "SELECT localtimestamp(3), localtime(1)", true},
      {P, "SELECT inet_server_addr(), inet_client_port()", true},
      {P, "SELECT uuid_generate_v1mc()", true},
      {P, "SELECT gen_random_bytes(8)", true},
      {P, "SELECT * FROM information_schema.tables", true},
      {P, "SELECT * FROM pg_catalog.pg_class", true},
      {P, "SELECT * FROM t WHERE c = 'now()'", false},  // a string, not a call
      {M, "SELECT RAND()", true},
      {M, "SELECT UUID(), 1", true},
      {M, "SELECT sysdate()", true},
      {M, "SELECT UNIX_TIMESTAMP()", true},
      {M, "SELECT curdate(), curtime()", true},
      {M, "SELECT CURRENT_DATE()", true},
      {M, "SELECT CURRENT_TIME(), 1", true},
      {M, "SELECT UTC_DATE()", true},
      {M, "SELECT UTC_TIME()", true},
      {M, "SELECT RANDOM_BYTES(8)", true},
      {M, "SELECT SYS_GUID()", true},
      {M, "SELECT connection_id()", true},
      {M, "SELECT database()", true},
      {M, "SELECT schema()", true},
      {M, "SELECT user()", true},
      {M, "SELECT last_insert_id()", true},
      {M, "SELECT found_rows()", true},
      {M, "SELECT row_count()", true},
      {M, "SELECT sleep(1)", true},
      {M, "SELECT benchmark(10, 1)", true},
      {M, "SELECT get_lock('a', 1), is_free_lock('a'), is_used_lock('a')", true},
      {M, "SELECT @@version", true},
      {M, "SELECT @x", true},
      {M, "SELECT * FROM mysql.user", true},
      {M, "SELECT * FROM performance_schema.threads", true},
      {M, "SELECT * FROM sys.processlist", true},
      {M, "SELECT mysql FROM t", false},
      {M, "SELECT c FROM sbtest1 WHERE id = 5", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    CHECK(cache::uncacheable(c.text, c.d) == c.uncacheable);
  }
}
