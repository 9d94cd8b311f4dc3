// The result cache with the default routing (read/write split, read-your-writes) on both engines:
// replicas' answers are cached with the replication position the replica had, so repeated reads
// are hits; a client that just wrote never gets an entry older than its write (a read through a
// view, which its write to the base table does not invalidate, shows it); a replica that has not
// replayed a write through Sluice does not refill the cache with what the write changed. SHOW
// CACHE and /metrics count hits by source. Replication runs, then is paused on the replica.
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <sstream>
#include <string>

#include "harness.hpp"

using namespace sluice::itest;

namespace {

int pg_replica_port() { return std::stoi(env_or("SLUICE_PG_REPLICA_PORT", "15433")); }
int my_replica_port() { return std::stoi(env_or("SLUICE_MY_REPLICA_PORT", "13307")); }
int http_port(const SluiceProcess& s) { return s.port() + 700; }

// Both engines' primary + replica with the default routing, a cache for everything, /metrics.
std::string config(int http_port = 0) {
  return "[[users]]\nname = \"admin\"\npassword = \"adminpw\"\n"
         "\n[clusters.pgr]\nprotocol = \"postgres\"\nprimary = \"127.0.0.1:" +
         std::to_string(pg_port()) + "\"\nreplicas = [\"127.0.0.1:" + std::to_string(pg_replica_port()) +
         "\"]\nhealth_check_period = \"100ms\"\n"
         "\n[clusters.myr]\nprotocol = \"mysql\"\nprimary = \"127.0.0.1:" +
         std::to_string(my_port()) + "\"\nreplicas = [\"127.0.0.1:" + std::to_string(my_replica_port()) +
         "\"]\nhealth_check_period = \"100ms\"\n"
         "\n[[pools]]\ndatabase = \"app\"\ncluster = \"pgr\"\npool_size = 4\n"
         "\n[[pools]]\ndatabase = \"app\"\ncluster = \"myr\"\npool_size = 4\n"
         "\n[cache]\nenabled = true\nmode = \"all\"\ndefault_ttl = \"60s\"\n" +
         (http_port ? "\n[http]\nlisten = \"127.0.0.1:" + std::to_string(http_port) + "\"\n" : std::string());
}
const char* kGeneral = "admin_users = [\"admin\"]\n";

// One SluiceProcess per case, /metrics on its port + 700 (the port is known once it exists).
struct Sluice {
  SluiceProcess s{config(), kGeneral};
  Sluice() {
    s.reload(config(http_port(s)), kGeneral);
    REQUIRE(eventually([&] { return http_get("/healthz").first == 200; }));
  }
  std::pair<int, std::string> http_get(const std::string& path) const { return sluice::itest::http_get(http_port(s), path); }
  double metric(const std::string& series) const { return sluice::itest::metric(http_get("/metrics").second, series); }
};

// The cache's totals from SHOW CACHE.
struct Counters {
  long hits = 0, replica_hits = 0, behind_client = 0, refused_fills = 0;
};
Counters counters(const SluiceProcess& s) {
  Conn adm("host=127.0.0.1 port=" + std::to_string(s.port()) + " user=admin password=adminpw dbname=sluice sslmode=disable");
  REQUIRE(adm.ok());
  PGresult* r = PQexec(adm.c, "SHOW CACHE LIKE '*'");
  REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
  REQUIRE(PQntuples(r) == 1);
  auto col = [&](const char* name) { return std::stol(PQgetvalue(r, 0, PQfnumber(r, name))); };
  Counters c{col("hits"), col("replica_hits"), col("behind_client"), col("refused_fills")};
  PQclear(r);
  return c;
}

std::string pg_superuser(int port) {
  return "host=127.0.0.1 port=" + std::to_string(port) + " user=postgres dbname=app sslmode=disable";
}

// Replay (PostgreSQL) or the SQL thread (MariaDB) paused on the replica for a scope.
struct ReplayPaused {
  std::function<void()> resume;
  explicit ReplayPaused(bool pg) {
    if (pg) {
      auto c = std::make_shared<Conn>(pg_superuser(pg_replica_port()));
      REQUIRE(c->scalar("SELECT pg_wal_replay_pause()") == "");
      resume = [c] { c->scalar("SELECT pg_wal_replay_resume()"); };
    } else {
      auto c = std::make_shared<MyConn>(my_replica_port(), "root", "", nullptr);
      REQUIRE(c->scalar("STOP SLAVE SQL_THREAD") == "");
      resume = [c] { c->scalar("START SLAVE SQL_THREAD"); };
    }
  }
  ~ReplayPaused() { resume(); }
};

// The same scenario on either engine, through `q(sql)` for a reader and a writer client.
template <typename Client>
void scenario(Sluice& sl, bool pg, Client& reader, Client& writer, const std::function<void(const std::string&)>& direct) {
  direct("DROP VIEW IF EXISTS rc_v");
  direct("DROP TABLE IF EXISTS rc_t");
  direct("DROP TABLE IF EXISTS rc_u");
  direct("CREATE TABLE rc_t (id int primary key, v int)");
  direct("CREATE TABLE rc_u (id int primary key, v int)");
  direct("INSERT INTO rc_t VALUES (1, 0)");
  direct("INSERT INTO rc_u VALUES (1, 0)");
  direct("CREATE VIEW rc_v AS SELECT id, v FROM rc_u");
  const std::string read_t = "SELECT v FROM rc_t WHERE id = 1", read_v = "SELECT v FROM rc_v WHERE id = 1";
  // The replica has the tables and takes reads.
  REQUIRE(eventually([&] { return reader.scalar(read_v) == "0"; }, 10000));

  // 1. Replication running: repeated reads are hits, on answers a replica gave.
  auto before = counters(sl.s);
  for (int i = 0; i < 50; ++i) CHECK(reader.scalar(read_t) == "0");
  auto after = counters(sl.s);
  MESSAGE("50 reads: ", after.hits - before.hits, " hits, ", after.replica_hits - before.replica_hits, " of a replica's answer");
  CHECK(after.replica_hits - before.replica_hits >= 45);
  CHECK(sl.metric("sluice_cache_hits_total{source=\"replica\"}") >= 45);

  // 2. Write-then-read pairs, replication running: the writer always reads its write.
  int stale = 0;
  for (int i = 1; i <= 50; ++i) {
    REQUIRE(writer.scalar("UPDATE rc_t SET v = " + std::to_string(i) + " WHERE id = 1").empty());
    if (writer.scalar(read_t) != std::to_string(i)) ++stale;
    reader.scalar(read_t);
  }
  CHECK(stale == 0);

  // 3. The view's answer is cached from the replica; then, with replay paused, the writer
  // changes the base table (the view's entry is not invalidated: views are not expanded).
  REQUIRE(eventually([&] { return reader.scalar(read_v) == "0" && reader.scalar(read_v) == "0"; }));
  before = counters(sl.s);
  {
    ReplayPaused paused(pg);
    for (int i = 1; i <= 20; ++i) {
      REQUIRE(writer.scalar("UPDATE rc_u SET v = " + std::to_string(100 + i) + " WHERE id = 1").empty());
      // The cached view answer predates this write: not for this client.
      CHECK(writer.scalar(read_v) == std::to_string(100 + i));
      // A table write invalidates; the reader (no write of its own: its reads may lag) asks the
      // paused replica, whose answer predates the write and is not kept for anyone.
      REQUIRE(writer.scalar("UPDATE rc_t SET v = " + std::to_string(100 + i) + " WHERE id = 1").empty());
      reader.scalar(read_t);
      CHECK(writer.scalar(read_t) == std::to_string(100 + i));
    }
  }
  after = counters(sl.s);
  MESSAGE("replay paused: ", after.behind_client - before.behind_client, " entries passed over for the writer, ",
          after.refused_fills - before.refused_fills, " replica fills refused");
  CHECK(after.behind_client - before.behind_client >= 20);
  CHECK(after.refused_fills - before.refused_fills >= 1);
  CHECK(sl.metric("sluice_cache_behind_client_total") >= 20);
  // Replaying again: once the replica has the writes, its answers are cached once more.
  REQUIRE(writer.scalar("UPDATE rc_t SET v = 121 WHERE id = 1").empty());
  CHECK(eventually([&] {
    auto c0 = counters(sl.s);
    bool fresh = reader.scalar(read_t) == "121" && reader.scalar(read_t) == "121";
    return fresh && counters(sl.s).replica_hits > c0.replica_hits;
  }, 10000));
  direct("DROP VIEW rc_v");
  direct("DROP TABLE rc_t");
  direct("DROP TABLE rc_u");
}

}  // namespace

TEST_CASE("PostgreSQL: replicas' answers are cached with their position; writers never get an older one") {
  Sluice sl;
  Conn reader(sl.s.conninfo()), writer(sl.s.conninfo());
  REQUIRE_MESSAGE(reader.ok(), reader.error());
  REQUIRE_MESSAGE(writer.ok(), writer.error());
  Conn owner("host=127.0.0.1 port=" + std::to_string(pg_port()) + " user=app password=app dbname=app sslmode=disable");
  REQUIRE(owner.ok());
  scenario(sl, true, reader, writer, [&](const std::string& sql) { REQUIRE_MESSAGE(owner.exec(sql), sql); });
}

TEST_CASE("MariaDB: replicas' answers are cached with their GTID position; writers never get an older one") {
  Sluice sl;
  MyConn reader(sl.s.my_port()), writer(sl.s.my_port());
  REQUIRE_MESSAGE(reader.ok, mysql_error(reader.m));
  REQUIRE_MESSAGE(writer.ok, mysql_error(writer.m));
  MyConn root(my_port(), "root", "", "app");
  REQUIRE(root.ok);
  scenario(sl, false, reader, writer, [&](const std::string& sql) { REQUIRE_MESSAGE(root.scalar(sql).empty(), sql); });
}
