// Cache keys: equal where only whitespace, comments or keyword case differ; different where a
// literal, a case-sensitive identifier or a parameter differs. Table references for invalidation.
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "src/sql/normalize.hpp"

using namespace sluice::sql;

namespace {
constexpr Dialect P = Dialect::Postgres;
constexpr Dialect M = Dialect::Mysql;

struct Group {
  Dialect d;
  std::vector<const char*> same;  // all normalize to one key
};

const Group kSame[] = {
    {P, {"SELECT 1", "select 1", "  SELECT   1  ", "SELECT 1;", "/* c */ SELECT 1", "SELECT 1 -- trailing", "SELECT\n\t1"}},
    {P, {"SELECT a, b FROM t WHERE id = 5", "select A , B from T where ID=5", "SELECT a,b FROM t WHERE id=5 /* x */"}},
    {P, {"SELECT * FROM t WHERE name = 'Bob'", "select * from T where NAME = 'Bob'"}},
    {P, {"SELECT count(*) FROM pgbench_accounts WHERE bid = 3", "SELECT COUNT(*) FROM PGBENCH_ACCOUNTS WHERE BID=3"}},
    {P, {"SELECT $1::int + 1", "select $1::INT + 1", "SELECT  $1 :: int+1"}},
    {P, {"SELECT E'a\\nb'", "select E'a\\nb'"}},
    {P, {"SELECT $$x$$", "select $$x$$ ;"}},
    {P, {"SELECT \"Mixed\" FROM t", "select \"Mixed\" from T"}},
    {P, {"WITH x AS (SELECT 1) SELECT * FROM x", "with X as (select 1) select * from X"}},
    {P, {"SELECT 1 /* a */ + /* b */ 2", "SELECT 1 + 2"}},
    {M, {"SELECT 1", "select 1", "SELECT 1 # c", "SELECT 1 -- c", "/* c */ SELECT 1;"}},
    {M, {"SELECT c FROM sbtest1 WHERE id = ?", "select c from sbtest1 where id=?", "SELECT  c  FROM sbtest1  WHERE  id = ?"}},
    {M, {"SELECT COUNT(*) FROM t", "select count(*) from t", "SELECT Count( * ) FROM t"}},
    {M, {"SELECT * FROM `t` WHERE a = 'x'", "select * from `t` where a = 'x'"}},
    {M, {"SELECT NOW()", "select now()"}},
    {M, {"SELECT a FROM t ORDER BY a DESC LIMIT 10", "select a from t order by a desc limit 10"}},
    {M, {"SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN ? AND ? ORDER BY c",
         "select distinct c from sbtest1 where id between ? and ? order by c"}},
};

// Every statement in a list has its own key.
const std::pair<Dialect, std::vector<const char*>> kDifferent[] = {
    {P,
     {"SELECT 1", "SELECT 2", "SELECT '1'", "SELECT 1.0", "SELECT 'a'", "SELECT 'A'", "SELECT 'a '", "SELECT \"a\"",
      "SELECT \"A\"", "SELECT a", "SELECT $1", "SELECT $2", "SELECT * FROM t WHERE id = 5", "SELECT * FROM t WHERE id = 6",
      "SELECT * FROM s.t", "SELECT * FROM t", "SELECT * FROM \"T\"", "SELECT E'a\\nb'", "SELECT 'a\\nb'",
      "SELECT $$x$$", "SELECT $$X$$", "SELECT 1 + 2", "SELECT 1 - 2", "SELECT -1", "SELECT now()",
      "SELECT * FROM t LIMIT 10", "SELECT * FROM t LIMIT 11"}},
    {M,
     {"SELECT 1", "SELECT 2", "SELECT '1'", "SELECT \"1\"", "SELECT * FROM t", "SELECT * FROM T", "SELECT * FROM `T`",
      "SELECT a FROM t", "SELECT A FROM t", "SELECT * FROM t WHERE a = 'x'", "SELECT * FROM t WHERE a = 'X'",
      "SELECT c FROM sbtest1 WHERE id = ?", "SELECT c FROM sbtest2 WHERE id = ?", "SELECT @a", "SELECT @@a",
      "SELECT * FROM db.t", "SELECT 0x1F", "SELECT 31"}},
};
}  // namespace

TEST_CASE("normalization: equal keys where only layout, comments or keyword case differ") {
  std::size_t n = 0;
  for (auto& g : kSame) {
    auto key = normalize(g.same[0], g.d);
    for (auto* s : g.same) {
      CHECK_MESSAGE(normalize(s, g.d) == key, s, " -> ", normalize(s, g.d), " vs ", key);
      ++n;
    }
  }
  for (auto& group : kDifferent) {
    std::set<std::string> keys;
    for (auto* s : group.second) {
      auto key = normalize(s, group.first);
      CHECK_MESSAGE(keys.insert(key).second, "collision: ", s, " -> ", key);
      ++n;
    }
  }
  CHECK(n >= 80);
  CHECK(normalize("select  A\n FROM t where x = 'It''s'", P) == "select a from t where x = 'It''s'");
  CHECK(normalize("SELECT c FROM Sbtest1 WHERE id=?", M) == "select c from Sbtest1 where id = ?");
}

TEST_CASE("tables a statement reads or writes") {
  auto names = [](std::string_view sql, Dialect d) { return tables(sql, d).names; };
  using V = std::vector<std::string>;
  CHECK(names("SELECT * FROM t", P) == V{"t"});
  CHECK(names("SELECT * FROM T", P) == V{"t"});
  CHECK(names("SELECT * FROM \"T\"", P) == V{"T"});
  CHECK(names("SELECT * FROM T", M) == V{"T"});
  CHECK(names("SELECT * FROM `db`.`t`", M) == V{"db.t"});
  CHECK(names("SELECT * FROM public.accounts a JOIN branches b ON a.bid = b.bid", P) == V{"public.accounts", "branches"});
  CHECK(names("SELECT * FROM a, b AS bb, c WHERE a.x = c.x", P) == V{"a", "b", "c"});
  CHECK(names("SELECT * FROM (SELECT * FROM inner_t) s", P) == V{"inner_t"});
  CHECK(names("SELECT * FROM generate_series(1, 3) g", P) == V{});
  CHECK(names("SELECT * FROM t1 LEFT JOIN t2 USING (id) WHERE x IN (SELECT y FROM t3)", P) == V{"t1", "t2", "t3"});
  CHECK(names("INSERT INTO t (a) VALUES (1)", P) == V{"t"});
  CHECK(names("INSERT INTO t SELECT * FROM s", P) == V{"t", "s"});
  CHECK(names("UPDATE ONLY t SET a = 1 FROM s WHERE t.id = s.id", P) == V{"t", "s"});
  CHECK(names("DELETE FROM t WHERE id = 1", P) == V{"t"});
  CHECK(names("TRUNCATE TABLE a", P) == V{"a"});
  CHECK(names("TRUNCATE a", P) == V{"a"});
  CHECK(names("COPY t FROM STDIN", P) == V{"t"});
  CHECK(names("ALTER TABLE t ADD COLUMN x int", P) == V{"t"});
  CHECK(names("DROP TABLE IF EXISTS t", P) == V{"t"});
  CHECK(names("CREATE INDEX i ON t (a)", P) == V{"t"});
  CHECK(names("REPLACE INTO t VALUES (1)", M) == V{"t"});
  CHECK(names("LOAD DATA LOCAL INFILE 'x' INTO TABLE t", M) == V{"t"});
  CHECK(names("UPDATE sbtest1 SET k=k+1 WHERE id=?", M) == V{"sbtest1"});
  CHECK(names("WITH x AS (SELECT * FROM a) SELECT * FROM x JOIN b ON true", P) == V{"a", "x", "b"});
  CHECK(tables("DELETE FROM t", P).complete);
  CHECK_FALSE(tables("CALL refresh_all()", M).complete);
  CHECK_FALSE(tables("DO $$ BEGIN DELETE FROM t; END $$", P).complete);
  CHECK_FALSE(tables("VACUUM", P).complete);
  CHECK(tables("SELECT 1", P).complete);
}

TEST_CASE("ASCII folding, eight bytes at a time: every byte value, every length and offset") {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  all += "ABCDEFGHIJKLMNOPQRSTUVWXYZ@[`{ SELECT \xc3\x89tat";
  for (std::size_t off = 0; off < 9; ++off)
    for (std::size_t len = 0; off + len <= all.size(); len += (len < 40 ? 1 : 37)) {
      std::string_view in(all.data() + off, len);
      std::string expected;
      for (char c : in) expected.push_back((c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c);
      std::string out = "x";
      append_lower_ascii(out, in);
      CHECK(out == "x" + expected);
      CHECK(lower_ascii(in) == expected);
      FoldedWord w(in);
      CHECK(w.view() == std::string_view(expected).substr(0, 64));
    }
}
