// [limits] through real clients on both protocols: connections per user, database and address,
// new connections per second per address, requests per second (refused and queued), their
// counters (SHOW LIMITS, /metrics), and changing them live with SET.
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>

#include <chrono>
#include <map>
#include <memory>
#include <thread>
#include <string>
#include <vector>

#include "front_door_support.hpp"
#include "harness.hpp"

using namespace sluice::itest;

namespace {

// SHOW LIMITS as limit/name -> (value, current, refused, queued) text cells.
struct LimitRow {
  std::string value, current, refused, queued;
};
std::map<std::string, LimitRow> show_limits(const SluiceProcess& s) {
  Conn admin(s.conninfo("app", "app", "sluice"));
  REQUIRE_MESSAGE(admin.ok(), admin.error());
  PGresult* r = PQexec(admin.c, "SHOW LIMITS");
  REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
  std::map<std::string, LimitRow> out;
  for (int i = 0; i < PQntuples(r); ++i)
    out[std::string(PQgetvalue(r, i, 0)) + "/" + PQgetvalue(r, i, 1)] = {PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
                                                                         PQgetvalue(r, i, 4), PQgetvalue(r, i, 5)};
  PQclear(r);
  return out;
}

// 20 simple queries at once on `c` under a 5-per-second refusing limit: how many were refused
// (each with 53400).
int refused_of_20(Conn& c) {
  int refused = 0;
  for (int i = 0; i < 20; ++i) {
    PGresult* r = PQexec(c.c, "SELECT 1");
    if (PQresultStatus(r) == PGRES_FATAL_ERROR) {
      CHECK(sqlstate_of(r) == "53400");
      ++refused;
    }
    PQclear(r);
  }
  return refused;
}

// The bucket refills (one second's worth), then a transaction of 20 statements counts once.
void transaction_counts_once(Conn& c) {
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // time is what refills a bucket
  CHECK(c.exec("BEGIN"));
  for (int i = 0; i < 20; ++i) CHECK(c.scalar("SELECT 1") == "1");
  CHECK(c.exec("COMMIT"));
}

// Switched live to queueing 20 a second (waiting up to 5 s): 60 requests = a burst of 20, then
// 40 at 20 a second, so no less than about 2 s, and none refused.
void queued_60(const SluiceProcess& s, Conn& c) {
  CHECK(console(s, "SET limits.rate_limit_action = 'queue'").empty());
  CHECK(console(s, "SET limits.queries_per_second_per_user = 20").empty());
  CHECK(console(s, "SET limits.rate_limit_max_wait = '5s'").empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // a full bucket
  auto t0 = std::chrono::steady_clock::now();
  int failed = 0;
  for (int i = 0; i < 60; ++i)
    if (c.scalar("SELECT 1") != "1") ++failed;
  CHECK(failed == 0);
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >= 1.8);
}

}  // namespace

TEST_CASE("PostgreSQL and MySQL: connections per user and per database; SET changes them live") {
  SluiceProcess s(std::string(kDoorPools) + R"(
[limits]
max_connections_per_user = 2
max_connections_per_database = 3
)",
                  kDoorAdmin);
  auto a = std::make_unique<Conn>(s.conninfo());
  Conn b(s.conninfo());
  REQUIRE(a->ok());
  REQUIRE(b.ok());
  // Idle, the two sleep (their session objects go): their places stay taken.
  REQUIRE(a->scalar("SELECT 1") == "1");
  REQUIRE(b.scalar("SELECT 1") == "1");
  {
    Conn admin(s.conninfo("app", "app", "sluice"));
    REQUIRE_MESSAGE(admin.ok(), admin.error());
    REQUIRE(eventually([&] {
      PGresult* r = PQexec(admin.c, "SHOW CLIENTS");
      int col = PQfnumber(r, "asleep"), db = PQfnumber(r, "database"), n = 0;
      for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && col >= 0 && i < PQntuples(r); ++i)
        if (std::string(PQgetvalue(r, i, db)) == "app" && std::string(PQgetvalue(r, i, col)) == "t") ++n;
      PQclear(r);
      return n == 2;
    }));
  }
  Conn c(s.conninfo());
  CHECK_FALSE(c.ok());
  CHECK(c.error().find("too many connections for role \"app\"") != std::string::npos);
  // The user's places count on both protocols: MySQL's third app is refused with 1203.
  {
    MyConn m(s.my_port());
    CHECK_FALSE(m.ok);
    CHECK(mysql_errno(m.m) == 1203);
  }
  // The console is not counted against the user (the admin gets in to fix things).
  auto rows = show_limits(s);
  CHECK(rows["max_connections_per_user/app"].current == "2");
  CHECK(rows["max_connections_per_user/*"].refused == "2");
  // md5user fills the database: app + app + md5user = 3.
  Conn d(s.conninfo("md5user", "md5pass"));
  REQUIRE(d.ok());
  CHECK(console(s, "SET limits.max_connections_per_user = 5").empty());
  Conn e(s.conninfo());
  CHECK_FALSE(e.ok());
  CHECK(e.error().find("too many connections for database \"app\"") != std::string::npos);
  // A client that leaves gives its places back.
  a.reset();
  REQUIRE(eventually([&] { return show_limits(s)["max_connections_per_database/app"].current == "2"; }));
  Conn f(s.conninfo());
  CHECK_MESSAGE(f.ok(), f.error());
  CHECK(f.scalar("SELECT 1") == "1");
  CHECK(b.scalar("SELECT 2") == "2");  // woken, with its places
}

TEST_CASE("connections per address, and new connections per second per address, before any login work") {
  SluiceProcess s(std::string(kDoorPools) + R"(
[limits]
max_connections_per_address = 3
)",
                  kDoorAdmin);
  Conn a(s.conninfo()), b(s.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  std::string err = console(s, "SET limits.max_connections_per_address = 2");  // the console is the third
  CHECK(err.empty());
  Conn c(s.conninfo());
  CHECK_FALSE(c.ok());
  CHECK(c.error().find("too many connections from host \"127.0.0.1\"") != std::string::npos);
  MyConn m(s.my_port());
  CHECK_FALSE(m.ok);
  CHECK(mysql_errno(m.m) == 1040);
  CHECK(std::string(mysql_error(m.m)).find("max_connections_per_address") != std::string::npos);

  // Rate: 5 new connections per second from this address (a burst of 5, then 5 a second).
  s.reload(std::string(kDoorPools) + R"(
[limits]
connections_per_second_per_address = 5
)",
           kDoorAdmin);
  // The reload is in force once the console shows the new value (no bucket existed before: the
  // first use finds it full; the console's own login takes one of its 5).
  REQUIRE(eventually([&] {
    Conn admin(s.conninfo("app", "app", "sluice"));
    if (!admin.ok()) return false;  // still refused by the old per-address limit: not reloaded yet
    PGresult* r = PQexec(admin.c, "SHOW LIMITS");
    bool seen = false;
    for (int i = 0; i < PQntuples(r); ++i)
      seen = seen || (std::string(PQgetvalue(r, i, 0)) == "connections_per_second_per_address" &&
                      std::string(PQgetvalue(r, i, 1)) == "*" && std::string(PQgetvalue(r, i, 2)) == "5");
    PQclear(r);
    return seen;
  }));
  int ok = 0, refused = 0;
  std::string refusal;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    Conn x(s.conninfo());
    if (x.ok()) ++ok;
    else ++refused, refusal = x.error();
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // At most the burst plus what the elapsed time refilled.
  CHECK(ok <= 5 + static_cast<int>(secs * 5) + 1);
  CHECK(refused >= 1);
  CHECK(refusal.find("too many new connections from host \"127.0.0.1\"") != std::string::npos);
  // The same address's bucket on the MySQL door: refused before the greeting with 1040.
  int my_refused = 0;
  for (int i = 0; i < 10 && my_refused == 0; ++i) {
    MyConn m(s.my_port());
    if (m.ok) continue;
    ++my_refused;
    CHECK(mysql_errno(m.m) == 1040);
    CHECK(std::string(mysql_error(m.m)).find("Too many new connections from '127.0.0.1'") != std::string::npos);
  }
  CHECK(my_refused == 1);
  // Every refusal counted (refused at accept or later, SHOW LIMITS counts each once).
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // a token for the console
  auto rows = show_limits(s);
  CHECK(std::stoi(rows["connections_per_second_per_address/*"].refused) == refused + my_refused);
}

TEST_CASE("requests per second: refused with 53400 / 1226 and the client stays; queued requests wait") {
  SluiceProcess s(std::string(kDoorPools) + R"(
[limits]
queries_per_second_per_user = 5
rate_limit_action = "refuse"
)",
                  kDoorAdmin);
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  int refused = refused_of_20(c);
  CHECK(refused >= 10);
  // The extended protocol: the whole request is refused, and the connection goes on.
  const char* params[1] = {"7"};
  PGresult* r = PQexecParams(c.c, "SELECT $1::int", 1, nullptr, params, nullptr, nullptr, 0);
  CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
  CHECK(sqlstate_of(r) == "53400");
  PQclear(r);
  CHECK(PQtransactionStatus(c.c) == PQTRANS_IDLE);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  r = PQexecParams(c.c, "SELECT $1::int", 1, nullptr, params, nullptr, nullptr, 0);
  CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
  if (PQresultStatus(r) == PGRES_TUPLES_OK) CHECK(std::string(PQgetvalue(r, 0, 0)) == "7");
  PQclear(r);
  transaction_counts_once(c);

  // MySQL: the same user's bucket; 1226, and the connection stays usable.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  MyConn m(s.my_port());
  REQUIRE(m.ok);
  int my_refused = 0;
  for (int i = 0; i < 20; ++i) {
    std::string v = m.scalar("SELECT 1");
    if (v == "ERR:1226") ++my_refused;
  }
  CHECK(my_refused >= 10);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  CHECK(m.scalar("SELECT 2") == "2");
  auto rows = show_limits(s);
  CHECK(std::stoi(rows["queries_per_second_per_user/*"].refused) >= refused + my_refused);

  queued_60(s, c);
  rows = show_limits(s);
  CHECK(std::stoi(rows["queries_per_second_per_user/*"].queued) >= 30);
}

TEST_CASE(
    "requests per second in session pooling: refused with 53400 (simple and extended), queued, and a "
    "transaction counts once") {
  SluiceProcess s(R"(
[[pools]]
database = "app"
cluster = "pg"
pool_mode = "session"
pool_size = 4
[limits]
queries_per_second_per_user = 5
rate_limit_action = "refuse"
)",
                  kDoorAdmin);
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  int refused = refused_of_20(c);
  CHECK(refused >= 10);
  CHECK(PQtransactionStatus(c.c) == PQTRANS_IDLE);
  const char* params[1] = {"7"};
  PGresult* r = PQexecParams(c.c, "SELECT $1::int", 1, nullptr, params, nullptr, nullptr, 0);
  CHECK(sqlstate_of(r) == "53400");
  PQclear(r);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  r = PQexecParams(c.c, "SELECT $1::int", 1, nullptr, params, nullptr, nullptr, 0);
  CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
  PQclear(r);
  transaction_counts_once(c);
  queued_60(s, c);
}
