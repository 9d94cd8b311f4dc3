// Statement fingerprints (one per query shape) and verbs, as the firewall keys on them.
#include <doctest/doctest.h>

#include "src/sql/fingerprint.hpp"

using namespace sluice::sql;

namespace {
std::string fp(const char* text, Dialect d = Dialect::Postgres) { return fingerprint(lex(text, d)); }
std::vector<std::string> vb(const char* text, Dialect d = Dialect::Postgres) { return verbs(lex(text, d)); }
}  // namespace

TEST_CASE("fingerprints: literals, parameters, lists and rows fold; case and spacing do not matter") {
  CHECK(fp("SELECT abalance FROM pgbench_accounts WHERE aid = 42") ==
        "select abalance from pgbench_accounts where aid = ?");
  CHECK(fp("select  abalance\n from PGBENCH_ACCOUNTS where aid=7;") ==
        fp("SELECT abalance FROM pgbench_accounts WHERE aid = 42"));
  CHECK(fp("SELECT * FROM t WHERE name = 'x''y' AND v > -3.5") == "select * from t where name = ? and v > ?");
  CHECK(fp("SELECT * FROM t WHERE id = $1") == "select * from t where id = ?");
  CHECK(fp("SELECT * FROM t WHERE id IN (1, 2, 3)") == "select * from t where id in(?, ...)");
  CHECK(fp("SELECT * FROM t WHERE id IN (1)") == "select * from t where id in(?)");
  CHECK(fp("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')") == "insert into t values(?, ...)");
  CHECK(fp("INSERT INTO t VALUES (1, 'a')") == fp("INSERT INTO t VALUES (9, 'z'), (8, 'y')"));
  CHECK(fp("SELECT 1 - 2") == "select ? - ?");
  CHECK(fp("SELECT count(*) FROM s.t WHERE x IS NULL") == "select count(*) from s.t where x is ?");
  CHECK(fp("SELECT \"Mixed\" FROM t") == "select \"Mixed\" from t");
  CHECK(fp("SELECT * FROM t WHERE a = ? AND b = 'x'", Dialect::Mysql) == "select * from t where a = ? and b = ?");
  CHECK(fp("SELECT * FROM t WHERE a = 1") != fp("SELECT * FROM u WHERE a = 1"));
  CHECK(fp("SELECT 1; DROP TABLE t") == "select ?; drop table t");
  // Operators written as one ("<=", "::", "||") stay one; "(" sticks to a call, not an operator.
  CHECK(fp("SELECT * FROM t WHERE a <= 3 AND b<>4 AND c != 5") == "select * from t where a <= ? and b <> ? and c != ?");
  CHECK(fp("SELECT a::text || b FROM t") == "select a::text || b from t");
  CHECK(fp("SELECT 1 / (v - v) FROM t") == "select ? / (v - v) from t");
  CHECK(fp("SELECT a < = 3") != fp("SELECT a <= 3"));
}

TEST_CASE("verbs: each statement's, through WITH, and their kinds") {
  CHECK(vb("SELECT 1") == std::vector<std::string>{"select"});
  CHECK(vb("select 1; DROP TABLE t; truncate u") == std::vector<std::string>{"select", "drop", "truncate"});
  CHECK(vb("WITH x AS (SELECT 1) DELETE FROM t USING x") == std::vector<std::string>{"delete"});
  CHECK(vb("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x") == std::vector<std::string>{"select"});
  CHECK(vb("/* hi */ GRANT ALL ON t TO u") == std::vector<std::string>{"grant"});
  CHECK(std::string(verb_kind("drop")) == "ddl");
  CHECK(std::string(verb_kind("insert")) == "dml");
  CHECK(std::string(verb_kind("revoke")) == "dcl");
  CHECK(std::string(verb_kind("select")) == "read");
  CHECK(std::string(verb_kind("begin")) == "other");
}
