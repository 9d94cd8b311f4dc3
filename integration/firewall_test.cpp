// The query firewall through real clients: deny rules on both protocols (simple and extended
// PostgreSQL queries, inside and outside transactions, MySQL text and prepared statements), and
// the allow-list learned, written to its file, enforced, edited and reloaded.
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "front_door_support.hpp"
#include "harness.hpp"

using namespace sluice::itest;

namespace {

std::string run(Conn& c, const char* sql) {
  PGresult* r = PQexec(c.c, sql);
  std::string out = PQresultStatus(r) == PGRES_FATAL_ERROR                 ? "ERROR:" + sqlstate_of(r)
                    : PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) ? PQgetvalue(r, 0, 0)
                                                                           : "ok";
  PQclear(r);
  return out;
}

}  // namespace

TEST_CASE("firewall rules: DDL, a table and a pattern denied on both protocols; the client stays") {
  SluiceProcess s(std::string(kDoorPools) + R"(
[[firewall.rules]]
name = "no ddl"
kinds = ["ddl", "dcl"]
action = "deny"
[[firewall.rules]]
tables = ["fw_secret"]
action = "deny"
[[firewall.rules]]
match = "pg_sleep|sleep\\("
action = "deny"
)",
                  kDoorAdmin);
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  CHECK(run(c, "DROP TABLE IF EXISTS fw_nothing") == "ERROR:42501");
  CHECK(run(c, "SELECT 1") == "1");
  CHECK(run(c, "SELECT 1; TRUNCATE fw_nothing") == "ERROR:42501");  // any statement of the text
  CHECK(run(c, "SELECT * FROM fw_secret") == "ERROR:42501");
  CHECK(run(c, "SELECT pg_sleep(0)") == "ERROR:42501");
  {
    PGresult* r = PQexec(c.c, "GRANT SELECT ON pg_class TO PUBLIC");
    CHECK(std::string(PQresultErrorMessage(r)).find("Sluice firewall: statement denied by firewall rule 1") !=
          std::string::npos);
    PQclear(r);
  }
  // In a transaction the refusal fails the transaction, as the server's own error would.
  CHECK(run(c, "BEGIN") == "ok");
  CHECK(run(c, "SELECT 2") == "2");
  CHECK(run(c, "DROP TABLE fw_nothing") == "ERROR:42501");
  CHECK(run(c, "SELECT 3") == "ERROR:25P02");
  CHECK(run(c, "ROLLBACK") == "ok");
  CHECK(run(c, "SELECT 4") == "4");
  // The extended protocol: the Parse is refused and the rest of the request skipped to Sync.
  PGresult* r = PQexecParams(c.c, "SELECT * FROM fw_secret WHERE id = $1", 1, nullptr,
                             std::array<const char*, 1>{"1"}.data(), nullptr, nullptr, 0);
  CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
  CHECK(sqlstate_of(r) == "42501");
  PQclear(r);
  r = PQprepare(c.c, "s1", "DROP TABLE fw_nothing", 0, nullptr);
  CHECK(sqlstate_of(r) == "42501");
  PQclear(r);
  CHECK(run(c, "BEGIN") == "ok");
  r = PQexecParams(c.c, "TRUNCATE fw_nothing", 0, nullptr, nullptr, nullptr, nullptr, 0);
  CHECK(sqlstate_of(r) == "42501");
  PQclear(r);
  CHECK(run(c, "SELECT 5") == "ERROR:25P02");
  CHECK(run(c, "ROLLBACK") == "ok");
  r = PQexecParams(c.c, "SELECT $1::int + 1", 1, nullptr, std::array<const char*, 1>{"41"}.data(), nullptr, nullptr, 0);
  CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
  if (PQresultStatus(r) == PGRES_TUPLES_OK) CHECK(std::string(PQgetvalue(r, 0, 0)) == "42");
  PQclear(r);

  // MySQL: 1142, and the connection goes on; a prepared statement is checked at COM_STMT_PREPARE.
  MyConn m(s.my_port());
  REQUIRE(m.ok);
  CHECK(m.scalar("DROP TABLE IF EXISTS fw_nothing") == "ERR:1142");
  CHECK(m.scalar("SELECT SLEEP(0)") == "ERR:1142");
  CHECK(m.scalar("SELECT 6") == "6");
  MYSQL_STMT* st = mysql_stmt_init(m.m);
  const char* q = "SELECT * FROM fw_secret";
  CHECK(mysql_stmt_prepare(st, q, std::strlen(q)) != 0);
  CHECK(mysql_stmt_errno(st) == 1142);
  mysql_stmt_close(st);
  CHECK(m.scalar("SELECT 7") == "7");

  // Counted per rule.
  Conn admin(s.conninfo("app", "app", "sluice"));
  REQUIRE(admin.ok());
  PGresult* rows = PQexec(admin.c, "SHOW FIREWALL_RULES");
  REQUIRE(PQntuples(rows) == 3);
  CHECK(std::stoi(PQgetvalue(rows, 0, 4)) >= 6);
  CHECK(std::stoi(PQgetvalue(rows, 1, 4)) >= 3);
  PQclear(rows);
}

TEST_CASE("firewall allow-list: learned, written, enforced, edited and reloaded") {
  const std::string path = "/tmp/sluice-itest-allow-" + std::to_string(::getpid());
  std::remove(path.c_str());
  SluiceProcess s(std::string(kDoorPools) + "[firewall]\nmode = \"learning\"\nallowlist_file = \"" + path + "\"\n",
                  kDoorAdmin);
  {
    Conn c(s.conninfo());
    REQUIRE(c.ok());
    CHECK(run(c, "SELECT 1") == "1");
    CHECK(run(c, "SELECT abs(-5)") == "5");
    CHECK(run(c, "SELECT 'x' || 'y'") == "xy");
    MyConn m(s.my_port());
    REQUIRE(m.ok);
    CHECK(m.scalar("SELECT 10") == "10");
  }
  // Within 2 s the file has them, per user, with their counts.
  std::string text;
  REQUIRE(eventually(
      [&] {
        std::ifstream f(path);
        text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
        return text.find("app\tselect abs(?)\t1") != std::string::npos;
      },
      5000));
  CHECK(text.find("app\tselect ?\t2") != std::string::npos);  // PostgreSQL's and MySQL's "SELECT n"
  CHECK(console(s, "SET firewall.mode = 'enforcing'").empty());
  {
    Conn c(s.conninfo());
    REQUIRE(c.ok());
    CHECK(run(c, "SELECT 99") == "99");  // the same shape
    CHECK(run(c, "SELECT abs(-7)") == "7");
    CHECK(run(c, "SELECT 1 OR 1 = 1") == "ERROR:42501");  // a new shape
    PGresult* r = PQexec(c.c, "SELECT 2 + 2");
    CHECK(std::string(PQresultErrorMessage(r)).find("not on the allow-list of user \"app\"") != std::string::npos);
    PQclear(r);
    MyConn m(s.my_port());
    REQUIRE(m.ok);
    CHECK(m.scalar("SELECT 11") == "11");
    CHECK(m.scalar("SELECT 1 + 1") == "ERR:1142");
  }
  // An operator removes a line and reloads: that shape is refused from then on.
  {
    std::string kept;
    std::size_t pos = 0;
    for (std::size_t nl; (nl = text.find('\n', pos)) != std::string::npos; pos = nl + 1) {
      std::string line = text.substr(pos, nl - pos + 1);
      if (line.find("abs(") == std::string::npos) kept += line;
    }
    std::ofstream(path) << kept;
  }
  // (RELOAD reads the whole file again, mode included: SET lasts until then.)
  s.rewrite(std::string(kDoorPools) + "[firewall]\nmode = \"enforcing\"\nallowlist_file = \"" + path + "\"\n",
            kDoorAdmin);
  CHECK(console(s, "RELOAD").empty());
  {
    Conn c(s.conninfo());
    REQUIRE(c.ok());
    CHECK(run(c, "SELECT abs(-7)") == "ERROR:42501");
    CHECK(run(c, "SELECT 5") == "5");
  }
  // SHOW FIREWALL lists the list; /metrics would count the refusals.
  Conn admin(s.conninfo("app", "app", "sluice"));
  PGresult* r = PQexec(admin.c, "SHOW FIREWALL");
  bool found = false;
  for (int i = 0; i < PQntuples(r); ++i)
    found = found || (std::string(PQgetvalue(r, i, 0)) == "app" && std::string(PQgetvalue(r, i, 1)) == "select ?");
  CHECK(found);
  PQclear(r);
  std::remove(path.c_str());
}
