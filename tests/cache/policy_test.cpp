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
