// The pool rules both front ends share (one code path: they had drifted apart).
#include <doctest/doctest.h>

#include "src/frontend/common/pool_rules.hpp"

using namespace sluice;

TEST_CASE("served_database: a \"*\" pool names the client's database; a named pool its own") {
  config::Pool star;
  star.database = "*";
  CHECK(frontend::served_database(star, "app") == "app");
  CHECK(frontend::served_database(star, "") == "*");  // a MySQL client that named no database
  config::Pool named;
  named.database = "app";
  named.server_database = "real_app";
  CHECK(frontend::served_database(named, "app") == "app");
}

TEST_CASE("cache_wait_limit: query_wait_timeout, at most 10 s") {
  config::General g;
  g.query_wait_timeout = std::chrono::milliseconds(1500);
  CHECK(frontend::cache_wait_limit(g) == std::chrono::milliseconds(1500));
  g.query_wait_timeout = std::chrono::minutes(2);
  CHECK(frontend::cache_wait_limit(g) == std::chrono::seconds(10));
}
