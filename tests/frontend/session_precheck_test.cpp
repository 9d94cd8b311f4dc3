// may_change_session: the cheap look at every Query and Parse that decides whether a statement's
// session effects are worked out at all. A false "no" would let a SET, LISTEN or advisory lock
// slip past transaction pooling unseen (state leaking to the next client of the server
// connection), so every kind it must catch is listed here; ordinary reads must pass untouched.
#include <doctest/doctest.h>

#include "src/frontend/postgres/relay.hpp"

using sluice::frontend::pg::may_change_session;

TEST_CASE("statements that may change the session are caught, in any case and after blanks") {
  for (const char* q :
       {"SET search_path = x", "set TimeZone to 'UTC'", "  \n\tSET x = 1", "RESET ALL", "reset work_mem",
        "DISCARD ALL", "DEALLOCATE s1", "DECLARE c CURSOR WITH HOLD FOR SELECT 1", "DROP TABLE t", "DO $$ BEGIN END $$",
        "LISTEN ch", "UNLISTEN *", "NOTIFY ch, 'x'", "PREPARE p AS SELECT 1", "CLOSE c", "CREATE TEMP TABLE t (a int)",
        "/* leading comment */ SET x = 1", "-- comment\nSET x = 1"}) {
    CHECK_MESSAGE(may_change_session(q, false), q);
  }
}

TEST_CASE("functions that change session state, called from SELECT, WITH or VALUES") {
  for (const char* q : {"SELECT set_config('search_path', 'x', false)", "select pg_advisory_lock(1)",
                        "SELECT pg_try_advisory_lock(42)", "SELECT pg_notify('ch', 'x')",
                        "WITH a AS (SELECT 1) SELECT SET_CONFIG('a.b', 'c', false) FROM a",
                        "VALUES (pg_advisory_lock(7))"}) {
    CHECK_MESSAGE(may_change_session(q, false), q);
  }
}

TEST_CASE("several statements in one Query are looked at; a trailing semicolon alone is not several") {
  CHECK(may_change_session("SELECT 1; SET x = 1", false));
  CHECK(may_change_session("SELECT 1;SELECT 2", false));
  CHECK_FALSE(may_change_session("SELECT abalance FROM pgbench_accounts WHERE aid = 1;", false));
  CHECK_FALSE(may_change_session("SELECT 1 ;  \n", false));
}

TEST_CASE("transaction words matter only while SETs of the transaction wait for them") {
  for (const char* q : {"COMMIT", "ROLLBACK", "END", "ABORT", "SAVEPOINT a", "RELEASE a", "rollback to a"}) {
    CHECK_MESSAGE(may_change_session(q, true), q);
    CHECK_MESSAGE(!may_change_session(q, false), q);
  }
}

TEST_CASE("ordinary statements pass untouched") {
  for (const char* q : {"SELECT abalance FROM pgbench_accounts WHERE aid = 1", "select now()",
                        "INSERT INTO t VALUES (1)", "UPDATE t SET v = 1 WHERE id = 2", "DELETE FROM t",
                        "BEGIN", "SELECT count(*) FROM t", "", "   "}) {
    CHECK_MESSAGE(!may_change_session(q, false), q);
  }
}

TEST_CASE("the first word is matched whole: longer words, prefixes and mixed case") {
  for (const char* q : {"DeAlLoCaTe s1", "sAvEpOiNt a", "Unlisten *", "rollback", "rollback;", "reset\t\tall",
                        "SET\nx = 1", "LISTEN{x}"})
    CHECK_MESSAGE(may_change_session(q, true), q);
  for (const char* q : {"SETX = 1", "settle", "se", "sets", "deallocatexyz s1", "savepointsavepoint a",
                        "selectx set_config(1)", "withholding (set_config)", "resetting", "listener",
                        "abcdefghijklmnopqrstuvwxyz", "Ünlisten", "se@t x = 1", "rollbacks x"})
    CHECK_MESSAGE(!may_change_session(q, true), q);
  CHECK(may_change_session("create", false));
  CHECK(may_change_session("do$$ begin end $$", false));  // a word ends at its first non-letter
}
