// Lexer and routing classifier over a table of statements from both dialects.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "src/sql/classify.hpp"

using namespace sluice::sql;

namespace {

struct Case {
  Dialect d;
  const char* sql;
  char expect;  // R read, W write, B begin, b begin read only, C commit, X rollback, T set transaction,
                // t set transaction read only, S session
};
constexpr Dialect P = Dialect::Postgres;
constexpr Dialect M = Dialect::Mysql;

const Case kCases[] = {
    // ---- plain reads, both dialects
    {P, "SELECT 1", 'R'},
    {M, "SELECT 1", 'R'},
    {P, "select * from t where id = $1", 'R'},
    {M, "select * from t where id = ?", 'R'},
    {P, "  \n\tSELECT a FROM t", 'R'},
    {P, "(SELECT 1) UNION (SELECT 2)", 'R'},
    {P, "SELECT 1;", 'R'},
    {P, "SELECT 1; SELECT 2", 'R'},
    {M, "SELECT 1; SELECT 2;", 'R'},
    {P, "VALUES (1), (2)", 'R'},
    {P, "TABLE accounts", 'R'},
    {P, "SHOW search_path", 'R'},
    {M, "SHOW TABLES", 'R'},
    {M, "SHOW CREATE TABLE t", 'R'},
    {M, "SHOW VARIABLES LIKE 'max%'", 'R'},
    {M, "DESCRIBE t", 'R'},
    {M, "DESC t", 'R'},
    {P, "EXPLAIN SELECT * FROM t", 'R'},
    {P, "EXPLAIN (COSTS OFF) SELECT 1", 'R'},
    {M, "EXPLAIN SELECT * FROM t", 'R'},
    {M, "EXPLAIN FORMAT=JSON SELECT 1", 'R'},
    {P, "WITH x AS (SELECT 1) SELECT * FROM x", 'R'},
    {P, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r", 'R'},
    {M, "WITH x AS (SELECT 1 AS a) SELECT a FROM x", 'R'},
    {P, "SELECT count(*) FROM pgbench_accounts WHERE aid = 5", 'R'},
    {P, "SELECT abalance FROM pgbench_accounts WHERE aid = $1", 'R'},
    {M, "SELECT c FROM sbtest1 WHERE id=?", 'R'},
    {M, "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN ? AND ? ORDER BY c", 'R'},
    {M, "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN ? AND ?", 'R'},
    {P, "SELECT now(), current_user, version()", 'R'},
    {M, "SELECT NOW(), USER(), VERSION()", 'R'},
    {P, "SELECT pg_is_in_recovery()", 'R'},
    {M, "SELECT @@server_id, @@read_only", 'R'},
    {M, "SELECT @x", 'R'},
    {P, "SELECT * FROM t ORDER BY a LIMIT 10 OFFSET 5", 'R'},
    {P, "SELECT * FROM t1 JOIN t2 USING (id) WHERE t1.a > 3", 'R'},
    {P, "SELECT last_update, updated_at, deleted FROM t", 'R'},
    {M, "SELECT `update`, `delete` FROM t", 'R'},
    {P, "SELECT \"update\", \"insert\" FROM t", 'R'},
    {P, "SELECT jsonb_build_object('a', 1) -> 'a'", 'R'},
    {P, "SELECT x::text FROM t", 'R'},
    {P, "SELECT 1.5e-3, .5, 0x1F", 'R'},
    {M, "SELECT REPLACE(name, 'a', 'b') FROM t", 'R'},
    {P, "SELECT lower(name) FROM users WHERE email = 'x@y.z'", 'R'},
    {P, "SELECT * FROM generate_series(1, 10)", 'R'},
    {M, "SELECT * FROM t FORCE INDEX (idx) WHERE a = 1", 'R'},
    {M, "SELECT SQL_NO_CACHE * FROM t", 'R'},
    {P, "SELECT EXISTS (SELECT 1 FROM t WHERE a = 1)", 'R'},
    {P, "SELECT * FROM t WHERE name LIKE 'for update%'", 'R'},

    // ---- tricky quoting and comments that hide keywords
    {P, "SELECT 'for update' FROM t", 'R'},
    {P, "SELECT 'it''s; DELETE FROM t' AS s", 'R'},
    {P, "SELECT E'\\'; DELETE FROM t; --' AS s", 'R'},
    {P, "SELECT $$; DELETE FROM t; $$", 'R'},
    {P, "SELECT $fn$ ' INSERT $$ $fn$", 'R'},
    {P, "SELECT U&'\\0041; UPDATE t SET a = 1'", 'R'},
    {P, "SELECT \"weird\"\"name; drop\" FROM t", 'R'},
    {P, "SELECT 1 -- ; DELETE FROM t", 'R'},
    {P, "SELECT 1 /* ; DELETE FROM t */", 'R'},
    {P, "SELECT 1 /* outer /* nested ; DELETE */ still comment; UPDATE t */", 'R'},
    {P, "/* leading */ SELECT 1", 'R'},
    {P, "-- leading\nSELECT 1", 'R'},
    {M, "SELECT 'a\\'; DELETE FROM t; #' AS s", 'R'},
    {M, "SELECT \"; DELETE FROM t\" AS s", 'R'},
    {M, "SELECT `weird``name; drop` FROM t", 'R'},
    {M, "SELECT 1 # ; DELETE FROM t", 'R'},
    {M, "SELECT 1 -- ; DELETE FROM t", 'R'},
    {M, "SELECT 1 /* ; DELETE FROM t */", 'R'},
    {M, "SELECT 1 /*!40101 , 2 */", 'R'},
    {M, "SELECT $$ FROM t", 'R'},
    {P, "SELECT '$$'; SELECT 2", 'R'},
    {M, "SELECT 5--1", 'R'},
    {P, "SELECT 'unterminated", 'W'},
    {P, "SELECT 1 /* unterminated", 'W'},
    {M, "SELECT 'x", 'W'},
    {P, "SELECT 1 /* a */; DELETE FROM t", 'W'},
    {M, "SELECT 1; DELETE FROM t", 'W'},
    {P, "SELECT $tag$ x $tag$; UPDATE t SET a = 1", 'W'},
    {M, "/*!40101 SET NAMES utf8 */", 'S'},
    {M, "SELECT 1 /*! FOR UPDATE */", 'W'},
    {P, "SELECT 1 -- comment\n; INSERT INTO t VALUES (1)", 'W'},

    // ---- locking clauses and INTO
    {P, "SELECT * FROM t WHERE id = 1 FOR UPDATE", 'W'},
    {P, "SELECT * FROM t FOR SHARE", 'W'},
    {P, "SELECT * FROM t FOR NO KEY UPDATE", 'W'},
    {P, "SELECT * FROM t FOR KEY SHARE", 'W'},
    {P, "SELECT * FROM t FOR UPDATE SKIP LOCKED", 'W'},
    {P, "SELECT * FROM t FOR UPDATE OF t NOWAIT", 'W'},
    {M, "SELECT * FROM t WHERE id = 1 FOR UPDATE", 'W'},
    {M, "SELECT * FROM t LOCK IN SHARE MODE", 'W'},
    {M, "SELECT * FROM t FOR SHARE", 'W'},
    {P, "SELECT * INTO newtable FROM t", 'W'},
    {M, "SELECT a INTO @x FROM t", 'W'},
    {M, "SELECT a FROM t INTO OUTFILE '/tmp/x'", 'W'},
    {M, "SELECT @x := 5", 'W'},
    {P, "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", 'W'},
    {P, "WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM u", 'W'},
    {P, "WITH i AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM i", 'W'},
    {P, "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", 'W'},
    {P, "WITH m AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE) SELECT 1", 'W'},

    // ---- functions that write, lock or read session state
    {P, "SELECT nextval('seq')", 'W'},
    {P, "SELECT pg_catalog.nextval('seq')", 'W'},
    {P, "SELECT setval('seq', 10)", 'W'},
    {P, "SELECT currval('seq')", 'W'},
    {P, "SELECT lastval()", 'W'},
    {P, "SELECT pg_advisory_lock(1)", 'W'},
    {P, "SELECT pg_try_advisory_lock(1)", 'W'},
    {P, "SELECT pg_advisory_xact_lock(1)", 'W'},
    {P, "SELECT pg_advisory_unlock_all()", 'W'},
    {P, "SELECT txid_current()", 'W'},
    {P, "SELECT pg_notify('ch', 'x')", 'W'},
    {P, "SELECT set_config('search_path', 'x', false)", 'W'},
    {P, "SELECT PG_ADVISORY_LOCK(1)", 'W'},
    {P, "SELECT \"nextval\"('seq')", 'W'},
    {P, "SELECT a, (SELECT nextval('s')) FROM t", 'W'},
    {P, "SELECT pg_current_wal_lsn()", 'W'},
    {M, "SELECT GET_LOCK('x', 10)", 'W'},
    {M, "SELECT RELEASE_LOCK('x')", 'W'},
    {M, "SELECT RELEASE_ALL_LOCKS()", 'W'},
    {M, "SELECT IS_FREE_LOCK('x')", 'W'},
    {M, "SELECT LAST_INSERT_ID()", 'W'},
    {M, "SELECT FOUND_ROWS()", 'W'},
    {M, "SELECT ROW_COUNT()", 'W'},
    {M, "SELECT NEXTVAL(s)", 'W'},
    {M, "SELECT NEXT VALUE FOR s", 'W'},
    {M, "SELECT MASTER_GTID_WAIT('0-1-5')", 'W'},
    {M, "SELECT CONNECTION_ID()", 'W'},
    {P, "SELECT nextval -- not a call\nFROM t", 'R'},
    {P, "SELECT 'nextval(''s'')'", 'R'},

    // ---- EXPLAIN ANALYZE executes; SHOW of session or server state
    {P, "EXPLAIN ANALYZE SELECT 1", 'W'},
    {P, "EXPLAIN (ANALYZE, BUFFERS) SELECT 1", 'W'},
    {P, "EXPLAIN UPDATE t SET a = 1", 'W'},
    {M, "EXPLAIN ANALYZE SELECT 1", 'W'},
    {M, "EXPLAIN DELETE FROM t", 'W'},
    {M, "ANALYZE TABLE t", 'W'},
    {M, "SHOW WARNINGS", 'W'},
    {M, "SHOW ERRORS", 'W'},
    {M, "SHOW MASTER STATUS", 'W'},
    {M, "SHOW SLAVE STATUS", 'W'},
    {M, "SHOW FULL PROCESSLIST", 'W'},
    {M, "SHOW SESSION STATUS", 'W'},

    // ---- writes and DDL
    {P, "INSERT INTO t VALUES (1)", 'W'},
    {P, "insert into t select * from s", 'W'},
    {P, "UPDATE t SET a = a + 1 WHERE id = $1", 'W'},
    {P, "DELETE FROM t WHERE id = 1", 'W'},
    {P, "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a", 'W'},
    {P, "CREATE TABLE t (a int)", 'W'},
    {P, "CREATE TEMP TABLE t AS SELECT 1", 'W'},
    {P, "ALTER TABLE t ADD COLUMN b int", 'W'},
    {P, "DROP TABLE t", 'W'},
    {P, "TRUNCATE t", 'W'},
    {P, "COPY t FROM STDIN", 'W'},
    {P, "COPY t TO STDOUT", 'W'},
    {P, "VACUUM t", 'W'},
    {P, "LOCK TABLE t", 'W'},
    {P, "CALL proc()", 'W'},
    {P, "DO $$ BEGIN PERFORM 1; END $$", 'W'},
    {P, "LISTEN ch", 'W'},
    {P, "NOTIFY ch", 'W'},
    {P, "PREPARE s AS SELECT 1", 'W'},
    {P, "EXECUTE s", 'W'},
    {P, "DEALLOCATE s", 'W'},
    {P, "REFRESH MATERIALIZED VIEW v", 'W'},
    {P, "GRANT SELECT ON t TO u", 'W'},
    {P, "SAVEPOINT a", 'W'},
    {P, "RELEASE SAVEPOINT a", 'W'},
    {P, "ROLLBACK TO SAVEPOINT a", 'W'},
    {P, "INSERT INTO t VALUES ('SELECT 1')", 'W'},
    {M, "INSERT INTO t VALUES (1)", 'W'},
    {M, "REPLACE INTO t VALUES (1)", 'W'},
    {M, "UPDATE sbtest1 SET k=k+1 WHERE id=?", 'W'},
    {M, "DELETE FROM sbtest1 WHERE id=?", 'W'},
    {M, "INSERT INTO sbtest1 (id, k, c, pad) VALUES (?, ?, ?, ?)", 'W'},
    {M, "LOAD DATA LOCAL INFILE '/tmp/x' INTO TABLE t", 'W'},
    {M, "CREATE TEMPORARY TABLE t (a INT)", 'W'},
    {M, "LOCK TABLES t WRITE", 'W'},
    {M, "UNLOCK TABLES", 'W'},
    {M, "CALL p()", 'W'},
    {M, "DO SLEEP(1)", 'W'},
    {M, "HANDLER t OPEN", 'W'},
    {M, "XA START 'x'", 'W'},
    {M, "FLUSH TABLES", 'W'},
    {M, "OPTIMIZE TABLE t", 'W'},
    {M, "KILL QUERY 5", 'W'},
    {M, "START SLAVE", 'W'},
    {M, "PREPARE s FROM 'SELECT 1'", 'W'},
    {M, "", 'W'},
    {P, "   ", 'W'},
    {P, ";", 'W'},

    // ---- transaction control
    {P, "BEGIN", 'B'},
    {P, "begin;", 'B'},
    {P, "BEGIN ISOLATION LEVEL SERIALIZABLE", 'B'},
    {P, "BEGIN READ ONLY", 'b'},
    {P, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 'b'},
    {P, "BEGIN READ WRITE", 'B'},
    {P, "START TRANSACTION", 'B'},
    {P, "START TRANSACTION READ ONLY", 'b'},
    {M, "BEGIN", 'B'},
    {M, "BEGIN WORK", 'B'},
    {M, "START TRANSACTION", 'B'},
    {M, "START TRANSACTION READ ONLY", 'b'},
    {M, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", 'b'},
    {M, "START TRANSACTION READ WRITE", 'B'},
    {P, "COMMIT", 'C'},
    {P, "END", 'C'},
    {P, "COMMIT AND CHAIN", 'C'},
    {M, "COMMIT WORK", 'C'},
    {P, "ROLLBACK", 'X'},
    {P, "ABORT", 'X'},
    {M, "ROLLBACK WORK", 'X'},
    {P, "SET TRANSACTION READ ONLY", 't'},
    {P, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", 'T'},
    {P, "SET LOCAL TRANSACTION READ ONLY", 't'},
    {M, "SET TRANSACTION READ ONLY", 't'},
    {M, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", 'T'},
    {P, "BEGIN; SET TRANSACTION READ ONLY; SELECT 1", 'b'},
    {P, "BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY", 'b'},
    {P, "BEGIN; INSERT INTO t VALUES (1)", 'B'},

    // ---- session statements
    {P, "SET search_path TO app", 'S'},
    {P, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", 'S'},
    {P, "RESET ALL", 'S'},
    {P, "DISCARD ALL", 'S'},
    {M, "SET NAMES utf8mb4", 'S'},
    {M, "SET autocommit = 0", 'S'},
    {M, "SET @x = 1", 'S'},
    {M, "USE app2", 'S'},
};

char code(const Classification& c) {
  switch (c.kind) {
    case StatementKind::Read: return 'R';
    case StatementKind::Write: return 'W';
    case StatementKind::Begin: return c.read_only ? 'b' : 'B';
    case StatementKind::Commit: return 'C';
    case StatementKind::Rollback: return 'X';
    case StatementKind::SetTransaction: return c.read_only ? 't' : 'T';
    case StatementKind::Session: return 'S';
  }
  return '?';
}

}  // namespace

TEST_CASE("classification table (both dialects)") {
  std::size_t n = 0;
  for (auto& c : kCases) {
    auto got = classify(c.sql, c.d);
    CHECK_MESSAGE(code(got) == c.expect, (c.d == P ? "pg: " : "my: "), c.sql, " -> ", code(got), " ", got.reason);
    ++n;
  }
  CHECK(n >= 150);
}

TEST_CASE("routing hints in a leading comment") {
  CHECK(classify("/* sluice:primary */ SELECT 1", P).hint == Hint::Primary);
  CHECK(classify("/* sluice:replica */ SELECT nextval('s')", P).hint == Hint::Replica);
  CHECK(classify("/*sluice:replica*/SELECT 1", M).hint == Hint::Replica);
  CHECK(classify("-- sluice:primary\nSELECT 1", P).hint == Hint::Primary);
  CHECK(classify("SELECT 1 /* sluice:primary */", P).hint == Hint::None);
  CHECK(classify("/* other */ SELECT 1", P).hint == Hint::None);
  CHECK(classify("/* sluice:primary */ SELECT 1", P).read());  // the hint does not change the class
}

TEST_CASE("a configurable list of functions makes reads go to the primary") {
  CHECK(classify("SELECT my_audit_log(1)", P).read());
  CHECK_FALSE(classify("SELECT my_audit_log(1)", P, {"my_audit_log"}).read());
  CHECK_FALSE(classify("SELECT app.my_audit_log(1)", M, {"my_audit_log"}).read());
}

TEST_CASE("a listed write function makes the write opaque (its tables are not in the text), in any statement") {
  CHECK(classify("SELECT my_audit_log(1)", P, {"my_audit_log"}).opaque_write);
  CHECK(classify("SELECT \"my_audit_log\"(1)", P, {"my_audit_log"}).opaque_write);
  CHECK_FALSE(classify("SELECT nextval('s')", P, {"my_audit_log"}).opaque_write);  // built in: no user table
  CHECK_FALSE(classify("UPDATE t SET v = 1", P, {"my_audit_log"}).opaque_write);
  // Several statements: the first write does not hide a later call.
  auto several = classify("UPDATE t SET v = 1; SELECT my_audit_log(1)", M, {"my_audit_log"});
  CHECK(several.kind == StatementKind::Write);
  CHECK(several.opaque_write);
  CHECK(classify("SELECT 1; SELECT 2", M).read());
  CHECK(classify("SELECT 1; UPDATE t SET v = 1; SELECT 2", M).kind == StatementKind::Write);
}

TEST_CASE("a whole transaction in one text is a Begin that writes") {
  auto tx = classify("BEGIN; UPDATE t SET v = 1; COMMIT", P);
  CHECK(tx.kind == StatementKind::Begin);
  CHECK(tx.writes);
  CHECK(classify("START TRANSACTION; SELECT my_audit_log(1); COMMIT", M, {"my_audit_log"}).opaque_write);
  CHECK_FALSE(classify("BEGIN; SELECT 1; COMMIT", P).writes);
  CHECK_FALSE(classify("SELECT 1; COMMIT", P).writes);  // not a read, but writes nothing
  CHECK(classify("UPDATE t SET v = 1", P).writes);
  CHECK_FALSE(classify("SELECT 1", P).writes);
  CHECK_FALSE(classify("COMMIT", P).writes);
}

TEST_CASE("lexer tokens") {
  Lexer l("SELECT $1, E'a\\'b', $q$x$q$, \"Id\", 1.5e+3 -- c\n", Dialect::Postgres);
  std::vector<Token::Kind> kinds;
  for (Token t = l.next(); t.kind != Token::End; t = l.next()) kinds.push_back(t.kind);
  CHECK(kinds == std::vector<Token::Kind>{Token::Word, Token::Param, Token::Symbol, Token::String, Token::Symbol,
                                          Token::String, Token::Symbol, Token::QuotedIdent, Token::Symbol, Token::Number});
  Lexer m("SELECT `a`, 'x\\'y', ? # c", Dialect::Mysql);
  kinds.clear();
  for (Token t = m.next(); t.kind != Token::End; t = m.next()) kinds.push_back(t.kind);
  CHECK(kinds == std::vector<Token::Kind>{Token::Word, Token::QuotedIdent, Token::Symbol, Token::String, Token::Symbol,
                                          Token::Param});
}
