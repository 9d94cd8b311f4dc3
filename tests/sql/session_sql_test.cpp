// Session-command recognition used for state tracking in transaction pooling.
#include <doctest/doctest.h>

#include "src/sql/session_sql.hpp"

using namespace sluice::sql;

TEST_CASE("statements split at top-level semicolons only") {
  auto s = split_statements("select ';'; select $x$;$x$; /* ; */ select \"a;b\" -- ;\n; select 3");
  REQUIRE(s.size() == 4);
  CHECK(s[0] == "select ';'");
  CHECK(s[3] == " select 3");
}

TEST_CASE("search_path and reset commands are recognized") {
  auto e = session_effects("SET search_path TO foo, public");
  REQUIRE(e.size() == 1);
  CHECK(e[0].command == SessionCommand::SetSearchPath);
  CHECK(e[0].value == "foo, public");
  e = session_effects("/* c */ set session SEARCH_PATH = \"My Schema\";select 1; RESET ALL");
  REQUIRE(e.size() == 2);
  CHECK(e[0].value == "\"My Schema\"");
  CHECK(e[1].command == SessionCommand::ResetAll);
  CHECK(session_effects("SET LOCAL search_path TO x").empty());
  CHECK(session_effects("set search_path to default")[0].command == SessionCommand::ResetSearchPath);
  CHECK(session_effects("DISCARD ALL")[0].command == SessionCommand::DiscardAll);
  CHECK(session_effects("deallocate prepare all")[0].command == SessionCommand::DeallocateAll);
  CHECK(session_effects("DEALLOCATE foo").empty());
  CHECK(session_effects("select 'SET search_path TO x'").empty());
}
