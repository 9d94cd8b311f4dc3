#include "src/observe/log.hpp"

#include <doctest/doctest.h>

#include <string>

using sluice::log::Fields;
using sluice::log::json_line;
using sluice::log::Level;

TEST_CASE("log: a JSON line has the stable keys, leaves out what is unknown, and escapes everything") {
  Fields f;
  f.client_id = 42;
  f.address = "10.0.0.7";
  f.port = 51234;
  f.user = "app";
  f.database = "shop";
  f.reason = "client closed the connection";
  auto line = json_line("2026-12-06T17:00:00.123Z", Level::Info, "client_disconnected", f, "bye");
  CHECK(line ==
        "{\"time\":\"2026-12-06T17:00:00.123Z\",\"level\":\"info\",\"event\":\"client_disconnected\","
        "\"client_id\":42,\"address\":\"10.0.0.7\",\"port\":51234,\"user\":\"app\",\"database\":\"shop\","
        "\"reason\":\"client closed the connection\",\"message\":\"bye\"}");
  // No fields: only time, level, event and message.
  CHECK(json_line("t", Level::Warn, "log", Fields{}, "x") ==
        "{\"time\":\"t\",\"level\":\"warn\",\"event\":\"log\",\"message\":\"x\"}");
  // A slow query's numbers.
  Fields s;
  s.fingerprint = "SELECT * FROM t WHERE id = ?";
  s.duration_ms = 250.5;
  s.rows = 0;
  CHECK(json_line("t", Level::Warn, "slow_query", s, "m") ==
        "{\"time\":\"t\",\"level\":\"warn\",\"event\":\"slow_query\",\"fingerprint\":\"SELECT * FROM t WHERE id = "
        "?\",\"duration_ms\":250.500,\"rows\":0,\"message\":\"m\"}");
  // What a client sends (a user name, a database) may hold anything: quotes, backslashes,
  // control characters and bytes that are not UTF-8 all come out as valid JSON.
  const std::string user("a\"b\\c\nd\te\x01", 10);
  Fields odd;
  odd.user = user;
  odd.database = "\xff\xfe ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc3 \xed\xa0\x80";
  auto esc = json_line("t", Level::Error, "log", odd, "");
  CHECK(esc.find("\"user\":\"a\\\"b\\\\c\\nd\\te\\u0001\"") != std::string::npos);
  CHECK(esc.find("\"database\":\"\xEF\xBF\xBD\xEF\xBF\xBD ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xEF\xBF\xBD "
                 "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"") != std::string::npos);
}
