// Read/write splitting against the sandbox primary + replica of both engines: where statements
// land (asked of the server that runs them), read-your-writes with replication paused (and the
// same loop showing stale reads under consistency = "eventual"), and a replica stopped under load.
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>

#include <atomic>
#include <chrono>
#include <array>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace sluice::itest;

namespace {

int pg_replica_port() { return std::stoi(env_or("SLUICE_PG_REPLICA_PORT", "15433")); }
int my_replica_port() { return std::stoi(env_or("SLUICE_MY_REPLICA_PORT", "13307")); }

std::string clusters(const std::string& consistency, const std::string& extra = "") {
  return "[clusters.pgr]\nprotocol = \"postgres\"\nprimary = \"127.0.0.1:" + std::to_string(pg_port()) +
         "\"\nreplicas = [\"127.0.0.1:" + std::to_string(pg_replica_port()) +
         "\"]\nhealth_check_period = \"100ms\"\nconsistency = \"" + consistency + "\"\n" + extra +
         "\n[clusters.myr]\nprotocol = \"mysql\"\nprimary = \"127.0.0.1:" + std::to_string(my_port()) +
         "\"\nreplicas = [\"127.0.0.1:" + std::to_string(my_replica_port()) +
         "\"]\nhealth_check_period = \"100ms\"\nconsistency = \"" + consistency + "\"\n" + extra +
         "\n[[pools]]\ndatabase = \"app\"\ncluster = \"pgr\"\npool_size = 4\n"
         "\n[[pools]]\ndatabase = \"app\"\ncluster = \"myr\"\npool_size = 4\n";
}

std::string pg_superuser(int port) {
  return "host=127.0.0.1 port=" + std::to_string(port) + " user=postgres dbname=app sslmode=disable";
}

}  // namespace

TEST_CASE("PostgreSQL: reads on the replica, writes and transactions on the primary, hints") {
  SluiceProcess s(clusters("read_your_writes", "write_functions = [\"version\"]"));
  Conn c(s.conninfo());
  REQUIRE_MESSAGE(c.ok(), c.error());
  // The first health check discovers the replica.
  CHECK(eventually([&] { return c.scalar("SELECT pg_is_in_recovery()") == "t"; }));
  for (int i = 0; i < 5; ++i) CHECK(c.scalar("SELECT pg_is_in_recovery()") == "t");
  // Extended protocol: classified at Parse.
  PGresult* r = PQexecParams(c.c, "SELECT pg_is_in_recovery(), $1::int", 1, nullptr, std::array<const char*, 1>{"7"}.data(),
                             nullptr, nullptr, 0);
  CHECK(std::string(PQgetvalue(r, 0, 0)) == "t");
  PQclear(r);
  // Named prepared statements: classified once, when first bound.
  PQclear(PQprepare(c.c, "where_am_i", "SELECT pg_is_in_recovery()", 0, nullptr));
  for (int i = 0; i < 3; ++i) {
    r = PQexecPrepared(c.c, "where_am_i", 0, nullptr, nullptr, nullptr, 0);
    CHECK(std::string(PQgetvalue(r, 0, 0)) == "t");
    PQclear(r);
  }
  // Writes, locking reads and whole transactions go to the primary.
  CHECK(c.exec("CREATE TABLE IF NOT EXISTS route_t (id int primary key, v int)"));
  CHECK(c.exec("CREATE SEQUENCE IF NOT EXISTS route_seq"));
  PQclear(PQprepare(c.c, "next_id", "SELECT nextval('route_seq')", 0, nullptr));
  r = PQexecPrepared(c.c, "next_id", 0, nullptr, nullptr, nullptr, 0);
  CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);  // nextval(): on the primary, not a read-only replica
  PQclear(r);
  CHECK(c.scalar("SELECT pg_is_in_recovery() FROM (SELECT 1) s FOR UPDATE") == "f");
  CHECK(c.exec("BEGIN"));
  CHECK(c.scalar("SELECT pg_is_in_recovery()") == "f");
  CHECK(c.exec("INSERT INTO route_t VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET v = route_t.v + 1"));
  CHECK(c.scalar("SELECT pg_is_in_recovery()") == "f");
  CHECK(c.exec("COMMIT"));
  // A read-only transaction stays on one replica for its whole life (once caught up).
  CHECK(eventually([&] { return c.scalar("SELECT pg_is_in_recovery()") == "t"; }));
  CHECK(c.exec("BEGIN READ ONLY"));
  for (int i = 0; i < 3; ++i) CHECK(c.scalar("SELECT pg_is_in_recovery()") == "t");
  CHECK(c.scalar("SELECT count(*) FROM route_t") == "1");
  CHECK(c.exec("COMMIT"));
  // Hints and the configured write_functions.
  CHECK(c.scalar("/* sluice:primary */ SELECT pg_is_in_recovery()") == "f");
  CHECK(c.scalar("SELECT pg_is_in_recovery() FROM (SELECT version()) v") == "f");
  // The statement before counted as a write (version() is among write_functions here): under
  // read-your-writes the hinted read goes to the replica once it has replayed the primary's
  // position of that moment, which under load can take a moment.
  CHECK(eventually([&] {
    return c.scalar("/* sluice:replica */ SELECT pg_is_in_recovery() FROM (SELECT version()) v") == "t";
  }));
  CHECK(c.exec("DROP TABLE route_t"));
  CHECK(c.exec("DROP SEQUENCE route_seq"));
}

TEST_CASE("PostgreSQL read-your-writes with replay paused; eventual consistency shows stale reads") {
  Conn(direct_conninfo()).exec("DROP TABLE IF EXISTS ryw_t");
  Conn setup("host=127.0.0.1 port=" + std::to_string(pg_port()) + " user=app password=app dbname=app sslmode=disable");
  REQUIRE(setup.exec("CREATE TABLE IF NOT EXISTS ryw_t (id int primary key, v int)"));
  REQUIRE(setup.exec("INSERT INTO ryw_t VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET v = 0"));
  Conn replica(pg_superuser(pg_replica_port()));
  REQUIRE_MESSAGE(replica.ok(), replica.error());
  CHECK(eventually([&] { return replica.scalar("SELECT v FROM ryw_t WHERE id = 1") == "0"; }));
  for (const char* variant : {"read_your_writes", "eventual", "read_your_writes+cache"}) {
    std::string v(variant);
    bool cache = v.find("+cache") != std::string::npos;
    const char* consistency = v.rfind("eventual", 0) == 0 ? "eventual" : "read_your_writes";
    SluiceProcess s(clusters(consistency) + (cache ? "\n[cache]\nmode = \"all\"\n" : ""));
    Conn c(s.conninfo());
    REQUIRE(c.ok());
    CHECK(eventually([&] { return c.scalar("SELECT pg_is_in_recovery()") == "t"; }));
    REQUIRE(replica.exec("SELECT pg_wal_replay_pause()"));
    int stale = 0, on_replica = 0;
    for (int i = 1; i <= 200; ++i) {
      REQUIRE_MESSAGE(c.exec("UPDATE ryw_t SET v = " + std::to_string(i) + " WHERE id = 1"), i, " ", c.error());
      if (c.scalar("SELECT v FROM ryw_t WHERE id = 1") != std::to_string(i)) ++stale;
      if (i % 50 == 0 && c.scalar("SELECT pg_is_in_recovery()") == "t") ++on_replica;
    }
    REQUIRE(replica.exec("SELECT pg_wal_replay_resume()"));
    MESSAGE(v, ": ", stale, " stale reads out of 200");
    if (cache) {
      CHECK(stale == 0);  // the result cache keeps read-your-writes
    } else if (std::string(consistency) == "read_your_writes") {
      CHECK(stale == 0);
      // Replaying again: once the replica has a client's write, that client's reads go back to
      // it (the sandbox runs synchronous_commit = off, so WAL reaches the replica within the WAL
      // writer's 200 ms; hence the pause).
      int fresh_on_replica = 0, stale_now = 0;
      for (int i = 1000; i < 1010; ++i) {
        REQUIRE(c.exec("UPDATE ryw_t SET v = " + std::to_string(i) + " WHERE id = 1"));
        std::this_thread::sleep_for(std::chrono::milliseconds(400));
        PGresult* r = PQexec(c.c, "SELECT v, pg_is_in_recovery() FROM ryw_t WHERE id = 1");
        if (std::string(PQgetvalue(r, 0, 0)) != std::to_string(i)) ++stale_now;
        else if (std::string(PQgetvalue(r, 0, 1)) == "t") ++fresh_on_replica;
        PQclear(r);
      }
      MESSAGE("replaying: ", fresh_on_replica, " of 10 reads after a write were served fresh by the replica");
      CHECK(stale_now == 0);
      CHECK(fresh_on_replica >= 8);
    } else {
      CHECK(stale > 0);       // the same loop can fail: reads really went to the paused replica
      CHECK(on_replica > 0);
    }
  }
  CHECK(setup.exec("DROP TABLE ryw_t"));
}

TEST_CASE("PostgreSQL: a replica stopped under read load; reads move to the primary and come back") {
  std::string script = env_or("SLUICE_SANDBOX_SCRIPT", "");
  REQUIRE_FALSE(script.empty());
  SluiceProcess s(clusters("read_your_writes"));
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0}, reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t)
    readers.emplace_back([&] {
      auto c = std::make_unique<Conn>(s.conninfo());
      while (!stop) {
        if (c->scalar("SELECT 1") != "1") {
          ++errors;
          c = std::make_unique<Conn>(s.conninfo());  // reconnect after a lost connection
        }
        ++reads;
      }
    });
  Conn probe(s.conninfo());
  CHECK(eventually([&] { return probe.scalar("SELECT pg_is_in_recovery()") == "t"; }));
  REQUIRE(std::system((script + " stop-pg-replica >/dev/null").c_str()) == 0);
  auto stopped = std::chrono::steady_clock::now();
  // Within a second, new reads are served by the primary.
  CHECK(eventually([&] { return probe.scalar("SELECT pg_is_in_recovery()") == "f"; }, 1000));
  int errors_at_detection = errors.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  CHECK(errors.load() == errors_at_detection);  // after the detection window: no client errors
  MESSAGE("errors while the replica went away: ", errors_at_detection, ", detected after ",
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - stopped).count() - 1000,
          " ms");
  REQUIRE(std::system((script + " start-pg-replica >/dev/null").c_str()) == 0);
  CHECK(eventually([&] { return probe.scalar("SELECT pg_is_in_recovery()") == "t"; }, 10000));
  stop = true;
  for (auto& t : readers) t.join();
  CHECK(reads.load() > 100);
}

TEST_CASE("MariaDB: reads on the replica, writes and transactions on the primary, hints") {
  SluiceProcess s(clusters("read_your_writes"));
  MyConn c(s.my_port(), "app", "app", "app", CLIENT_MULTI_STATEMENTS);
  REQUIRE(c.ok);
  MyConn primary(my_port(), "root", "", nullptr, CLIENT_MULTI_STATEMENTS),
      replica(my_replica_port(), "root", "", nullptr, CLIENT_MULTI_STATEMENTS);
  std::string primary_id = primary.scalar("SELECT @@server_id"), replica_id = replica.scalar("SELECT @@server_id");
  REQUIRE(primary_id != replica_id);
  CHECK(eventually([&] { return c.scalar("SELECT @@server_id") == replica_id; }));
  CHECK(c.scalar("CREATE TABLE IF NOT EXISTS route_t (id INT PRIMARY KEY, v INT)") == "");
  CHECK(c.scalar("SELECT @@server_id FROM DUAL FOR UPDATE") == primary_id);
  CHECK(c.scalar("START TRANSACTION") == "");
  CHECK(c.scalar("SELECT @@server_id") == primary_id);
  CHECK(c.scalar("INSERT INTO route_t VALUES (1, 1) ON DUPLICATE KEY UPDATE v = v + 1") == "");
  CHECK(c.scalar("COMMIT") == "");
  CHECK(eventually([&] { return c.scalar("SELECT @@server_id") == replica_id; }));
  CHECK(c.scalar("START TRANSACTION READ ONLY") == "");
  for (int i = 0; i < 3; ++i) CHECK(c.scalar("SELECT @@server_id") == replica_id);
  CHECK(c.scalar("COMMIT") == "");
  CHECK(c.scalar("/* sluice:primary */ SELECT @@server_id") == primary_id);
  // SET TRANSACTION READ ONLY: the next transaction runs on one replica (once the replica has
  // this client's earlier writes).
  CHECK(eventually([&] { return c.scalar("SELECT @@server_id") == replica_id; }));
  CHECK(c.scalar("SET TRANSACTION READ ONLY") == "");
  CHECK(c.scalar("START TRANSACTION") == "");
  for (int i = 0; i < 3; ++i) CHECK(c.scalar("SELECT @@server_id") == replica_id);
  CHECK(c.scalar("COMMIT") == "");
  // After a write (its GTID reported by the server), reads return to the replica once it has it.
  CHECK(c.scalar("INSERT INTO route_t VALUES (2, 1) ON DUPLICATE KEY UPDATE v = v + 1") == "");
  CHECK(eventually([&] { return c.scalar("SELECT @@server_id") == replica_id; }));
  // Prepared statements are classified at prepare.
  MYSQL_STMT* st = mysql_stmt_init(c.m);
  const char* q = "SELECT @@server_id";
  REQUIRE(mysql_stmt_prepare(st, q, std::strlen(q)) == 0);
  REQUIRE(mysql_stmt_execute(st) == 0);
  char buf[32];
  unsigned long len = 0;
  MYSQL_BIND b;
  std::memset(&b, 0, sizeof b);
  b.buffer_type = MYSQL_TYPE_STRING;
  b.buffer = buf;
  b.buffer_length = sizeof buf;
  b.length = &len;
  mysql_stmt_bind_result(st, &b);
  REQUIRE(mysql_stmt_fetch(st) == 0);
  CHECK(std::string(buf, len) == replica_id);
  mysql_stmt_close(st);
  CHECK(c.scalar("DROP TABLE route_t") == "");
}

TEST_CASE("MariaDB read-your-writes with the replica's SQL thread stopped; eventual shows stale reads") {
  MyConn replica(my_replica_port(), "root", "", nullptr, CLIENT_MULTI_STATEMENTS);
  MyConn setup(my_port(), "app", "app", "app", CLIENT_MULTI_STATEMENTS);
  REQUIRE(setup.scalar("CREATE TABLE IF NOT EXISTS ryw_t (id INT PRIMARY KEY, v INT)") == "");
  REQUIRE(setup.scalar("REPLACE INTO ryw_t VALUES (1, 0)") == "");
  CHECK(eventually([&] { return replica.scalar("SELECT v FROM app.ryw_t WHERE id = 1") == "0"; }));
  for (const char* variant : {"read_your_writes", "eventual", "read_your_writes+cache"}) {
    std::string v(variant);
    bool cache = v.find("+cache") != std::string::npos;
    const char* consistency = v.rfind("eventual", 0) == 0 ? "eventual" : "read_your_writes";
    SluiceProcess s(clusters(consistency) + (cache ? "\n[cache]\nmode = \"all\"\n" : ""));
    MyConn c(s.my_port(), "app", "app", "app", CLIENT_MULTI_STATEMENTS);
    REQUIRE(c.ok);
    std::string replica_id = replica.scalar("SELECT @@server_id");
    CHECK(eventually([&] { return c.scalar("SELECT @@server_id") == replica_id; }));
    REQUIRE(replica.scalar("STOP SLAVE SQL_THREAD") == "");
    int stale = 0;
    for (int i = 1; i <= 200; ++i) {
      REQUIRE(c.scalar("UPDATE ryw_t SET v = " + std::to_string(i) + " WHERE id = 1") == "");
      if (c.scalar("SELECT v FROM ryw_t WHERE id = 1") != std::to_string(i)) ++stale;
    }
    REQUIRE(replica.scalar("START SLAVE SQL_THREAD") == "");
    MESSAGE(v, ": ", stale, " stale reads out of 200");
    if (std::string(consistency) == "read_your_writes") CHECK(stale == 0);
    else CHECK(stale > 0);
  }
  CHECK(setup.scalar("DROP TABLE ryw_t") == "");
}

TEST_CASE("PostgreSQL failover: writes follow a promoted replica without a restart") {
  std::string script = env_or("SLUICE_SANDBOX_SCRIPT", "");
  REQUIRE_FALSE(script.empty());
  SluiceProcess s(clusters("read_your_writes"));
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  const std::string port_q = "/* sluice:primary */ SELECT inet_server_port()";
  CHECK(c.scalar(port_q) == std::to_string(pg_port()));
  CHECK(c.exec("CREATE TABLE IF NOT EXISTS failover_t (id serial primary key)"));
  REQUIRE(std::system((script + " promote-pg-replica >/dev/null").c_str()) == 0);
  auto promoted = std::chrono::steady_clock::now();
  // The next statements may fail while the old primary is gone; then writes go to the new one.
  bool moved = eventually(
      [&] {
        Conn fresh(s.conninfo());
        return fresh.ok() && fresh.scalar(port_q) == std::to_string(pg_replica_port()) &&
               fresh.exec("INSERT INTO failover_t DEFAULT VALUES");
      },
      10000);
  CHECK(moved);
  MESSAGE("writes followed the promoted replica after ",
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - promoted).count(), " ms");
  REQUIRE(std::system((script + " rebuild-pg-replica >/dev/null").c_str()) == 0);
  Conn back(s.conninfo());
  CHECK(eventually([&] { return back.scalar(port_q) == std::to_string(pg_port()); }, 10000));
  Conn(direct_conninfo()).exec("DROP TABLE IF EXISTS failover_t");
}

TEST_CASE("MariaDB: a replica stopped under read load; reads move to the primary and come back") {
  std::string script = env_or("SLUICE_SANDBOX_SCRIPT", "");
  REQUIRE_FALSE(script.empty());
  SluiceProcess s(clusters("read_your_writes"));
  MyConn replica_root(my_replica_port(), "root", "", nullptr, CLIENT_MULTI_STATEMENTS);
  std::string replica_id = replica_root.scalar("SELECT @@server_id");
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0}, reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t)
    readers.emplace_back([&] {
      auto c = std::make_unique<MyConn>(s.my_port(), "app", "app", "app", CLIENT_MULTI_STATEMENTS);
      while (!stop) {
        if (c->scalar("SELECT 1") != "1") {
          ++errors;
          c = std::make_unique<MyConn>(s.my_port(), "app", "app", "app", CLIENT_MULTI_STATEMENTS);
        }
        ++reads;
      }
    });
  MyConn probe(s.my_port(), "app", "app", "app", CLIENT_MULTI_STATEMENTS);
  CHECK(eventually([&] { return probe.scalar("SELECT @@server_id") == replica_id; }));
  REQUIRE(std::system((script + " stop-mysql-replica >/dev/null").c_str()) == 0);
  CHECK(eventually([&] { return probe.scalar("SELECT @@server_id") != replica_id; }, 2000));
  int errors_at_detection = errors.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  CHECK(errors.load() == errors_at_detection);
  MESSAGE("errors while the replica went away: ", errors_at_detection);
  REQUIRE(std::system((script + " start-mysql-replica >/dev/null").c_str()) == 0);
  CHECK(eventually([&] { return probe.scalar("SELECT @@server_id") == replica_id; }, 15000));
  stop = true;
  for (auto& t : readers) t.join();
  CHECK(reads.load() > 100);
}

// A client that wrote through one instance (or directly) and reconnects to another: with
// read_your_writes_from_login, its first statement goes to the primary and takes the primary's
// position as its token, so it reads its write back though the replica has not replayed it;
// without, it reads the paused replica's older row.
TEST_CASE("read_your_writes_from_login: a write through one instance is read back by a new client of another") {
  Conn setup("host=127.0.0.1 port=" + std::to_string(pg_port()) + " user=app password=app dbname=app sslmode=disable");
  REQUIRE(setup.exec("CREATE TABLE IF NOT EXISTS ryw_login (id int primary key, v int)"));
  REQUIRE(setup.exec("INSERT INTO ryw_login VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET v = 0"));
  MyConn my_setup(my_port(), "app", "app", "app", CLIENT_MULTI_STATEMENTS);
  REQUIRE(my_setup.scalar("CREATE TABLE IF NOT EXISTS ryw_login (id INT PRIMARY KEY, v INT)") == "");
  REQUIRE(my_setup.scalar("REPLACE INTO ryw_login VALUES (1, 0)") == "");
  Conn replica(pg_superuser(pg_replica_port()));
  MyConn my_replica(my_replica_port(), "root", "", nullptr, CLIENT_MULTI_STATEMENTS);
  REQUIRE(replica.ok());
  REQUIRE(my_replica.ok);
  std::string replica_id = my_replica.scalar("SELECT @@server_id");
  for (bool from_login : {false, true}) {
    CAPTURE(from_login);
    std::string extra = from_login ? "read_your_writes_from_login = true\n" : "";
    SluiceProcess a(clusters("read_your_writes", extra));
    SluiceProcess b(clusters("read_your_writes", extra));
    {
      Conn probe(b.conninfo());
      MyConn my_probe(b.my_port(), "app", "app", "app", CLIENT_MULTI_STATEMENTS);
      REQUIRE(eventually([&] { return probe.scalar("SELECT pg_is_in_recovery()") == "t"; }));
      REQUIRE(eventually([&] { return my_probe.scalar("SELECT @@server_id") == replica_id; }));
    }
    REQUIRE(replica.exec("SELECT pg_wal_replay_pause()"));
    REQUIRE(my_replica.scalar("STOP SLAVE SQL_THREAD") == "");
    int stale = 0, my_stale = 0;
    for (int i = 1; i <= 10; ++i) {
      std::string v = std::to_string(i);
      {
        Conn w(a.conninfo());
        REQUIRE(w.exec("UPDATE ryw_login SET v = " + v + " WHERE id = 1"));
        MyConn mw(a.my_port(), "app", "app", "app", CLIENT_MULTI_STATEMENTS);
        REQUIRE(mw.scalar("UPDATE ryw_login SET v = " + v + " WHERE id = 1") == "");
      }
      Conn r(b.conninfo());
      if (r.scalar("SELECT v FROM ryw_login WHERE id = 1") != v) ++stale;
      MyConn mr(b.my_port(), "app", "app", "app", CLIENT_MULTI_STATEMENTS);
      if (mr.scalar("SELECT v FROM ryw_login WHERE id = 1") != v) ++my_stale;
    }
    REQUIRE(replica.exec("SELECT pg_wal_replay_resume()"));
    REQUIRE(my_replica.scalar("START SLAVE SQL_THREAD") == "");
    MESSAGE("from_login ", from_login, ": PostgreSQL ", stale, ", MariaDB ", my_stale, " stale reads of 10");
    if (from_login) {
      CHECK(stale == 0);
      CHECK(my_stale == 0);
      // Reads still go to the replica once it has the login's position.
      Conn r(b.conninfo());
      CHECK(r.scalar("SELECT 1") == "1");  // the first statement: on the primary
      CHECK(eventually([&] { return r.scalar("SELECT pg_is_in_recovery()") == "t"; }));
      MyConn mr(b.my_port(), "app", "app", "app", CLIENT_MULTI_STATEMENTS);
      CHECK(mr.scalar("SELECT 1") == "1");
      CHECK(eventually([&] { return mr.scalar("SELECT @@server_id") == replica_id; }));
    } else {
      CHECK(stale > 0);  // the same loop can fail: without it, the new client reads the paused replica
      CHECK(my_stale > 0);
    }
  }
  CHECK(setup.exec("DROP TABLE ryw_login"));
  CHECK(my_setup.scalar("DROP TABLE ryw_login") == "");
}
