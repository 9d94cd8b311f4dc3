// Query digests ([digests], SHOW QUERIES) against the servers' own statistics: the same
// statements through Sluice (simple, extended, named prepared, errors, a cached read) counted by
// Sluice and by pg_stat_statements on the sandbox primary, and by MariaDB's Com_* counters;
// ordering, LIKE, RESET QUERIES, the bound on distinct fingerprints, /metrics.
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>

#include <array>
#include <cstring>
#include <map>
#include <string>

#include "front_door_support.hpp"
#include "harness.hpp"

using namespace sluice::itest;

namespace {

const char* kDigestPools = R"(
[[pools]]
database = "app"
cluster = "pg"
pool_mode = "transaction"
pool_size = 2
[[pools]]
database = "app"
cluster = "my"
pool_mode = "transaction"
pool_size = 2
[digests]
enabled = true
[cache]
mode = "rules"
[[cache.rules]]
tables = ["digest_c"]
ttl = "60s"
)";

// SHOW QUERIES rows by fingerprint: column name -> value.
std::map<std::string, std::map<std::string, std::string>> queries(const SluiceProcess& s,
                                                                  const std::string& tail = "") {
  std::map<std::string, std::map<std::string, std::string>> out;
  Conn admin(s.conninfo("app", "app", "sluice"));
  PGresult* r = PQexec(admin.c, ("SHOW QUERIES " + tail).c_str());
  REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
  for (int i = 0; i < PQntuples(r); ++i) {
    auto& row = out[std::string(PQgetvalue(r, i, 0)) + " " + PQgetvalue(r, i, 3)];
    for (int c = 0; c < PQnfields(r); ++c) row[PQfname(r, c)] = PQgetvalue(r, i, c);
  }
  PQclear(r);
  return out;
}

// pg_stat_statements' (calls, rows) for the statement whose text contains `needle`.
std::pair<long, long> pgss(Conn& direct, const std::string& needle) {
  PGresult* r = PQexecParams(direct.c,
                             "SELECT coalesce(sum(calls), 0), coalesce(sum(rows), 0) FROM pg_stat_statements "
                             "WHERE query LIKE '%' || $1 || '%' AND query NOT LIKE '%pg_stat_statements%'",
                             1, nullptr, std::array<const char*, 1>{needle.c_str()}.data(), nullptr, nullptr, 0);
  std::pair<long, long> out{std::stol(PQgetvalue(r, 0, 0)), std::stol(PQgetvalue(r, 0, 1))};
  PQclear(r);
  return out;
}

std::string pg_superuser() {
  return "host=127.0.0.1 port=" + std::to_string(pg_port()) + " user=postgres dbname=app sslmode=disable";
}

long com(MyConn& direct, const char* name) {
  return std::stol(direct.scalar(std::string("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE "
                                             "VARIABLE_NAME = '") +
                                 name + "'"));
}

}  // namespace

TEST_CASE("PostgreSQL digests count what pg_stat_statements counts") {
  SluiceProcess s(kDigestPools, kDoorAdmin);
  Conn direct(pg_superuser());
  REQUIRE(direct.ok());
  REQUIRE(direct.exec("DROP TABLE IF EXISTS digest_t; DROP TABLE IF EXISTS digest_c"));
  REQUIRE(direct.exec("CREATE TABLE digest_t (id int primary key, v int); CREATE TABLE digest_c (id int)"));
  REQUIRE(
      direct.exec("INSERT INTO digest_t SELECT g, g FROM generate_series(1, 10) g; INSERT INTO digest_c VALUES (1)"));
  REQUIRE(direct.exec("GRANT ALL ON digest_t, digest_c TO app"));
  REQUIRE(direct.exec("SELECT pg_stat_statements_reset()"));
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  CHECK(console(s, "RESET QUERIES") == "");
  // Simple protocol, one shape with different literals.
  for (int i = 0; i < 5; ++i) CHECK(c.scalar("SELECT count(*) FROM digest_t WHERE v > " + std::to_string(i)) != "");
  // Extended protocol, unnamed.
  for (int i = 1; i <= 4; ++i) {
    std::string id = std::to_string(i);
    PGresult* r = PQexecParams(c.c, "SELECT v FROM digest_t WHERE id = $1", 1, nullptr,
                               std::array<const char*, 1>{id.c_str()}.data(), nullptr, nullptr, 0);
    CHECK(PQntuples(r) == 1);
    PQclear(r);
  }
  // A named prepared statement, executed three times.
  PQclear(PQprepare(c.c, "d1", "SELECT id FROM digest_t WHERE v <= $1", 0, nullptr));
  for (int i = 0; i < 3; ++i) {
    PGresult* r = PQexecPrepared(c.c, "d1", 1, std::array<const char*, 1>{"4"}.data(), nullptr, nullptr, 0);
    CHECK(PQntuples(r) == 4);
    PQclear(r);
  }
  // Writes, in and out of a transaction; errors.
  CHECK(c.exec("UPDATE digest_t SET v = v + 1 WHERE id <= 3"));
  CHECK(c.exec("BEGIN"));
  CHECK(c.exec("UPDATE digest_t SET v = v + 2 WHERE id <= 3"));
  CHECK(c.exec("COMMIT"));
  CHECK(c.scalar("SELECT 1 / (v - v) FROM digest_t WHERE id = 1") == "ERROR:22012");
  CHECK(c.scalar("SELECT 1 / (v - v) FROM digest_t WHERE id = 2") == "ERROR:22012");
  // A read the cache keeps: one call on the server, then a hit.
  CHECK(c.scalar("SELECT count(*) FROM digest_c") == "1");
  CHECK(c.scalar("SELECT count(*) FROM digest_c") == "1");

  auto q = queries(s);
  auto row = [&](const std::string& fp) -> std::map<std::string, std::string>& {
    auto it = q.find("postgres " + fp);
    REQUIRE_MESSAGE(it != q.end(), fp);
    return it->second;
  };
  auto& simple = row("select count(*) from digest_t where v > ?");
  auto& ext = row("select v from digest_t where id = ?");
  auto& named = row("select id from digest_t where v <= ?");
  auto& upd = row("update digest_t set v = v + ? where id <= ?");
  auto& err = row("select ? / (v - v) from digest_t where id = ?");
  auto& cached = row("select count(*) from digest_c");
  CHECK(simple["calls"] == "5");
  CHECK(simple["rows"] == "5");
  CHECK(simple["errors"] == "0");
  CHECK(simple["database"] == "app");
  CHECK(simple["user"] == "app");
  CHECK(ext["calls"] == "4");
  CHECK(named["calls"] == "3");
  CHECK(named["rows"] == "12");
  CHECK(upd["calls"] == "2");
  CHECK(upd["rows"] == "6");
  CHECK(err["calls"] == "2");
  CHECK(err["errors"] == "2");
  CHECK(cached["calls"] == "1");
  CHECK(cached["cache_hits"] == "1");
  CHECK(std::stod(simple["total_time"]) > 0);
  CHECK(std::stod(simple["p99_time"]) >= std::stod(simple["p50_time"]));
  CHECK(simple["on_primary"] == "5");
  // The server's own count of the same statements.
  auto [s_calls, s_rows] = pgss(direct, "count(*) FROM digest_t WHERE v >");
  CHECK(s_calls == 5);
  CHECK(s_rows == 5);
  CHECK(pgss(direct, "SELECT v FROM digest_t WHERE id =").first == 4);
  auto named_server = pgss(direct, "SELECT id FROM digest_t WHERE v <=");
  CHECK(named_server.first == 3);
  CHECK(named_server.second == 12);
  auto upd_server = pgss(direct, "UPDATE digest_t SET v = v +");
  CHECK(upd_server.first == 2);
  CHECK(upd_server.second == 6);
  CHECK(pgss(direct, "count(*) FROM digest_c").first == 1);

  // Order, limit, LIKE.
  auto top = queries(s, "ORDER BY calls DESC LIMIT 1");
  REQUIRE(top.size() == 1);
  CHECK(top.begin()->second["calls"] == "5");
  CHECK(queries(s, "LIKE '%digest_c%'").size() == 1);
  CHECK(console(s, "SHOW QUERIES ORDER BY nonsense") != "");
  CHECK(console(s, "RESET QUERIES") == "");
  CHECK(queries(s).empty());
}

TEST_CASE("MySQL digests: calls and rows as MariaDB's Com_* counters and result sets say; prepared executes") {
  SluiceProcess s(kDigestPools, kDoorAdmin);
  MyConn direct(my_port(), "app", "app", "app");
  REQUIRE(direct.ok);
  CHECK(direct.scalar("DROP TABLE IF EXISTS digest_t") == "");
  CHECK(direct.scalar("CREATE TABLE digest_t (id int primary key, v int)") == "");
  CHECK(direct.scalar("INSERT INTO digest_t VALUES (1, 1), (2, 2), (3, 3)") == "");
  MyConn m(s.my_port());
  REQUIRE(m.ok);
  long updates_before = com(direct, "COM_UPDATE"), executes_before = com(direct, "COM_STMT_EXECUTE");
  for (int i = 0; i < 3; ++i)
    CHECK(m.scalar("UPDATE digest_t SET v = v + " + std::to_string(i + 1) + " WHERE id <= 2") == "");
  for (int i = 0; i < 2; ++i) CHECK(m.scalar("SELECT id FROM digest_t WHERE v > 0 ORDER BY id") == "1");
  MYSQL_STMT* st = mysql_stmt_init(m.m);
  const char* sql = "UPDATE digest_t SET v = v + 1 WHERE id = 3";
  REQUIRE(mysql_stmt_prepare(st, sql, std::strlen(sql)) == 0);
  for (int i = 0; i < 4; ++i) CHECK(mysql_stmt_execute(st) == 0);
  mysql_stmt_close(st);
  CHECK(m.scalar("SELECT nosuchcolumn FROM digest_t") == "ERR:1054");
  long updates = com(direct, "COM_UPDATE") - updates_before,
       executes = com(direct, "COM_STMT_EXECUTE") - executes_before;

  auto q = queries(s);
  auto& text_upd = q["mysql update digest_t set v = v + ? where id <= ?"];
  auto& sel = q["mysql select id from digest_t where v > ? order by id"];
  auto& prep = q["mysql update digest_t set v = v + ? where id = ?"];
  auto& bad = q["mysql select nosuchcolumn from digest_t"];
  CHECK(text_upd["calls"] == "3");
  CHECK(text_upd["rows"] == "6");  // two rows changed by each
  // Com_update counts an UPDATE however it came (COM_QUERY or COM_STMT_EXECUTE).
  CHECK(std::stol(text_upd["calls"]) + std::stol(prep["calls"]) == updates);
  CHECK(prep["calls"] == "4");
  CHECK(std::stol(prep["calls"]) == executes);
  CHECK(prep["rows"] == "4");
  CHECK(sel["calls"] == "2");
  CHECK(sel["rows"] == "6");
  CHECK(bad["errors"] == "1");
  CHECK(sel["database"] == "app");
}

TEST_CASE("digests: a bound on distinct fingerprints (the rest in \"(other)\"); /metrics lists the costliest") {
  SluiceProcess s(std::string(kDigestPools) + "", kDoorAdmin);
  const int http = s.port() + 700;
  std::string cfg = std::string(kDigestPools);
  cfg.replace(cfg.find("enabled = true"), 14, "enabled = true\nmax_fingerprints = 3\nmetrics_top = 2");
  s.reload(cfg + "[http]\nlisten = \"127.0.0.1:" + std::to_string(http) + "\"\n", kDoorAdmin);
  REQUIRE(eventually([&] { return http_get(http, "/healthz").first == 200; }));
  CHECK(console(s, "RESET QUERIES") == "");
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  const char* shapes[] = {"SELECT 1", "SELECT 1 AS a", "SELECT 1 AS b", "SELECT 1 AS c", "SELECT 1 AS d"};
  for (auto* sql : shapes)
    for (int i = 0; i < 2; ++i) CHECK(c.scalar(sql) == "1");
  auto q = queries(s);
  CHECK(q.size() == 4);  // three shapes and "(other)"
  CHECK(q["postgres (other)"]["calls"] == "4");
  auto [code, body] = http_get(http, "/metrics");
  REQUIRE(code == 200);
  std::size_t n = 0;
  for (std::size_t p = 0; (p = body.find("\nsluice_query_calls_total{", p)) != std::string::npos; ++p) ++n;
  CHECK(n == 2);
  // SET turns them off: nothing more is counted.
  CHECK(console(s, "SET digests.enabled = false") == "");
  CHECK(c.scalar("SELECT 1") == "1");
  CHECK(queries(s)["postgres select ?"]["calls"] == "2");
}
