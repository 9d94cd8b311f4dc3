// Lease failures are described once for both front ends.
#include <doctest/doctest.h>

#include "src/frontend/common/lease_failure.hpp"

using namespace sluice;

TEST_CASE("describe_lease_failure: timed out in line, refused by the server, unreachable") {
  pool::LeaseResult timed;
  timed.timed_out = true;
  auto t = frontend::describe_lease_failure(timed, "app/app", std::chrono::milliseconds(1500));
  CHECK(t.timed_out);
  CHECK(t.sqlstate == "53300");
  CHECK(t.message == "query_wait_timeout: no server connection available in pool \"app/app\" within 1500 ms");
  CHECK(t.hint == "raise pool_size for this pool, or query_wait_timeout");

  pool::LeaseResult refused;
  auto err = std::make_shared<pool::ConnectError>();
  err->from_server = true;
  err->fields.code = "28P01";
  err->fields.message = "password authentication failed for user \"app\"";
  err->mysql_code = 1045;
  refused.error = err;
  auto r = frontend::describe_lease_failure(refused, "app/app", std::chrono::seconds(1));
  CHECK_FALSE(r.timed_out);
  CHECK(r.from_server);
  CHECK(r.sqlstate == "28P01");
  CHECK(r.message == "password authentication failed for user \"app\"");  // the server's words
  CHECK(r.mysql_code == 1045);

  pool::LeaseResult unreachable;
  auto down = std::make_shared<pool::ConnectError>();
  down->fields.message = "cannot connect to server 127.0.0.1:1: Connection refused";
  unreachable.error = down;
  auto u = frontend::describe_lease_failure(unreachable, "app/app", std::chrono::seconds(1));
  CHECK(u.sqlstate.empty());  // each protocol's connection-failure code
  CHECK(u.message == "sluice: cannot connect to server 127.0.0.1:1: Connection refused");
}
