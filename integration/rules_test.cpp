// Traffic rules through real clients on both protocols, against the sandbox primary + replica:
// every matcher (user, application / program_name, address, kinds, tables, pattern, time window
// on a clock the test pins) and every action (route primary / replica, route_tags, zones,
// deny, rewrite, cache on / off / ttl, tag, continue), where each statement ran asked of the
// server that ran it, SHOW RULES counters across a reload, and /metrics.
//
// The replica is listed twice, as 127.0.0.1:port and localhost:port: two members of one server,
// told apart by SHOW BACKENDS' routed_reads, so that tags and zones have a choice to make.
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "front_door_support.hpp"
#include "harness.hpp"

using namespace sluice::itest;

namespace {

int pg_replica_port() { return std::stoi(env_or("SLUICE_PG_REPLICA_PORT", "15433")); }
int my_replica_port() { return std::stoi(env_or("SLUICE_MY_REPLICA_PORT", "13307")); }

// Clusters pgr / myr (replica twice, tagged), pools on them, zones, the cache in "all" mode,
// /metrics, and `rules`.
std::string config(const std::string& rules, int http_port) {
  auto cluster = [](const char* name, const char* protocol, int primary, int replica) {
    std::string r = std::to_string(replica);
    return std::string("[clusters.") + name + "]\nprotocol = \"" + protocol +
           "\"\nprimary = \"127.0.0.1:" + std::to_string(primary) + "\"\nreplicas = [\"127.0.0.1:" + r +
           "\", \"localhost:" + r +
           "\"]\nhealth_check_period = \"100ms\"\nbalance = \"round_robin\"\nwrite_functions = [\"upper\"]\n" +
           "tags = { \"127.0.0.1:" + r + "\" = { zone = \"v4\", tier = \"oltp\" }, \"localhost:" + r +
           "\" = { zone = \"v6\", tier = \"analytics\" } }\n\n";
  };
  return cluster("pgr", "postgres", pg_port(), pg_replica_port()) +
         cluster("myr", "mysql", my_port(), my_replica_port()) +
         "[[pools]]\ndatabase = \"app\"\ncluster = \"pgr\"\npool_size = 4\n"
         "[[pools]]\ndatabase = \"app\"\ncluster = \"myr\"\npool_size = 4\n"
         "[cache]\nmode = \"all\"\ndefault_ttl = \"60s\"\n" +
         (http_port ? "[http]\nlisten = \"127.0.0.1:" + std::to_string(http_port) + "\"\n" : std::string()) +
         "[[zones]]\nname = \"v4\"\naddresses = [\"127.0.0.0/8\"]\n"
         "[[zones]]\nname = \"v6\"\naddresses = [\"::1\"]\n" +
         rules;
}

const char* kRules = R"(
[[rules]]
name = "label"
tag = "all"
continue = true
[[rules]]
name = "primary please"
match = "primary_please"
route = "primary"
[[rules]]
name = "bi on replicas"
application = ["bi"]
match = "upper"
route = "replica"
[[rules]]
name = "md5user may not delete"
user = "md5user"
kinds = ["delete"]
action = "deny"
message = "md5user may not delete"
[[rules]]
name = "forbidden"
match = "forbidden_word"
action = "deny"
message = "that word is not allowed here"
[[rules]]
name = "rename"
match = "legacy_lower"
replace_match = "legacy_lower"
replace_with = "lower"
[[rules]]
name = "never cache"
tables = ["rules_plain"]
cache = false
[[rules]]
name = "cache long"
tables = ["rules_cached"]
cache_ttl = "60s"
[[rules]]
name = "analytics"
application = ["analytics"]
route_tags = { tier = "analytics" }
tag = "analytics"
[[rules]]
name = "office hours"
days = "mon-fri"
hours = "09:00-17:00"
time_zone = "Europe/Berlin"
match = "office_only"
action = "deny"
[[rules]]
name = "not from v6"
address = "::1"
match = "v4_only"
action = "deny"
[[rules]]
name = "short sleeps"
match = "sleep"
statement_timeout = "300ms"
[[rules]]
name = "mysql from loopback"
protocol = "mysql"
address = "127.0.0.0/8"
match = "local_only"
action = "deny"
)";

// routed_reads per member of `cluster` (SHOW BACKENDS).
std::map<std::string, long> routed_reads(const SluiceProcess& s, const std::string& cluster) {
  std::map<std::string, long> out;
  Conn admin(s.conninfo("app", "app", "sluice"));
  PGresult* r = PQexec(admin.c, "SHOW BACKENDS");
  for (int i = 0; i < PQntuples(r); ++i)
    if (cluster == PQgetvalue(r, i, 0)) out[PQgetvalue(r, i, 1)] = std::stol(PQgetvalue(r, i, 10));
  PQclear(r);
  return out;
}

// Runs `fn`, then says how many reads each member of `cluster` got meanwhile.
template <typename F>
std::map<std::string, long> reads_during(const SluiceProcess& s, const std::string& cluster, F fn) {
  auto before = routed_reads(s, cluster);
  fn();
  auto after = routed_reads(s, cluster);
  for (auto& [k, v] : after) v -= before[k];
  return after;
}

// Column `col` of SHOW RULES' row for rule `name`.
std::string rules_cell(const SluiceProcess& s, const std::string& name, int col) {
  Conn admin(s.conninfo("app", "app", "sluice"));
  PGresult* r = PQexec(admin.c, "SHOW RULES");
  std::string out;
  for (int i = 0; i < PQntuples(r); ++i)
    if (name == PQgetvalue(r, i, 1)) out = PQgetvalue(r, i, col);
  PQclear(r);
  return out;
}
long hits(const SluiceProcess& s, const std::string& name) { return std::stol(rules_cell(s, name, 6)); }

// Cache hits in all (SHOW CACHE's * row).
long cache_hits(const SluiceProcess& s) {
  Conn admin(s.conninfo("app", "app", "sluice"));
  PGresult* r = PQexec(admin.c, "SHOW CACHE LIKE '*'");
  long v = -1;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) v = std::stol(PQgetvalue(r, 0, PQfnumber(r, "hits")));
  PQclear(r);
  return v;
}

std::string error_text(Conn& c, const char* sql) {
  PGresult* r = PQexec(c.c, sql);
  std::string out = PQresultStatus(r) == PGRES_FATAL_ERROR
                        ? sqlstate_of(r) + " " + PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
                        : "";
  PQclear(r);
  return out;
}

std::string superuser(int port) {
  return "host=127.0.0.1 port=" + std::to_string(port) + " user=postgres dbname=app sslmode=disable";
}

}  // namespace

TEST_CASE("PostgreSQL: rules route, deny, rewrite and cache; tags and zones pick the replica member") {
  SluiceProcess::listen_v6 = true;
  SluiceProcess s(config(kRules, 0), kDoorAdmin);
  SluiceProcess::listen_v6 = false;
  const std::string v4 = "127.0.0.1:" + std::to_string(pg_replica_port());
  const std::string v6 = "localhost:" + std::to_string(pg_replica_port());
  Conn c(s.conninfo());
  REQUIRE_MESSAGE(c.ok(), c.error());
  REQUIRE(eventually([&] { return c.scalar("SELECT pg_is_in_recovery()") == "t"; }, 10000));

  SUBCASE("route = primary by pattern, route = replica by application; simple and extended") {
    CHECK(c.scalar("SELECT pg_is_in_recovery() AS primary_please") == "f");
    PGresult* r = PQexecParams(c.c, "SELECT pg_is_in_recovery(), $1::int AS primary_please", 1, nullptr,
                               std::array<const char*, 1>{"1"}.data(), nullptr, nullptr, 0);
    CHECK(std::string(PQgetvalue(r, 0, 0)) == "f");
    PQclear(r);
    // upper() is one of the cluster's write functions: the primary, unless the application is "bi".
    CHECK(c.scalar("SELECT pg_is_in_recovery(), upper('x')") == "f");
    Conn bi(s.conninfo() + " application_name=bi");
    REQUIRE(bi.ok());
    CHECK(bi.scalar("SELECT pg_is_in_recovery(), upper('x')") == "t");
    // SET application_name counts too. (The SET is a write for read-your-writes: reads wait for a
    // replica that has replayed the primary's position after it; a plain read, which no rule
    // matches, shows when one has.)
    CHECK(c.exec("SET application_name = 'bi'"));
    CHECK(eventually([&] { return c.scalar("SELECT pg_is_in_recovery()") == "t"; }));
    CHECK(c.scalar("SELECT pg_is_in_recovery(), upper('y')") == "t");
    CHECK(c.exec("SET application_name = 'web'"));
    CHECK(c.scalar("SELECT pg_is_in_recovery(), upper('z')") == "f");
    CHECK(hits(s, "primary please") == 2);
    CHECK(hits(s, "bi on replicas") == 2);
  }

  SUBCASE("deny by user and kind, and by pattern, with the rule's words; the client stays") {
    CHECK(c.exec("CREATE TABLE IF NOT EXISTS rules_t (id int)"));
    Conn md5(s.conninfo("md5user", "md5pass"));
    REQUIRE(md5.ok());
    CHECK(error_text(md5, "DELETE FROM rules_t WHERE false") == "42501 md5user may not delete");
    CHECK(md5.scalar("SELECT 1") == "1");
    CHECK(error_text(c, "DELETE FROM rules_t WHERE false").empty());  // app may
    CHECK(error_text(c, "SELECT 1 AS forbidden_word") == "42501 that word is not allowed here");
    PGresult* r = PQprepare(c.c, "f1", "SELECT $1::int AS forbidden_word", 0, nullptr);
    CHECK(sqlstate_of(r) == "42501");
    PQclear(r);
    CHECK(c.exec("BEGIN"));
    CHECK(error_text(c, "SELECT 1 AS forbidden_word") == "42501 that word is not allowed here");
    CHECK(c.scalar("SELECT 1") == "ERROR:25P02");  // the transaction failed, as on the server
    CHECK(c.exec("ROLLBACK"));
    CHECK(c.scalar("SELECT 2") == "2");
  }

  SUBCASE("rewrite: simple, extended and named statements run the new text") {
    CHECK(c.scalar("SELECT legacy_lower('ABC')") == "abc");
    PGresult* r = PQexecParams(c.c, "SELECT legacy_lower('ABC') || $1::text", 1, nullptr,
                               std::array<const char*, 1>{"!"}.data(), nullptr, nullptr, 0);
    CHECK(std::string(PQgetvalue(r, 0, 0)) == "abc!");
    PQclear(r);
    PQclear(PQprepare(c.c, "m1", "SELECT legacy_lower('ABC'), $1::int", 0, nullptr));
    for (int i = 0; i < 2; ++i) {
      r = PQexecPrepared(c.c, "m1", 1, std::array<const char*, 1>{"3"}.data(), nullptr, nullptr, 0);
      CHECK(std::string(PQgetvalue(r, 0, 0)) == "abc");
      PQclear(r);
    }
    CHECK(hits(s, "rename") == 3);
  }

  SUBCASE("cache_ttl keeps an answer, cache = false never does (the cache is in mode all)") {
    CHECK(c.exec("DROP TABLE IF EXISTS rules_cached; DROP TABLE IF EXISTS rules_plain"));
    CHECK(c.exec(
        "CREATE TABLE rules_cached (id int primary key, v int); CREATE TABLE rules_plain (id int primary key, v int)"));
    CHECK(c.exec("INSERT INTO rules_cached VALUES (1, 1); INSERT INTO rules_plain VALUES (1, 1)"));
    CHECK(c.scalar("SELECT v FROM rules_cached WHERE id = 1") == "1");  // filled (read your writes)
    CHECK(c.scalar("SELECT v FROM rules_plain WHERE id = 1") == "1");
    Conn direct(superuser(pg_port()));
    REQUIRE(direct.ok());
    CHECK(direct.exec("BEGIN; UPDATE rules_cached SET v = 2; UPDATE rules_plain SET v = 2; COMMIT"));
    // Behind Sluice's back: the plain table shows it once the replica has it, the cached one not.
    CHECK(eventually([&] { return c.scalar("SELECT v FROM rules_plain WHERE id = 1") == "2"; }));
    CHECK(c.scalar("SELECT v FROM rules_cached WHERE id = 1") == "1");
    Conn admin(s.conninfo("app", "app", "sluice"));
    CHECK(admin.exec("CACHE PURGE"));
    CHECK(c.scalar("SELECT v FROM rules_cached WHERE id = 1") == "2");
  }

  SUBCASE("zones: reads go to the client's zone; route_tags override it; writes stay on the primary") {
    Conn c6("host=::1 port=" + std::to_string(s.port()) + " user=app password=app dbname=app sslmode=disable");
    REQUIRE_MESSAGE(c6.ok(), c6.error());
    auto d = reads_during(s, "pgr", [&] {
      for (int i = 0; i < 10; ++i) CHECK(c.scalar("SELECT pg_is_in_recovery()") == "t");
    });
    CHECK(d[v4] == 10);
    CHECK(d[v6] == 0);
    d = reads_during(s, "pgr", [&] {
      for (int i = 0; i < 10; ++i) CHECK(c6.scalar("SELECT pg_is_in_recovery()") == "t");
    });
    CHECK(d[v4] == 0);
    CHECK(d[v6] == 10);
    Conn an(s.conninfo() + " application_name=analytics");  // from 127.0.0.1 (zone v4)
    REQUIRE(an.ok());
    d = reads_during(s, "pgr", [&] {
      for (int i = 0; i < 10; ++i) CHECK(an.scalar("SELECT pg_is_in_recovery()") == "t");
      CHECK(an.scalar("SELECT pg_is_in_recovery() FROM (SELECT 1) x FOR UPDATE") == "f");
    });
    CHECK(d[v6] == 10);
    CHECK(d[v4] == 0);
    CHECK(rules_cell(s, "analytics", 4) == "analytics");
    // The address rule: from ::1 refused, from 127.0.0.1 not.
    CHECK(error_text(c6, "SELECT 1 AS v4_only").rfind("42501", 0) == 0);
    CHECK(c.scalar("SELECT 1 AS v4_only") == "1");
    // SHOW BACKENDS shows the tags; SHOW ZONES the zones and their members.
    Conn admin(s.conninfo("app", "app", "sluice"));
    PGresult* r = PQexec(admin.c, "SHOW BACKENDS");
    bool tagged = false;
    for (int i = 0; i < PQntuples(r); ++i)
      tagged = tagged || (v6 == PQgetvalue(r, i, 1) && std::string(PQgetvalue(r, i, 13)) == "tier=analytics,zone=v6");
    CHECK(tagged);
    PQclear(r);
    r = PQexec(admin.c, "SHOW ZONES");
    REQUIRE(PQntuples(r) == 2);
    CHECK(std::string(PQgetvalue(r, 1, 2)).find("pgr/" + v6) != std::string::npos);
    PQclear(r);
  }

  SUBCASE("statement_timeout cancels a statement that runs too long; the connection and the next statement are fine") {
    auto started = std::chrono::steady_clock::now();
    CHECK(c.scalar("SELECT pg_sleep(5)") == "ERROR:57014");
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(3));
    CHECK(c.scalar("SELECT pg_sleep(0.01)") == "");  // quick enough
    CHECK(c.exec("BEGIN"));
    CHECK(c.scalar("SELECT pg_sleep(5)") == "ERROR:57014");
    CHECK(c.exec("ROLLBACK"));
    CHECK(c.scalar("SELECT 3") == "3");
    // The timer is disarmed when the answer comes: a later slow statement without the rule runs on.
    CHECK(c.scalar("SELECT pg_sleep(0.01)") == "");
    CHECK(c.scalar("SELECT count(*) FROM generate_series(1, 10)") == "10");
  }

  SUBCASE("a time window on a clock the test pins: Monday 09:30 in Berlin denies, Saturday does not") {
    CHECK(console(s, "SET RULES_CLOCK = '2026-12-07 08:30:00'").empty());
    CHECK(error_text(c, "SELECT 1 AS office_only").rfind("42501", 0) == 0);
    CHECK(console(s, "SET RULES_CLOCK = '2026-07-06 07:30:00'").empty());  // summer time: 09:30 too
    CHECK(error_text(c, "SELECT 1 AS office_only").rfind("42501", 0) == 0);
    CHECK(console(s, "SET RULES_CLOCK = '2026-12-07 16:00:00'").empty());  // 17:00: over
    CHECK(c.scalar("SELECT 1 AS office_only") == "1");
    CHECK(console(s, "SET RULES_CLOCK = '2026-12-05 10:00:00'").empty());  // a Saturday
    CHECK(c.scalar("SELECT 1 AS office_only") == "1");
    // A statement prepared while the window is closed is judged again at each execution.
    PQclear(PQprepare(c.c, "office", "SELECT 1 AS office_only", 0, nullptr));
    PGresult* r = PQexecPrepared(c.c, "office", 0, nullptr, nullptr, nullptr, 0);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
    CHECK(console(s, "SET RULES_CLOCK = '2026-12-07 08:30:00'").empty());
    r = PQexecPrepared(c.c, "office", 0, nullptr, nullptr, nullptr, 0);
    CHECK(sqlstate_of(r) == "42501");
    PQclear(r);
    CHECK(c.scalar("SELECT 7") == "7");  // the connection goes on
    CHECK(console(s, "SET RULES_CLOCK = '2026-12-05 10:00:00'").empty());
    r = PQexecPrepared(c.c, "office", 0, nullptr, nullptr, nullptr, 0);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
    CHECK_FALSE(console(s, "SET RULES_CLOCK = 'yesterday'").empty());
    CHECK(console(s, "SET RULES_CLOCK = 'system'").empty());
  }

  SUBCASE("SHOW RULES counts every statement under the continuing label; RELOAD keeps unchanged rules' counts") {
    for (int i = 0; i < 5; ++i) CHECK(c.scalar("SELECT " + std::to_string(i)) == std::to_string(i));
    long label = hits(s, "label");
    CHECK(label >= 5);
    CHECK(rules_cell(s, "label", 5) == "t");
    CHECK(rules_cell(s, "label", 4) == "all");
    CHECK(rules_cell(s, "cache long", 3) == "cache_ttl=60000ms");
    CHECK(c.scalar("SELECT legacy_lower('ABC')") == "abc");
    long rename = hits(s, "rename");
    std::string changed = kRules;
    changed.replace(changed.find("replace_with = \"lower\""), 22, "replace_with = \"upper\"");
    SluiceProcess::listen_v6 = true;  // as started
    s.rewrite(config(changed, 0), kDoorAdmin);
    SluiceProcess::listen_v6 = false;
    CHECK(console(s, "RELOAD") == "");
    CHECK(hits(s, "label") >= label);  // unchanged: kept
    CHECK(hits(s, "rename") == 0);     // changed: a new rule
    CHECK(rename >= 1);
    CHECK(c.scalar("SELECT legacy_lower('abc')") == "ABC");
  }
}

TEST_CASE("MySQL: rules route, deny, rewrite, cache; program_name; prepared statements; /metrics") {
  SluiceProcess s(config(kRules, 0), kDoorAdmin);
  const std::string v4 = "127.0.0.1:" + std::to_string(my_replica_port());
  const std::string v6 = "localhost:" + std::to_string(my_replica_port());
  MyConn primary(my_port(), "app", "app", "app");
  MyConn replica(my_replica_port(), "app", "app", "app");
  REQUIRE(primary.ok);
  REQUIRE(replica.ok);
  const std::string primary_id = primary.scalar("SELECT @@server_id"),
                    replica_id = replica.scalar("SELECT @@server_id");
  REQUIRE(primary_id != replica_id);
  MyConn m(s.my_port());
  REQUIRE(m.ok);
  REQUIRE(eventually([&] { return m.scalar("SELECT @@server_id") == replica_id; }, 10000));

  // route = primary by pattern; program_name "bi" sends a write-function read to the replica.
  CHECK(m.scalar("SELECT @@server_id AS primary_please") == primary_id);
  CHECK(m.scalar("SELECT @@server_id, upper('x')") == primary_id);
  MyConn bi(s.my_port(), "app", "app", "app", 0, "bi");
  REQUIRE(bi.ok);
  CHECK(bi.scalar("SELECT @@server_id, upper('x')") == replica_id);
  // A prepared statement: judged at prepare and at each execute.
  auto run_prepared = [&](MyConn& conn, const char* q) {
    MYSQL_STMT* st = mysql_stmt_init(conn.m);
    std::string out;
    if (mysql_stmt_prepare(st, q, std::strlen(q)) != 0) {
      out = "ERR:" + std::to_string(mysql_stmt_errno(st));
    } else if (mysql_stmt_execute(st) != 0) {
      out = "ERR:" + std::to_string(mysql_stmt_errno(st)) + " " + mysql_stmt_error(st);
    } else {
      // Every column bound (Connector/C reads one bind per column), the first one read.
      std::array<std::array<char, 64>, 4> bufs{};
      std::array<unsigned long, 4> lens{};
      std::array<MYSQL_BIND, 4> b{};
      for (std::size_t i = 0; i < b.size(); ++i) {
        b[i].buffer_type = MYSQL_TYPE_STRING;
        b[i].buffer = bufs[i].data();
        b[i].buffer_length = bufs[i].size() - 1;
        b[i].length = &lens[i];
      }
      REQUIRE(mysql_stmt_field_count(st) <= b.size());
      mysql_stmt_bind_result(st, b.data());
      char* buf = bufs[0].data();
      unsigned long len = 0;
      if (int f = mysql_stmt_fetch(st); f == 0) len = lens[0], out.assign(buf, len);
      else out = "FETCH:" + std::to_string(f) + " " + mysql_stmt_error(st);
    }
    mysql_stmt_close(st);
    return out;
  };
  CHECK(run_prepared(m, "SELECT @@server_id AS primary_please") == primary_id);
  CHECK(run_prepared(bi, "SELECT @@server_id, upper('y')") == replica_id);
  CHECK(run_prepared(m, "SELECT legacy_lower('ABC')") == "abc");
  CHECK(run_prepared(m, "SELECT 1 AS forbidden_word") == "ERR:1142");

  // Deny with the rule's words; the connection goes on.
  CHECK(m.scalar("SELECT 1 AS forbidden_word") == "ERR:1142");
  CHECK(std::string(mysql_error(m.m)).find("that word is not allowed here") != std::string::npos);
  CHECK(m.scalar("SELECT 5") == "5");
  // Rewrite.
  CHECK(m.scalar("SELECT legacy_lower('ABC')") == "abc");

  // Cache: cache_ttl keeps an answer a direct write changed; cache = false shows the change.
  CHECK(m.scalar("DROP TABLE IF EXISTS rules_cached") == "");
  CHECK(m.scalar("DROP TABLE IF EXISTS rules_plain") == "");
  CHECK(m.scalar("CREATE TABLE rules_cached (id int primary key, v int)") == "");
  CHECK(m.scalar("CREATE TABLE rules_plain (id int primary key, v int)") == "");
  CHECK(m.scalar("INSERT INTO rules_cached VALUES (1, 1)") == "");
  CHECK(m.scalar("INSERT INTO rules_plain VALUES (1, 1)") == "");
  // Read by a client that has written nothing, until it is a hit. (m's reads need answers at
  // least as new as its last write, by position whatever the table, and a replica's answer is
  // kept only once it covers the writes through Sluice: a write above whose position the server
  // did not report marks every table until max_replica_lag, 10 s here, has passed. The test
  // once read with m and took "1" for cached when it was not: after the direct write, 2.)
  MyConn reader(s.my_port());
  REQUIRE(reader.ok);
  CHECK(eventually(
      [&] {
        long before = cache_hits(s);
        return reader.scalar("SELECT v FROM rules_cached WHERE id = 1") == "1" && cache_hits(s) > before;
      },
      20000));
  CHECK(m.scalar("SELECT v FROM rules_plain WHERE id = 1") == "1");
  CHECK(primary.scalar("UPDATE rules_cached SET v = 2") == "");
  CHECK(primary.scalar("UPDATE rules_plain SET v = 2") == "");
  CHECK(eventually([&] { return reader.scalar("SELECT v FROM rules_plain WHERE id = 1") == "2"; }));
  CHECK(reader.scalar("SELECT v FROM rules_cached WHERE id = 1") == "1");

  // Zone v4 (a client that has not written: m's writes keep its reads on the primary) and
  // route_tags for program_name "analytics".
  MyConn fresh(s.my_port());
  REQUIRE(fresh.ok);
  auto d = reads_during(s, "myr", [&] {
    for (int i = 0; i < 6; ++i) CHECK(fresh.scalar("SELECT @@server_id") == replica_id);
  });
  CHECK(d[v4] == 6);
  CHECK(d[v6] == 0);
  MyConn an(s.my_port(), "app", "app", "app", 0, "analytics");
  REQUIRE(an.ok);
  d = reads_during(s, "myr", [&] {
    for (int i = 0; i < 6; ++i) CHECK(an.scalar("SELECT @@server_id") == replica_id);
  });
  CHECK(d[v6] == 6);
  CHECK(d[v4] == 0);

  // An address rule: this client comes from 127.0.0.1.
  CHECK(m.scalar("SELECT 1 AS local_only") == "ERR:1142");
  CHECK(hits(s, "mysql from loopback") == 1);

  // statement_timeout: KILL QUERY on the server thread.
  {
    auto started = std::chrono::steady_clock::now();
    std::string r = m.scalar("SELECT SLEEP(5)");
    CHECK((r == "ERR:1317" || r == "1"));  // interrupted: an error, or SLEEP's own 1
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(3));
    CHECK(m.scalar("SELECT 8") == "8");
  }

  // The time window, on the pinned clock.
  CHECK(console(s, "SET RULES_CLOCK = '2026-12-07 08:30:00'").empty());
  CHECK(m.scalar("SELECT 1 AS office_only") == "ERR:1142");
  CHECK(console(s, "SET RULES_CLOCK = '2026-12-05 08:30:00'").empty());
  CHECK(m.scalar("SELECT 1 AS office_only") == "1");
  CHECK(console(s, "SET RULES_CLOCK = 'system'").empty());
  CHECK(hits(s, "primary please") == 3);  // a query, a prepare and its execute
  CHECK(hits(s, "forbidden") == 2);
}

TEST_CASE("/metrics: sluice_rule_hits_total by rule and tag") {
  SluiceProcess s(config(kRules, 0), kDoorAdmin);
  const int http = s.port() + 700;
  s.reload(config(kRules, http), kDoorAdmin);
  REQUIRE(eventually([&] { return http_get(http, "/healthz").first == 200; }));
  Conn an(s.conninfo() + " application_name=analytics");
  REQUIRE(an.ok());
  for (int i = 0; i < 3; ++i) CHECK(an.scalar("SELECT 1") == "1");
  auto [code, body] = http_get(http, "/metrics");
  REQUIRE(code == 200);
  CHECK(metric(body, "sluice_rule_hits_total{rule=\"9\",name=\"analytics\",tag=\"analytics\"}") == 3);
  CHECK(metric(body, "sluice_rule_hits_total{rule=\"1\",name=\"label\",tag=\"all\"}") >= 3);
}

TEST_CASE("split: 90/10 between two clusters over 1,000 PostgreSQL and 100 MySQL clients, sticky per client") {
  // Two clusters per protocol over the sandbox: "blue" the primary, "green" the replica, so the
  // server port a client reaches names its arm.
  auto cl = [](const char* name, const char* protocol, int port) {
    return std::string("[clusters.") + name + "]\nprotocol = \"" + protocol +
           "\"\nprimary = \"127.0.0.1:" + std::to_string(port) + "\"\nhealth_check_period = \"200ms\"\n";
  };
  SluiceProcess s(cl("blue", "postgres", pg_port()) + cl("green", "postgres", pg_replica_port()) +
                      cl("myblue", "mysql", my_port()) + cl("mygreen", "mysql", my_replica_port()) +
                      "[[pools]]\ndatabase = \"app\"\nsplit = { blue = 90, green = 10 }\npool_size = 4\n"
                      "[[pools]]\ndatabase = \"app\"\nsplit = { myblue = 90, mygreen = 10 }\npool_size = 4\n",
                  kDoorAdmin);
  const std::string blue = std::to_string(pg_port()), green = std::to_string(pg_replica_port());
  std::map<std::string, int> arms;
  for (int i = 0; i < 1000; ++i) {
    Conn c(s.conninfo());
    REQUIRE_MESSAGE(c.ok(), c.error());
    std::string port = c.scalar("SELECT inet_server_port()");
    ++arms[port];
    if (i % 100 == 7) {  // a client's transactions and statements never straddle the arms
      for (int t = 0; t < 3; ++t) {
        CHECK(c.exec("BEGIN"));
        CHECK(c.scalar("SELECT inet_server_port()") == port);
        CHECK(c.exec("COMMIT"));
        CHECK(c.scalar("SELECT inet_server_port()") == port);
      }
    }
  }
  CHECK(arms.size() == 2);
  CHECK(std::abs(arms[blue] - 900) <= 30);  // the issue's bound; the turn order makes it exact
  CHECK(std::abs(arms[green] - 100) <= 30);
  CHECK(arms[blue] == 900);

  MyConn primary(my_port());
  REQUIRE(primary.ok);
  const std::string my_blue = primary.scalar("SELECT @@port");
  std::map<std::string, int> my_arms;
  for (int i = 0; i < 100; ++i) {
    MyConn m(s.my_port());
    REQUIRE(m.ok);
    std::string port = m.scalar("SELECT @@port");
    ++my_arms[port];
    CHECK(m.scalar("SELECT @@port") == port);
  }
  CHECK(my_arms[my_blue] == 90);
  CHECK(my_arms.size() == 2);

  // SHOW SPLITS: placed per arm, and nobody on them once every client left.
  Conn admin(s.conninfo("app", "app", "sluice"));
  REQUIRE(eventually([&] {
    PGresult* r = PQexec(admin.c, "SHOW SPLITS");
    std::map<std::string, std::pair<std::string, std::string>> rows;
    for (int i = 0; i < PQntuples(r); ++i) rows[PQgetvalue(r, i, 2)] = {PQgetvalue(r, i, 4), PQgetvalue(r, i, 5)};
    PQclear(r);
    return rows.size() == 4 && rows["blue"] == std::make_pair(std::string("0"), std::string("900")) &&
           rows["green"] == std::make_pair(std::string("0"), std::string("100")) && rows["myblue"].second == "90" &&
           rows["mygreen"].second == "10";
  }));
  // A client stays on its arm across a reload that changes the weights.
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  std::string port = c.scalar("SELECT inet_server_port()");
  s.rewrite(cl("blue", "postgres", pg_port()) + cl("green", "postgres", pg_replica_port()) +
                cl("myblue", "mysql", my_port()) + cl("mygreen", "mysql", my_replica_port()) +
                "[[pools]]\ndatabase = \"app\"\nsplit = { blue = 10, green = 90 }\npool_size = 4\n"
                "[[pools]]\ndatabase = \"app\"\nsplit = { myblue = 50, mygreen = 50 }\npool_size = 4\n",
            kDoorAdmin);
  CHECK(console(s, "RELOAD") == "");
  for (int i = 0; i < 5; ++i) CHECK(c.scalar("SELECT inet_server_port()") == port);
}

TEST_CASE("cluster: a rule sends statements to another cluster between transactions, on both protocols") {
  // The home clusters are the sandbox primaries; "other" and "myother" are the replicas.
  SluiceProcess s(
      std::string(kDoorPools) +
          "[clusters.other]\nprotocol = \"postgres\"\nprimary = \"127.0.0.1:" + std::to_string(pg_replica_port()) +
          "\"\n[clusters.myother]\nprotocol = \"mysql\"\nprimary = \"127.0.0.1:" + std::to_string(my_replica_port()) +
          "\"\n" + R"(
[[rules]]
protocol = "postgres"
match = "to_other"
cluster = "other"
[[rules]]
protocol = "mysql"
match = "to_other"
cluster = "myother"
)",
      kDoorAdmin);
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  CHECK(c.scalar("SELECT pg_is_in_recovery()") == "f");
  CHECK(c.scalar("SELECT pg_is_in_recovery() AS to_other") == "t");
  CHECK(c.scalar("SELECT pg_is_in_recovery()") == "f");  // back home
  PGresult* r = PQexecParams(c.c, "SELECT pg_is_in_recovery(), $1::int AS to_other", 1, nullptr,
                             std::array<const char*, 1>{"1"}.data(), nullptr, nullptr, 0);
  CHECK(std::string(PQgetvalue(r, 0, 0)) == "t");
  PQclear(r);
  // Inside a transaction begun at home the statement stays home.
  CHECK(c.exec("BEGIN"));
  CHECK(c.scalar("SELECT pg_is_in_recovery() AS to_other") == "f");
  CHECK(c.exec("COMMIT"));
  CHECK(rules_cell(s, "rule 1", 3) == "cluster=other");

  MyConn primary(my_port());
  MyConn replica(my_replica_port());
  REQUIRE(primary.ok);
  REQUIRE(replica.ok);
  const std::string primary_id = primary.scalar("SELECT @@server_id"),
                    replica_id = replica.scalar("SELECT @@server_id");
  MyConn m(s.my_port());
  REQUIRE(m.ok);
  CHECK(m.scalar("SELECT @@server_id") == primary_id);
  CHECK(m.scalar("SELECT @@server_id AS to_other") == replica_id);
  CHECK(m.scalar("SELECT @@server_id") == primary_id);
  CHECK(m.scalar("BEGIN") == "");
  CHECK(m.scalar("SELECT @@server_id AS to_other") == primary_id);
  CHECK(m.scalar("COMMIT") == "");
  CHECK(m.scalar("SELECT @@server_id AS to_other") == replica_id);
}
