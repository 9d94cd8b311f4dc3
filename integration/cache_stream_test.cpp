// [cache] invalidation = "stream" (src/state/change_stream): the cache follows the primary's
// logical decoding stream, so writes that never pass through Sluice (here: a direct connection
// to the primary) invalidate too, including rows changed by a trigger or an ON DELETE CASCADE
// and a TRUNCATE; a replica answer older than such a write is not kept; a lost stream empties
// the cache and nothing is kept until it is back. Each case first shows the entry was a hit.
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "harness.hpp"

using namespace sluice::itest;

namespace {

int pg_replica_port() { return std::stoi(env_or("SLUICE_PG_REPLICA_PORT", "15433")); }

// `plugin`: "" for the default (test_decoding).
std::string config(const std::string& invalidation, const std::string& plugin = "",
                   const std::string& publication = "sluice") {
  return "[[users]]\nname = \"admin\"\npassword = \"adminpw\"\n"
         "\n[[users]]\nname = \"streamer\"\npassword = \"streamer\"\n"
         "\n[clusters.pgs]\nprotocol = \"postgres\"\nprimary = \"127.0.0.1:" +
         std::to_string(pg_port()) + "\"\nreplicas = [\"127.0.0.1:" + std::to_string(pg_replica_port()) +
         "\"]\nhealth_check_period = \"100ms\"\nstream_user = \"streamer\"\n"
         "\n[[pools]]\ndatabase = \"app\"\ncluster = \"pgs\"\npool_size = 4\n"
         "\n[cache]\nmode = \"all\"\ndefault_ttl = \"600s\"\ninvalidation = \"" +
         invalidation + "\"\nstream_publication = \"" + publication + "\"\n" +
         (plugin.empty() ? std::string() : "stream_plugin = \"" + plugin + "\"\n");
}
const char* kGeneral = "admin_users = [\"admin\"]\n";

std::string app_direct() {
  return "host=" + pg_host() + " port=" + std::to_string(pg_port()) +
         " user=app password=app dbname=app sslmode=disable";
}
std::string replica_direct() {
  return "host=127.0.0.1 port=" + std::to_string(pg_replica_port()) + " user=postgres dbname=app sslmode=disable";
}

std::string admin_info(const SluiceProcess& s) { return s.conninfo("admin", "adminpw", "sluice"); }

long cache_total(const SluiceProcess& s, const std::string& column) {
  Conn adm(admin_info(s));
  PGresult* r = PQexec(adm.c, "SHOW CACHE");
  long v = -1;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
    int col = PQfnumber(r, column.c_str());
    if (col >= 0) v = std::stol(PQgetvalue(r, 0, col));
  }
  PQclear(r);
  return v;
}

std::string stream_column(const SluiceProcess& s, const std::string& column, const std::string& cluster = "pgs") {
  Conn adm(admin_info(s));
  PGresult* r = PQexec(adm.c, ("SHOW CACHE_STREAMS LIKE '" + cluster + "'").c_str());
  std::string v = "(none)";
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
    int col = PQfnumber(r, column.c_str());
    if (col >= 0) v = PQgetvalue(r, 0, col);
  }
  PQclear(r);
  return v;
}

bool stream_up(const SluiceProcess& s) {
  return eventually([&] { return stream_column(s, "up") == "t"; }, 10000);
}

// Reads `sql` through Sluice until it is a cache hit (the replica may need a moment to have
// the rows); true once the last read was answered from memory.
bool cached(const SluiceProcess& s, Conn& c, const std::string& sql, const std::string& want) {
  std::string last;
  long before = 0, after = 0;
  bool ok = eventually([&] {
    before = cache_total(s, "hits");
    last = c.scalar(sql);
    if (last != want) return false;
    after = cache_total(s, "hits");
    return after > before;
  });
  if (!ok)
    MESSAGE("not a hit: ", sql, " read ", last, ", hits ", before, " -> ", after, ", entries ",
            cache_total(s, "entries"), ", refused fills ", cache_total(s, "refused_fills"));
  return ok;
}

}  // namespace

TEST_CASE(
    "stream invalidation: a write made directly on the primary invalidates; with local invalidation it does not") {
  Conn direct(app_direct());
  REQUIRE(direct.ok());
  REQUIRE(direct.exec("DROP TABLE IF EXISTS st_items, st_items2"));
  REQUIRE(direct.exec("CREATE TABLE st_items (id int primary key, v int)"));
  REQUIRE(direct.exec("INSERT INTO st_items VALUES (1, 10)"));
  const std::string q = "SELECT v FROM st_items WHERE id = 1";
  {
    // The old behaviour, for contrast: the direct write goes unseen until the TTL.
    SluiceProcess s(config("local"), kGeneral);
    Conn c(s.conninfo());
    REQUIRE(cached(s, c, q, "10"));
    REQUIRE(direct.exec("UPDATE st_items SET v = 11 WHERE id = 1"));
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    CHECK(c.scalar(q) == "10");
    CHECK(stream_column(s, "up") == "(none)");
  }
  SluiceProcess s(config("stream"), kGeneral);
  REQUIRE(stream_up(s));
  Conn c(s.conninfo());
  REQUIRE(cached(s, c, q, "11"));
  REQUIRE(direct.exec("UPDATE st_items SET v = 12 WHERE id = 1"));
  // Within the stream's lag (the sandbox commits asynchronously: up to the WAL writer's 200 ms).
  CHECK(eventually([&] { return c.scalar(q) == "12"; }, 3000));
  CHECK(std::stol(stream_column(s, "commits")) >= 1);
  CHECK(std::stol(stream_column(s, "tables_invalidated")) >= 1);
  // From the commit's time on the server (test_decoding's include-timestamp) to its arrival.
  double lag_ms = std::stod(stream_column(s, "last_lag_ms"));
  CHECK(lag_ms >= 0);
  CHECK(lag_ms < 5000);
  {  // SHOW CACHE shows it too (the largest over the streams)
    Conn adm(admin_info(s));
    PGresult* r = PQexec(adm.c, "SHOW CACHE LIKE '*'");
    REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
    int col = PQfnumber(r, "stream_lag_ms");
    REQUIRE(col >= 0);
    CHECK_FALSE(PQgetisnull(r, 0, col));
    CHECK(std::stod(PQgetvalue(r, 0, col)) < 5000);
    PQclear(r);
  }
  // TRUNCATE on the server invalidates too.
  REQUIRE(cached(s, c, "SELECT count(*) FROM st_items", "1"));
  // Several tables in one TRUNCATE (as pgbench -i does): every one of them.
  REQUIRE(direct.exec("CREATE TABLE st_items2 (id int)"));
  REQUIRE(direct.exec("INSERT INTO st_items2 VALUES (1)"));
  REQUIRE(cached(s, c, "SELECT count(*) FROM st_items2", "1"));
  REQUIRE(direct.exec("TRUNCATE st_items, st_items2"));
  CHECK(eventually([&] { return c.scalar("SELECT count(*) FROM st_items") == "0"; }, 3000));
  CHECK(eventually([&] { return c.scalar("SELECT count(*) FROM st_items2") == "0"; }, 3000));
  CHECK(stream_column(s, "losses") == "0");
  REQUIRE(direct.exec("DROP TABLE st_items, st_items2"));
}

TEST_CASE("stream invalidation: tables changed by a trigger and by ON DELETE CASCADE are invalidated") {
  Conn direct(app_direct());
  REQUIRE(direct.exec("DROP TABLE IF EXISTS st_child, st_parent, st_log, st_src CASCADE"));
  REQUIRE(direct.exec("CREATE TABLE st_src (id int primary key)"));
  REQUIRE(direct.exec("CREATE TABLE st_log (n int)"));
  REQUIRE(direct.exec("INSERT INTO st_log VALUES (0)"));
  REQUIRE(
      direct.exec("CREATE OR REPLACE FUNCTION st_count() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$ BEGIN UPDATE st_log SET n = n + 1; RETURN NEW; END $$"));
  REQUIRE(direct.exec("CREATE TRIGGER st_count AFTER INSERT ON st_src FOR EACH ROW EXECUTE FUNCTION st_count()"));
  REQUIRE(direct.exec("CREATE TABLE st_parent (id int primary key)"));
  REQUIRE(direct.exec("CREATE TABLE st_child (id int, parent int REFERENCES st_parent ON DELETE CASCADE)"));
  REQUIRE(direct.exec("INSERT INTO st_parent VALUES (1)"));
  REQUIRE(direct.exec("INSERT INTO st_child VALUES (1, 1), (2, 1)"));
  SluiceProcess s(config("stream"), kGeneral);
  REQUIRE(stream_up(s));
  Conn c(s.conninfo());
  REQUIRE(cached(s, c, "SELECT n FROM st_log", "0"));
  REQUIRE(cached(s, c, "SELECT count(*) FROM st_child", "2"));
  // Neither statement names the table whose cached answer must go.
  REQUIRE(direct.exec("INSERT INTO st_src VALUES (1)"));
  REQUIRE(direct.exec("DELETE FROM st_parent WHERE id = 1"));
  CHECK(eventually([&] { return c.scalar("SELECT n FROM st_log") == "1"; }, 3000));
  CHECK(eventually([&] { return c.scalar("SELECT count(*) FROM st_child") == "0"; }, 3000));
  REQUIRE(direct.exec("DROP TABLE st_child, st_parent, st_log, st_src"));
  REQUIRE(direct.exec("DROP FUNCTION st_count()"));
}

TEST_CASE("stream invalidation: a replica answer older than a direct write is not kept") {
  Conn direct(app_direct());
  Conn replica(replica_direct());
  REQUIRE(replica.ok());
  REQUIRE(direct.exec("DROP TABLE IF EXISTS st_race"));
  REQUIRE(direct.exec("CREATE TABLE st_race (id int primary key, v int)"));
  REQUIRE(direct.exec("INSERT INTO st_race VALUES (1, 1)"));
  SluiceProcess s(config("stream"), kGeneral);
  REQUIRE(stream_up(s));
  Conn c(s.conninfo());
  const std::string q = "SELECT v FROM st_race WHERE id = 1";
  REQUIRE(cached(s, c, q, "1"));
  REQUIRE(replica.exec("SELECT pg_wal_replay_pause()"));
  long commits = std::stol(stream_column(s, "commits"));
  REQUIRE(direct.exec("UPDATE st_race SET v = 2 WHERE id = 1"));
  REQUIRE(eventually([&] { return std::stol(stream_column(s, "commits")) > commits; }, 3000));
  // The entry went; the paused replica answers with the old row (a replica read, within
  // max_replica_lag), and that answer must not go back into the cache.
  long refused = cache_total(s, "refused_fills");
  std::string seen = c.scalar(q);
  CHECK((seen == "1" || seen == "2"));
  if (seen == "1") CHECK(cache_total(s, "refused_fills") > refused);
  REQUIRE(replica.exec("SELECT pg_wal_replay_resume()"));
  CHECK(eventually([&] { return c.scalar(q) == "2"; }, 5000));
  REQUIRE(direct.exec("DROP TABLE st_race"));
}

TEST_CASE("stream invalidation: a lost stream empties the cache, keeps nothing until it is back, and comes back") {
  Conn direct(app_direct());
  REQUIRE(direct.exec("DROP TABLE IF EXISTS st_loss"));
  REQUIRE(direct.exec("CREATE TABLE st_loss (id int primary key, v int)"));
  REQUIRE(direct.exec("INSERT INTO st_loss VALUES (1, 1)"));
  SluiceProcess s(config("stream"), kGeneral);
  REQUIRE(stream_up(s));
  Conn c(s.conninfo());
  const std::string q = "SELECT v FROM st_loss WHERE id = 1";
  REQUIRE(cached(s, c, q, "1"));
  CHECK(cache_total(s, "entries") >= 1);
  std::string slot = stream_column(s, "slot");
  Conn su(direct_conninfo());
  REQUIRE(su.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '" + slot + "' AND temporary") == "1");
  REQUIRE(su.scalar("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '" + slot +
                    "'") == "t");
  CHECK(s.wait_for_log("change stream of cluster pgs database \"app\" was lost", 5000));
  CHECK(cache_total(s, "entries") == 0);
  // Back within a couple of seconds, with a new temporary slot (the old one went with its
  // connection), and caching again.
  CHECK(stream_up(s));
  CHECK(stream_column(s, "losses") == "1");
  CHECK(stream_column(s, "slot") != slot);
  CHECK(su.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '" + slot + "'") == "0");
  CHECK(cached(s, c, q, "1"));
  REQUIRE(direct.exec("DROP TABLE st_loss"));
}

// A read through a view is tagged with the view's name: a write to its base table (or to the
// base of a view it reads) reaches it through the views' dependencies read from the catalog.
TEST_CASE("stream invalidation: reads through views and nested views are invalidated by writes to their tables") {
  Conn direct(app_direct());
  REQUIRE(direct.exec("DROP VIEW IF EXISTS st_v2, st_v1"));
  REQUIRE(direct.exec("DROP TABLE IF EXISTS st_base"));
  REQUIRE(direct.exec("CREATE TABLE st_base (id int primary key, v int)"));
  REQUIRE(direct.exec("INSERT INTO st_base VALUES (1, 1)"));
  REQUIRE(direct.exec("CREATE VIEW st_v1 AS SELECT id, v FROM st_base"));
  REQUIRE(direct.exec("CREATE VIEW st_v2 AS SELECT v * 10 AS w FROM st_v1 WHERE id = 1"));
  SluiceProcess s(config("stream"), kGeneral);
  REQUIRE(stream_up(s));
  Conn c(s.conninfo());
  REQUIRE(cached(s, c, "SELECT v FROM st_v1 WHERE id = 1", "1"));
  REQUIRE(cached(s, c, "SELECT w FROM st_v2", "10"));
  REQUIRE(direct.exec("UPDATE st_base SET v = 2 WHERE id = 1"));
  CHECK(eventually([&] { return c.scalar("SELECT v FROM st_v1 WHERE id = 1") == "2"; }, 3000));
  CHECK(eventually([&] { return c.scalar("SELECT w FROM st_v2") == "20"; }, 3000));
  REQUIRE(direct.exec("DROP VIEW st_v2, st_v1"));
  REQUIRE(direct.exec("DROP TABLE st_base"));
}

// A reload turns the stream on and off: followers start and stop with [cache] invalidation, and
// back on local invalidation the cluster's answers are kept again without a stream.
TEST_CASE("stream invalidation: a reload starts and stops the followers") {
  Conn direct(app_direct());
  REQUIRE(direct.exec("DROP TABLE IF EXISTS st_reload"));
  REQUIRE(direct.exec("CREATE TABLE st_reload (id int primary key, v int)"));
  REQUIRE(direct.exec("INSERT INTO st_reload VALUES (1, 1)"));
  const std::string q = "SELECT v FROM st_reload WHERE id = 1";
  SluiceProcess s(config("local"), kGeneral);
  Conn c(s.conninfo());
  CHECK(stream_column(s, "up") == "(none)");
  const std::string http = "\n[http]\nlisten = \"127.0.0.1:" + std::to_string(s.port() + 700) + "\"\n";
  s.reload(config("stream") + http, kGeneral);
  REQUIRE(stream_up(s));
  REQUIRE(cached(s, c, q, "1"));
  auto page = http_get(s.port() + 700, "/metrics").second;
  CHECK(metric(page, "sluice_cache_stream_up{cluster=\"pgs\",database=\"app\"}") == 1);
  CHECK(metric(page, "sluice_cache_stream_losses_total{cluster=\"pgs\",database=\"app\"}") == 0);
  CHECK(metric(page, "sluice_cache_stream_lag_bytes{cluster=\"pgs\",database=\"app\"}") >= 0);
  REQUIRE(direct.exec("UPDATE st_reload SET v = 2 WHERE id = 1"));
  CHECK(eventually([&] { return c.scalar(q) == "2"; }, 3000));
  Conn su(direct_conninfo());
  CHECK(eventually(
      [&] { return su.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'sluice_%'") == "1"; }));
  s.reload(config("local"), kGeneral);
  CHECK(eventually([&] { return stream_column(s, "up") == "(none)"; }));
  // Its slot went with its connection, and answers are kept again.
  CHECK(eventually(
      [&] { return su.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'sluice_%'") == "0"; }));
  CHECK(cached(s, c, q, "2"));
  REQUIRE(direct.exec("DROP TABLE st_reload"));
}

// DDL changes no row: the documented event trigger (docs/design-decisions.md) emits a logical
// decoding message in the DDL's transaction, and its commit invalidates everything.
TEST_CASE("stream invalidation: DDL made directly invalidates through the event trigger's message") {
  Conn direct(app_direct());
  Conn su("host=" + pg_host() + " port=" + std::to_string(pg_port()) + " user=postgres dbname=app sslmode=disable");
  REQUIRE(su.ok());
  REQUIRE(direct.exec("DROP TABLE IF EXISTS st_ddl"));
  REQUIRE(direct.exec("CREATE TABLE st_ddl (id int primary key)"));
  REQUIRE(direct.exec("INSERT INTO st_ddl VALUES (1)"));
  REQUIRE(
      su.exec("CREATE OR REPLACE FUNCTION sluice_ddl_message() RETURNS event_trigger LANGUAGE plpgsql "
              "SECURITY DEFINER AS $$ BEGIN PERFORM pg_logical_emit_message(true, 'sluice_ddl', tg_tag); END $$"));
  REQUIRE(su.exec("DROP EVENT TRIGGER IF EXISTS sluice_ddl"));
  REQUIRE(su.exec("CREATE EVENT TRIGGER sluice_ddl ON ddl_command_end EXECUTE FUNCTION sluice_ddl_message()"));
  {
    SluiceProcess s(config("stream"), kGeneral);
    REQUIRE(stream_up(s));
    Conn c(s.conninfo());
    // A read of the table is cached; the ALTER changes its shape without changing a row.
    REQUIRE(cached(s, c, "SELECT * FROM st_ddl", "1"));
    REQUIRE(direct.exec("ALTER TABLE st_ddl ADD COLUMN w int DEFAULT 5"));
    CHECK(eventually(
        [&] {
          PGresult* r = PQexec(c.c, "SELECT * FROM st_ddl");
          bool two = PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) == 2;
          PQclear(r);
          return two;
        },
        3000));
  }
  REQUIRE(su.exec("DROP EVENT TRIGGER sluice_ddl"));
  REQUIRE(su.exec("DROP FUNCTION sluice_ddl_message()"));
  REQUIRE(direct.exec("DROP TABLE st_ddl"));
}

TEST_CASE(
    "stream invalidation with pgoutput: the publication's tables; without it nothing is kept, and Sluice says why") {
  Conn direct(app_direct());
  REQUIRE(direct.exec("DROP TABLE IF EXISTS st_pub"));
  REQUIRE(direct.exec("DROP PUBLICATION IF EXISTS st_test_pub"));
  REQUIRE(direct.exec("CREATE TABLE st_pub (id int primary key, v int)"));
  REQUIRE(direct.exec("INSERT INTO st_pub VALUES (1, 1)"));
  const std::string q = "SELECT v FROM st_pub WHERE id = 1";
  {
    SluiceProcess s(config("stream", "pgoutput", "st_test_pub"), kGeneral);
    CHECK(s.wait_for_log("publication \"st_test_pub\" does not exist", 5000));
    Conn c(s.conninfo());
    REQUIRE(eventually([&] { return c.scalar(q) == "1"; }));  // the replica has the new table
    for (int i = 0; i < 5; ++i) CHECK(c.scalar(q) == "1");
    CHECK(cache_total(s, "hits") == 0);
    CHECK(cache_total(s, "entries") == 0);
    CHECK(stream_column(s, "up") == "f");
  }
  // The owner of a table may publish it (FOR ALL TABLES needs a superuser).
  REQUIRE(direct.exec("CREATE PUBLICATION st_test_pub FOR TABLE st_pub"));
  {
    SluiceProcess s(config("stream", "pgoutput", "st_test_pub"), kGeneral);
    REQUIRE(stream_up(s));
    Conn c(s.conninfo());
    REQUIRE(cached(s, c, q, "1"));
    REQUIRE(direct.exec("UPDATE st_pub SET v = 2 WHERE id = 1"));
    CHECK(eventually([&] { return c.scalar(q) == "2"; }, 3000));
    CHECK(stream_column(s, "last_lag_ms") != "");
  }
  REQUIRE(direct.exec("DROP PUBLICATION st_test_pub"));
  REQUIRE(direct.exec("DROP TABLE st_pub"));
}

namespace {

int my_replica_port() { return std::stoi(env_or("SLUICE_MY_REPLICA_PORT", "13307")); }

std::string my_config(const std::string& cache_extra = "") {
  return config("stream") + cache_extra +
         "\n[clusters.mys]\nprotocol = \"mysql\"\nprimary = \"127.0.0.1:" + std::to_string(my_port()) +
         "\"\nreplicas = [\"127.0.0.1:" + std::to_string(my_replica_port()) +
         "\"]\nhealth_check_period = \"100ms\"\nstream_user = \"streamer\"\n"
         "\n[[pools]]\ndatabase = \"app\"\ncluster = \"mys\"\npool_size = 4\n";
}

bool my_ok(MyConn& c, const std::string& sql) {
  auto r = c.scalar(sql);
  if (r.rfind("ERR:", 0) == 0) MESSAGE(sql, ": ", r);
  return r.rfind("ERR:", 0) != 0;
}

bool my_cached(const SluiceProcess& s, MyConn& c, const std::string& sql, const std::string& want) {
  return eventually([&] {
    long hits = cache_total(s, "hits");
    if (c.scalar(sql) != want) return false;
    return cache_total(s, "hits") > hits;
  });
}

}  // namespace

TEST_CASE("stream invalidation, MariaDB: direct writes, a trigger's table and DDL invalidate; a lost dump comes back") {
  MyConn root(my_port(), "root", "", "app");
  REQUIRE(root.ok);
  REQUIRE(my_ok(root, "DROP TABLE IF EXISTS st_my, st_my_log, st_my_src"));
  REQUIRE(my_ok(root, "CREATE TABLE st_my (id int primary key, v int)"));
  REQUIRE(my_ok(root, "INSERT INTO st_my VALUES (1, 1)"));
  REQUIRE(my_ok(root, "CREATE TABLE st_my_log (n int)"));
  REQUIRE(my_ok(root, "INSERT INTO st_my_log VALUES (0)"));
  REQUIRE(my_ok(root, "CREATE TABLE st_my_src (id int primary key)"));
  REQUIRE(
      my_ok(root, "CREATE TRIGGER st_my_count AFTER INSERT ON st_my_src FOR EACH ROW UPDATE st_my_log SET n = n + 1"));
  SluiceProcess s(my_config(), kGeneral);
  REQUIRE(eventually([&] { return stream_column(s, "up", "mys") == "t"; }, 10000));
  MyConn c(s.my_port());
  REQUIRE(c.ok);
  const std::string q = "SELECT v FROM st_my WHERE id = 1";
  REQUIRE(my_cached(s, c, q, "1"));
  REQUIRE(my_ok(root, "UPDATE st_my SET v = 2 WHERE id = 1"));
  CHECK(eventually([&] { return c.scalar(q) == "2"; }, 3000));
  // The trigger's table: the statement names another.
  REQUIRE(my_cached(s, c, "SELECT n FROM st_my_log", "0"));
  REQUIRE(my_ok(root, "INSERT INTO st_my_src VALUES (1)"));
  CHECK(eventually([&] { return c.scalar("SELECT n FROM st_my_log") == "1"; }, 3000));
  // DDL (logged as a statement) invalidates everything.
  REQUIRE(my_cached(s, c, q, "2"));
  REQUIRE(my_ok(root, "ALTER TABLE st_my ADD COLUMN w int DEFAULT 5"));
  CHECK(eventually([&] { return c.scalar("SELECT count(*) FROM st_my WHERE w = 5") == "1"; }, 3000));
  CHECK(eventually([&] { return cache_total(s, "entries") <= 1; }, 3000));
  CHECK(std::stol(stream_column(s, "commits", "mys")) >= 3);
  // The dump thread killed on the primary: the cache empties, and the stream comes back.
  REQUIRE(my_cached(s, c, q, "2"));
  std::string id = root.scalar(
      "SELECT id FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%' "
      "AND user = 'streamer' ORDER BY id DESC LIMIT 1");
  REQUIRE_FALSE(id.empty());
  REQUIRE(my_ok(root, "KILL " + id));
  CHECK(s.wait_for_log("change stream of cluster mys (binlog) was lost", 5000));
  CHECK(eventually([&] { return stream_column(s, "losses", "mys") == "1" && stream_column(s, "up", "mys") == "t"; },
                   10000));
  CHECK(my_cached(s, c, q, "2"));
  REQUIRE(my_ok(root, "DROP TABLE st_my, st_my_log, st_my_src"));
}

// [cache] shared (src/state/shared_cache): two instances share a Redis; an entry one filled is a
// hit in the other only while it covers every write the other's stream read.
namespace {

int redis_port() { return std::stoi(env_or("SLUICE_REDIS_PORT", "16379")); }

bool redis(const std::string& args) {
  return std::system(
             ("redis-cli -h 127.0.0.1 -p " + std::to_string(redis_port()) + " " + args + " >/dev/null 2>&1").c_str()) ==
         0;
}

std::string shared_line() { return "shared = \"127.0.0.1:" + std::to_string(redis_port()) + "\"\n"; }

// Write marks end at max_replica_lag plus two health-check periods (0.7 s here): after that, only
// the stream marks refuse an entry older than a write (the tests wait past it).
std::string short_horizon(std::string cfg) {
  const std::string period = "health_check_period = \"100ms\"\n";
  const std::string lag = "max_replica_lag = \"500ms\"\n";
  for (auto at = cfg.find(period); at != std::string::npos; at = cfg.find(period, at + lag.size() + period.size()))
    cfg.insert(at, lag);
  return cfg;
}
const auto kPastHorizon = std::chrono::milliseconds(1500);

long shared_total(const SluiceProcess& s, const std::string& column) {
  Conn adm(admin_info(s));
  PGresult* r = PQexec(adm.c, "SHOW CACHE_SHARED");
  long v = -1;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
    int col = PQfnumber(r, column.c_str());
    if (col >= 0) v = column == "up" ? std::string(PQgetvalue(r, 0, col)) == "t" : std::stol(PQgetvalue(r, 0, col));
  }
  PQclear(r);
  return v;
}

// Bounded: a statement A fills (and stores in Redis) is, read next through B, a Redis hit; each
// try a new text over `table` (column v, row id 1).
template <typename ReadA, typename ReadB>
bool shared_between(const SluiceProcess& a, const SluiceProcess& b, ReadA read_a, ReadB read_b,
                    const std::string& table) {
  int n = 0;
  return eventually(
      [&] {
        std::string sql = "SELECT v + " + std::to_string(++n) + " FROM " + table + " WHERE id = 1";
        long sets = shared_total(a, "sets"), hits = shared_total(b, "hits");
        read_a(sql);
        if (!eventually([&] { return shared_total(a, "sets") > sets; }, 1000)) return false;
        read_b(sql);
        return shared_total(b, "hits") > hits;
      },
      10000);
}

std::string sandbox(const std::string& command) {
  std::string script = env_or("SLUICE_SANDBOX_SCRIPT", "");
  REQUIRE_FALSE(script.empty());
  FILE* p = ::popen((script + " " + command + " 2>/dev/null").c_str(), "r");
  std::string out;
  char buf[256];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  if (p) ::pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

TEST_CASE("shared store: a fill in one instance is a hit in another, unless a write it does not cover came since") {
  REQUIRE(redis("FLUSHALL"));
  Conn direct(app_direct());
  REQUIRE(direct.ok());
  REQUIRE(direct.exec("DROP TABLE IF EXISTS sh_items"));
  REQUIRE(direct.exec("CREATE TABLE sh_items (id int primary key, v int)"));
  REQUIRE(direct.exec("INSERT INTO sh_items VALUES (1, 10)"));
  SluiceProcess a(short_horizon(config("stream") + shared_line()), kGeneral);
  SluiceProcess b(short_horizon(config("stream") + shared_line()), kGeneral);
  REQUIRE(stream_up(a));
  REQUIRE(stream_up(b));
  Conn ca(a.conninfo()), cb(b.conninfo());
  // Until the replica's position as A's health checks see it passes B's stream start, A's fills
  // are older than anything B can judge: wait until a throwaway statement goes through.
  REQUIRE(shared_between(
      a, b, [&](const std::string& sql) { return ca.scalar(sql); },
      [&](const std::string& sql) { return cb.scalar(sql); }, "sh_items"));
  const std::string q = "SELECT v FROM sh_items WHERE id = 1";
  REQUIRE(cached(a, ca, q, "10"));
  REQUIRE(eventually([&] { return shared_total(a, "sets") >= 1; }, 3000));
  // B has never read it: its miss is answered from Redis, then from its own memory.
  long hits = shared_total(b, "hits");
  CHECK(cb.scalar(q) == "10");
  CHECK(shared_total(b, "hits") == hits + 1);
  CHECK(shared_total(b, "up") == 1);
  long local = cache_total(b, "hits");
  CHECK(cb.scalar(q) == "10");
  CHECK(cache_total(b, "hits") == local + 1);

  // A write that bypasses both: each stream drops its own entry; Redis still holds A's, which B
  // must refuse (its data is older than the write B's stream read) and fill anew.
  long commits = std::stol(stream_column(b, "commits"));
  REQUIRE(direct.exec("UPDATE sh_items SET v = 11 WHERE id = 1"));
  REQUIRE(eventually([&] { return std::stol(stream_column(b, "commits")) > commits; }, 3000));
  std::this_thread::sleep_for(kPastHorizon);
  long stale = shared_total(b, "stale");
  CHECK(cb.scalar(q) == "11");
  CHECK(shared_total(b, "stale") > stale);
  // B's fill replaced it in Redis: A, once its stream read the write, takes B's.
  // (Once the replica B reads from covers the write: an older answer is not kept.)
  REQUIRE(eventually([&] { return cb.scalar(q) == "11" && shared_total(b, "sets") >= 1; }, 5000));
  hits = shared_total(a, "hits");
  CHECK(eventually([&] { return ca.scalar(q) == "11"; }, 3000));
  CHECK(shared_total(a, "hits") >= hits + 1);
  REQUIRE(direct.exec("DROP TABLE sh_items"));
}

TEST_CASE("shared store: Redis killed mid-run, answers stay right and the cache works locally; it comes back") {
  REQUIRE(redis("FLUSHALL"));
  Conn direct(app_direct());
  REQUIRE(direct.ok());
  REQUIRE(direct.exec("DROP TABLE IF EXISTS sh_kill"));
  REQUIRE(direct.exec("CREATE TABLE sh_kill (id int primary key, v int)"));
  REQUIRE(direct.exec("INSERT INTO sh_kill VALUES (1, 20)"));
  SluiceProcess a(config("stream") + shared_line(), kGeneral);
  SluiceProcess b(config("stream") + shared_line(), kGeneral);
  REQUIRE(stream_up(a));
  REQUIRE(stream_up(b));
  Conn ca(a.conninfo()), cb(b.conninfo());
  const std::string q = "SELECT v FROM sh_kill WHERE id = 1";
  REQUIRE(cached(a, ca, q, "20"));
  std::string pid = sandbox("pid redis");
  REQUIRE_FALSE(pid.empty());
  REQUIRE(::kill(std::stoi(pid), SIGKILL) == 0);
  REQUIRE(direct.exec("UPDATE sh_kill SET v = 21 WHERE id = 1"));
  CHECK(eventually([&] { return ca.scalar(q) == "21" && cb.scalar(q) == "21"; }, 3000));
  CHECK(shared_total(b, "up") == 0);
  CHECK(shared_total(b, "errors") >= 1);
  // Each instance keeps caching on its own.
  CHECK(cached(b, cb, q, "21"));
  CHECK(cached(a, ca, q, "21"));
  REQUIRE(direct.exec("UPDATE sh_kill SET v = 22 WHERE id = 1"));
  CHECK(eventually([&] { return ca.scalar(q) == "22" && cb.scalar(q) == "22"; }, 3000));
  // Back (empty): after its back-off (up to 8 s), each instance's misses go there again.
  sandbox("start-redis");
  int n = 0;
  // (Each worker has its own connection: the clients that read below make the misses.)
  for (auto each : {std::pair<SluiceProcess*, Conn*>{&a, &ca}, {&b, &cb}}) {
    SluiceProcess* x = each.first;
    Conn* cx = each.second;
    long sets = shared_total(*x, "sets");
    CHECK(eventually(
        [&] {
          cx->scalar("SELECT v + " + std::to_string(++n) + " FROM sh_kill WHERE id = 1");  // a new miss each time
          return shared_total(*x, "up") == 1 && shared_total(*x, "sets") > sets;
        },
        15000));
  }
  // And a fill in A is a hit in B again.
  long commits = std::stol(stream_column(b, "commits"));
  REQUIRE(direct.exec("UPDATE sh_kill SET v = 23 WHERE id = 1"));
  REQUIRE(eventually([&] { return std::stol(stream_column(b, "commits")) > commits; }, 3000));
  long sets = shared_total(a, "sets");
  CHECK(eventually([&] { return ca.scalar(q) == "23" && shared_total(a, "sets") > sets; }, 5000));
  long hits = shared_total(b, "hits");
  CHECK(cb.scalar(q) == "23");
  CHECK(shared_total(b, "hits") == hits + 1);
  REQUIRE(direct.exec("DROP TABLE sh_kill"));
}

TEST_CASE("shared store, MariaDB: a fill in one instance is a hit in another until a direct write") {
  REQUIRE(redis("FLUSHALL"));
  MyConn root(my_port(), "root", "", "app");
  REQUIRE(root.ok);
  REQUIRE(my_ok(root, "DROP TABLE IF EXISTS sh_my"));
  REQUIRE(my_ok(root, "CREATE TABLE sh_my (id int primary key, v int)"));
  REQUIRE(my_ok(root, "INSERT INTO sh_my VALUES (1, 1)"));
  SluiceProcess a(short_horizon(my_config(shared_line())), kGeneral);
  SluiceProcess b(short_horizon(my_config(shared_line())), kGeneral);
  REQUIRE(
      eventually([&] { return stream_column(a, "up", "mys") == "t" && stream_column(b, "up", "mys") == "t"; }, 10000));
  MyConn ca(a.my_port()), cb(b.my_port());
  REQUIRE(ca.ok);
  REQUIRE(cb.ok);
  REQUIRE(shared_between(
      a, b, [&](const std::string& sql) { return ca.scalar(sql); },
      [&](const std::string& sql) { return cb.scalar(sql); }, "sh_my"));
  const std::string q = "SELECT v FROM sh_my WHERE id = 1";
  REQUIRE(my_cached(a, ca, q, "1"));
  REQUIRE(eventually([&] { return shared_total(a, "sets") >= 1; }, 3000));
  long hits = shared_total(b, "hits");
  CHECK(cb.scalar(q) == "1");
  CHECK(shared_total(b, "hits") == hits + 1);
  long commits = std::stol(stream_column(b, "commits", "mys"));
  REQUIRE(my_ok(root, "UPDATE sh_my SET v = 2 WHERE id = 1"));
  REQUIRE(eventually([&] { return std::stol(stream_column(b, "commits", "mys")) > commits; }, 3000));
  std::this_thread::sleep_for(kPastHorizon);
  long stale = shared_total(b, "stale");
  CHECK(cb.scalar(q) == "2");
  CHECK(shared_total(b, "stale") > stale);
  REQUIRE(my_ok(root, "DROP TABLE sh_my"));
}
