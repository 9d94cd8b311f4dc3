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

TEST_CASE("statements split as the server reads strings: E'' escapes, standard strings do not") {
  auto s = split_statements("select E'a\\';b'; set x = 1");  // E'a\';b' is one string
  REQUIRE(s.size() == 2);
  CHECK(s[0] == "select E'a\\';b'");
  s = split_statements("select 'a\\'; set x = 1");  // standard_conforming_strings: 'a\' ends there
  REQUIRE(s.size() == 2);
  CHECK(s[1] == " set x = 1");
  s = split_statements("select 1 /* a /* nested ; */ ; */; select 2");  // PostgreSQL comments nest
  REQUIRE(s.size() == 2);
  auto e = session_effects("SET search_path = DEFAULT; SET SESSION search_path TO \"$user\", public ");
  REQUIRE(e.size() == 2);
  CHECK(e[0].command == SessionCommand::ResetSearchPath);
  CHECK(e[1].command == SessionCommand::SetSearchPath);
  CHECK(e[1].value == "\"$user\", public");
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
  CHECK(session_effects("DEALLOCATE foo")[0].command == SessionCommand::MayUnpin);
  CHECK(session_effects("select 'SET search_path TO x'").empty());
}

TEST_CASE("parameters set, reset and carried: SET, SET ROLE, set_config with is_local false") {
  auto e = session_effects("SET statement_timeout = '5s'; set SESSION work_mem TO 4096; SET myapp.Tenant = 'x'");
  REQUIRE(e.size() == 3);
  CHECK((e[0].command == SessionCommand::SetParam && e[0].name == "statement_timeout" && e[0].value == "'5s'"));
  CHECK((e[1].name == "work_mem" && e[1].value == "4096"));
  CHECK((e[2].name == "myapp.tenant" && e[2].value == "'x'"));
  CHECK(session_effects("SET LOCAL statement_timeout = 1").empty());
  CHECK(session_effects("SET TimeZone = 'UTC'").empty());  // reported: followed by ParameterStatus
  CHECK(session_effects("SET lock_timeout TO DEFAULT")[0].command == SessionCommand::ResetParam);
  CHECK(session_effects("RESET lock_timeout")[0].name == "lock_timeout");
  e = session_effects("SET ROLE reporting");
  CHECK((e[0].command == SessionCommand::SetParam && e[0].name == "role" && e[0].value == "reporting"));
  CHECK(session_effects("SET ROLE NONE")[0].command == SessionCommand::ResetParam);
  CHECK(session_effects("RESET ROLE")[0].name == "role");
  e = session_effects("SELECT set_config('Work_Mem', '2MB', false), 1");
  CHECK((e[0].command == SessionCommand::SetParam && e[0].name == "work_mem" && e[0].value == "'2MB'"));
  CHECK(session_effects("SELECT set_config('work_mem', '2MB', true)").empty());
  CHECK(session_effects("SELECT set_config('work_mem', $1, false)")[0].command == SessionCommand::Untracked);
  CHECK(session_effects("SELECT 'set_config(1)'").empty());
}

TEST_CASE("state that pins, what may end it, and what is untracked") {
  auto pin = [](const char* sql) {
    auto e = session_effects(sql);
    return e.size() == 1 && e[0].command == SessionCommand::Pin ? e[0].value : std::string("-");
  };
  CHECK(pin("SELECT pg_advisory_lock(1)") == "advisory lock");
  CHECK(pin("select pg_try_advisory_lock_shared(1, 2)") == "advisory lock");
  CHECK(pin("SELECT pg_advisory_xact_lock(1)") == "-");  // released at transaction end
  CHECK(pin("CREATE TEMP TABLE t (a int)") == "temporary table");
  CHECK(pin("create global temporary table t (a int)") == "temporary table");
  CHECK(pin("CREATE TABLE pg_temp.t (a int)") == "temporary table");
  CHECK(pin("SELECT 1 INTO TEMP t") == "temporary table");
  CHECK(pin("CREATE TABLE temp_data (a int)") == "-");
  CHECK(pin("DECLARE c CURSOR WITH HOLD FOR SELECT 1") == "WITH HOLD cursor");
  CHECK(pin("DECLARE c CURSOR FOR SELECT 'with hold'") == "-");
  CHECK(pin("PREPARE p AS SELECT 1") == "SQL PREPARE");
  CHECK(pin("PREPARE TRANSACTION 'x'") == "-");
  CHECK(pin("SET SESSION AUTHORIZATION bob") == "SET SESSION AUTHORIZATION");
  for (const char* sql : {"CLOSE c", "DROP TABLE t", "DISCARD TEMP", "DEALLOCATE p",
                          "SELECT pg_advisory_unlock_all()", "RESET SESSION AUTHORIZATION"})
    CHECK(session_effects(sql)[0].command == SessionCommand::MayUnpin);
  CHECK(session_effects("DO $$BEGIN PERFORM 1; END$$")[0].command == SessionCommand::Untracked);
  auto tx = session_effects("BEGIN; SET a.b = 1; COMMIT; ROLLBACK TO SAVEPOINT s; ROLLBACK");
  REQUIRE(tx.size() == 5);
  CHECK(tx[0].command == SessionCommand::Begin);
  CHECK(tx[2].command == SessionCommand::Commit);
  CHECK(tx[3].command == SessionCommand::RollbackTo);
  CHECK(tx[3].name == "s");
  CHECK(tx[4].command == SessionCommand::Rollback);
  // Savepoint names as the server keys them: unquoted fold, quoted keep their case.
  auto sp = session_effects(
      "SAVEPOINT Abc; SAVEPOINT \"Mixed\"\"Q\"; ROLLBACK WORK TO Abc; ROLLBACK TRANSACTION TO SAVEPOINT \"X\"; "
      "RELEASE SAVEPOINT abc; RELEASE \"Mixed\"\"Q\"; ROLLBACK PREPARED 'gid'; ROLLBACK AND CHAIN");
  REQUIRE(sp.size() == 6);
  CHECK((sp[0].command == SessionCommand::Savepoint && sp[0].name == "abc"));
  CHECK((sp[1].command == SessionCommand::Savepoint && sp[1].name == "Mixed\"Q"));
  CHECK((sp[2].command == SessionCommand::RollbackTo && sp[2].name == "abc"));
  CHECK((sp[3].command == SessionCommand::RollbackTo && sp[3].name == "X"));
  CHECK((sp[4].command == SessionCommand::Release && sp[4].name == "abc"));
  CHECK((sp[5].command == SessionCommand::Release && sp[5].name == "Mixed\"Q"));
}

TEST_CASE("LISTEN, UNLISTEN and NOTIFY: channel names as the server keys them") {
  auto e = session_effects(
      "LISTEN Chan; LISTEN \"Mixed \"\"Q\"; UNLISTEN chan; UNLISTEN *; NOTIFY chan, 'x'; SELECT pg_notify('c', 'y')");
  REQUIRE(e.size() == 6);
  CHECK(e[0].command == SessionCommand::Listen);
  CHECK(e[0].name == "chan");
  CHECK(e[1].command == SessionCommand::Listen);
  CHECK(e[1].name == "Mixed \"Q");
  CHECK(e[2].command == SessionCommand::Unlisten);
  CHECK(e[2].name == "chan");
  CHECK(e[3].command == SessionCommand::Unlisten);
  CHECK(e[3].name == "*");
  CHECK(e[4].command == SessionCommand::Notify);
  CHECK(e[5].command == SessionCommand::Notify);
  // NAMEDATALEN - 1 bytes at most, never half a character.
  CHECK(channel_name(std::string(70, 'a')) == std::string(63, 'a'));
  std::string mb = std::string(62, 'a') + "\xc3\xa9";  // 64 bytes: the two-byte character does not fit
  CHECK(channel_name(mb) == std::string(62, 'a'));
  CHECK(session_effects("LISTEN " + std::string(70, 'b'))[0].name == std::string(63, 'b'));
}
