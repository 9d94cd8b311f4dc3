// Result cache on the PostgreSQL front end (simple protocol): repeated reads served from
// Sluice's memory, writes through Sluice dropping what they touch, rolled-back writes dropping
// nothing, and search_path keeping entries apart.
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "harness.hpp"

using namespace sluice::itest;

namespace {

const char* kCachePools = R"(
[[pools]]
database = "app"
cluster = "pg"
pool_size = 4

[cache]
mode = "all"
default_ttl = "60s"
)";

std::string app_direct() {
  return "host=" + pg_host() + " port=" + std::to_string(pg_port()) + " user=app password=app dbname=app sslmode=disable";
}

long commits(Conn& su) { return std::stol(su.scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = 'app'")); }

}  // namespace

TEST_CASE("repeated reads come from Sluice's memory; writes through Sluice make the next read fresh") {
  Conn(direct_conninfo()).exec("DROP TABLE IF EXISTS cache_t");
  Conn direct(app_direct());
  REQUIRE(direct.exec("CREATE TABLE cache_t (id int primary key, v int)"));
  REQUIRE(direct.exec("INSERT INTO cache_t VALUES (1, 10)"));
  SluiceProcess s(kCachePools);
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  Conn su(direct_conninfo());
  CHECK(c.scalar("SELECT v FROM cache_t WHERE id = 1") == "10");
  long before = commits(su);
  for (int i = 0; i < 50; ++i) {
    CHECK(c.scalar("SELECT v FROM cache_t WHERE id = 1") == "10");
    CHECK(c.scalar("select  V from CACHE_T where ID=1 /* same key */") == "10");
  }
  // The server's own counter: 100 reads, and at most the statistics query itself in between.
  long after = commits(su);
  MESSAGE("pg_stat_database.xact_commit moved by ", after - before, " during 100 cached reads (statistics are flushed lazily)");
  // The server's own record of executions: a function that logs each call, read 50 times.
  REQUIRE(direct.exec("CREATE TABLE calls_t (at timestamptz default now())"));
  REQUIRE(direct.exec("CREATE FUNCTION counted() RETURNS int LANGUAGE sql VOLATILE AS "
                      "'INSERT INTO calls_t DEFAULT VALUES; SELECT 7'"));
  for (int i = 0; i < 50; ++i) CHECK(c.scalar("SELECT counted() AS seven") == "7");
  CHECK(direct.scalar("SELECT count(*) FROM calls_t") == "1");  // executed once, then from memory
  REQUIRE(direct.exec("DROP FUNCTION counted()"));
  REQUIRE(direct.exec("DROP TABLE calls_t"));
  // Behind Sluice's back the value changes: the cache still answers (TTL bounds this).
  REQUIRE(direct.exec("UPDATE cache_t SET v = 11 WHERE id = 1"));
  CHECK(c.scalar("SELECT v FROM cache_t WHERE id = 1") == "10");
  // A write through Sluice drops the table's entries at once.
  REQUIRE(c.exec("UPDATE cache_t SET v = 12 WHERE id = 1"));
  CHECK(c.scalar("SELECT v FROM cache_t WHERE id = 1") == "12");
  // Inside a transaction: the write counts at COMMIT, and the transaction's own reads never
  // come from the cache.
  REQUIRE(c.exec("BEGIN"));
  REQUIRE(c.exec("UPDATE cache_t SET v = 13 WHERE id = 1"));
  CHECK(c.scalar("SELECT v FROM cache_t WHERE id = 1") == "13");
  REQUIRE(c.exec("COMMIT"));
  CHECK(c.scalar("SELECT v FROM cache_t WHERE id = 1") == "13");
  // A rolled-back write drops nothing: the cached value stays (the server changed meanwhile).
  CHECK(c.scalar("SELECT v FROM cache_t WHERE id = 1") == "13");  // cached again
  REQUIRE(direct.exec("UPDATE cache_t SET v = 14 WHERE id = 1"));
  REQUIRE(c.exec("BEGIN"));
  REQUIRE(c.exec("UPDATE cache_t SET v = 99 WHERE id = 1"));
  REQUIRE(c.exec("ROLLBACK"));
  CHECK(c.scalar("SELECT v FROM cache_t WHERE id = 1") == "13");
  // Errors and volatile reads are never cached.
  CHECK(c.scalar("SELECT v FROM no_such_cache_table") == "ERROR:42P01");
  REQUIRE(direct.exec("CREATE TABLE no_such_cache_table (v int)"));
  CHECK(c.scalar("SELECT count(*) FROM no_such_cache_table") == "0");
  CHECK(c.scalar("SELECT now() = now()") == "t");
  std::string t1 = c.scalar("SELECT clock_timestamp()::text");
  CHECK(c.scalar("SELECT clock_timestamp()::text") != t1);
  REQUIRE(direct.exec("DROP TABLE no_such_cache_table"));
  REQUIRE(direct.exec("DROP TABLE cache_t"));
}

TEST_CASE("extended protocol and prepared statements: cached per parameter values") {
  Conn(direct_conninfo()).exec("DROP TABLE IF EXISTS xcache_t");
  Conn direct(app_direct());
  REQUIRE(direct.exec("CREATE TABLE xcache_t (id int primary key, v int)"));
  REQUIRE(direct.exec("INSERT INTO xcache_t VALUES (1, 10), (2, 20)"));
  SluiceProcess s(kCachePools);
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  auto params = [&](const char* id) {
    const char* values[1] = {id};
    PGresult* r = PQexecParams(c.c, "SELECT v FROM xcache_t WHERE id = $1", 1, nullptr, values, nullptr, nullptr, 0);
    std::string out = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "?";
    PQclear(r);
    return out;
  };
  PQclear(PQprepare(c.c, "by_id", "SELECT v FROM xcache_t WHERE id = $1", 1, nullptr));
  auto prepared = [&](const char* id) {
    const char* values[1] = {id};
    PGresult* r = PQexecPrepared(c.c, "by_id", 1, values, nullptr, nullptr, 0);
    std::string out = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "?";
    PQclear(r);
    return out;
  };
  CHECK(params("1") == "10");
  CHECK(params("2") == "20");
  CHECK(prepared("1") == "10");
  CHECK(prepared("2") == "20");
  // Behind Sluice's back: every cached form keeps answering from memory, per parameter value.
  REQUIRE(direct.exec("UPDATE xcache_t SET v = v + 1"));
  for (int i = 0; i < 3; ++i) {
    CHECK(params("1") == "10");
    CHECK(params("2") == "20");
    CHECK(prepared("1") == "10");
    CHECK(prepared("2") == "20");
  }
  // A write through Sluice: fresh for every form.
  REQUIRE(c.exec("UPDATE xcache_t SET v = v + 1"));
  CHECK(params("1") == "12");
  CHECK(prepared("2") == "22");
  REQUIRE(direct.exec("DROP TABLE xcache_t"));
}

TEST_CASE("different search_path or user never share an entry") {
  Conn su(direct_conninfo());
  su.exec("DROP SCHEMA IF EXISTS other CASCADE");
  su.exec("DROP TABLE IF EXISTS public.sp_t");
  REQUIRE(su.exec("CREATE SCHEMA other AUTHORIZATION app"));
  Conn direct(app_direct());
  REQUIRE(direct.exec("CREATE TABLE public.sp_t (v text)"));
  REQUIRE(direct.exec("INSERT INTO public.sp_t VALUES ('public')"));
  REQUIRE(direct.exec("CREATE TABLE other.sp_t (v text)"));
  REQUIRE(direct.exec("INSERT INTO other.sp_t VALUES ('other')"));
  SluiceProcess s(kCachePools);
  Conn a(s.conninfo()), b(s.conninfo());
  REQUIRE(b.exec("SET search_path TO other"));
  for (int i = 0; i < 3; ++i) {
    CHECK(a.scalar("SELECT v FROM sp_t") == "public");
    CHECK(b.scalar("SELECT v FROM sp_t") == "other");
  }
  // One session that changes its search_path between cached reads: each read keyed anew.
  REQUIRE(a.exec("SET search_path TO other"));
  CHECK(a.scalar("SELECT v FROM sp_t") == "other");
  REQUIRE(a.exec("SET search_path TO public"));
  CHECK(a.scalar("SELECT v FROM sp_t") == "public");
  REQUIRE(b.exec("RESET search_path"));
  CHECK(b.scalar("SELECT v FROM sp_t") == "public");
  Conn m(s.conninfo("md5user", "md5pass"));
  REQUIRE(su.exec("GRANT SELECT ON public.sp_t TO md5user"));
  REQUIRE(direct.exec("UPDATE public.sp_t SET v = 'changed behind'"));
  CHECK(a.scalar("SELECT v FROM sp_t") == "public");          // app's cached entry
  CHECK(m.scalar("SELECT v FROM sp_t") == "changed behind");  // md5user has its own
  // A client that created a temporary table gets no cached answers (its reads may name it).
  Conn t(s.conninfo());
  REQUIRE(t.exec("BEGIN"));
  REQUIRE(t.exec("CREATE TEMP TABLE sp_t (v text) ON COMMIT DROP"));
  REQUIRE(t.exec("INSERT INTO sp_t VALUES ('temp')"));
  CHECK(t.scalar("SELECT v FROM sp_t") == "temp");
  REQUIRE(t.exec("COMMIT"));
  CHECK(t.scalar("SELECT v FROM sp_t") == "changed behind");  // not app's cached 'public'
  su.exec("DROP SCHEMA other CASCADE");
  su.exec("DROP TABLE public.sp_t");
}

TEST_CASE("50 concurrent identical misses reach the server once") {
  Conn(direct_conninfo()).exec("DROP TABLE IF EXISTS hits_t");
  Conn direct(app_direct());
  REQUIRE(direct.exec("CREATE TABLE hits_t (at timestamptz default now())"));
  // A function the policy cannot see into: each execution leaves a row behind.
  REQUIRE(direct.exec("CREATE OR REPLACE FUNCTION slow_answer() RETURNS int LANGUAGE sql VOLATILE AS "
                      "'INSERT INTO hits_t DEFAULT VALUES; SELECT pg_sleep(0.5); SELECT 42'"));
  SluiceProcess s(std::string(kCachePools), "query_wait_timeout = \"20s\"");
  std::vector<std::thread> threads;
  std::atomic<int> right{0};
  std::mutex mu;
  std::vector<std::string> wrong;
  for (int i = 0; i < 50; ++i)
    threads.emplace_back([&] {
      Conn c(s.conninfo());
      auto got = c.ok() ? c.scalar("SELECT slow_answer()") : "login: " + c.error();
      if (got == "42") ++right;
      else {
        std::lock_guard lock(mu);
        wrong.push_back(got + " / " + c.error());
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& w : wrong) MESSAGE("a client got: " << w);
  CHECK(right == 50);
  CHECK(direct.scalar("SELECT count(*) FROM hits_t") == "1");
  REQUIRE(direct.exec("DROP FUNCTION slow_answer()"));
  REQUIRE(direct.exec("DROP TABLE hits_t"));
}

namespace {
// A MariaDB server's own count of statements of a kind (SHOW GLOBAL STATUS).
long com_select(MyConn& c, const char* counter = "Com_select") {
  mysql_query(c.m, (std::string("SHOW GLOBAL STATUS LIKE '") + counter + "'").c_str());
  MYSQL_RES* r = mysql_store_result(c.m);
  MYSQL_ROW row = mysql_fetch_row(r);
  long v = std::stol(row[1]);
  mysql_free_result(r);
  return v;
}
}  // namespace

TEST_CASE("MariaDB: repeated reads come from Sluice's memory (Com_select unchanged); writes make them fresh") {
  MyConn direct(my_port());
  REQUIRE(direct.scalar("DROP TABLE IF EXISTS mcache_t") == "");
  REQUIRE(direct.scalar("CREATE TABLE mcache_t (id INT PRIMARY KEY, v INT)") == "");
  REQUIRE(direct.scalar("INSERT INTO mcache_t VALUES (1, 10)") == "");
  SluiceProcess s("[[pools]]\ndatabase = \"app\"\ncluster = \"my\"\npool_size = 4\n\n[cache]\nmode = \"all\"\n");
  MyConn c(s.my_port());
  MyConn root(my_port(), "root", "", nullptr);
  CHECK(c.scalar("SELECT v FROM mcache_t WHERE id = 1") == "10");
  long before = com_select(root);
  for (int i = 0; i < 50; ++i) {
    CHECK(c.scalar("SELECT v FROM mcache_t WHERE id = 1") == "10");
    CHECK(c.scalar("select v from mcache_t where id=1 -- same key") == "10");
  }
  long after = com_select(root);
  MESSAGE("Com_select grew by ", after - before, " during 100 cached reads");
  CHECK(after - before == 0);
  REQUIRE(direct.scalar("UPDATE mcache_t SET v = 11 WHERE id = 1") == "");
  CHECK(c.scalar("SELECT v FROM mcache_t WHERE id = 1") == "10");  // behind Sluice's back: cached
  CHECK(c.scalar("UPDATE mcache_t SET v = 12 WHERE id = 1") == "");
  CHECK(c.scalar("SELECT v FROM mcache_t WHERE id = 1") == "12");
  CHECK(c.scalar("START TRANSACTION") == "");
  CHECK(c.scalar("UPDATE mcache_t SET v = 13 WHERE id = 1") == "");
  CHECK(c.scalar("SELECT v FROM mcache_t WHERE id = 1") == "13");
  CHECK(c.scalar("ROLLBACK") == "");
  CHECK(c.scalar("SELECT v FROM mcache_t WHERE id = 1") == "12");  // the rolled-back write dropped nothing
  CHECK(c.scalar("SELECT NOW(6) = NOW(6)") == "1");
  CHECK(direct.scalar("DROP TABLE mcache_t") == "");
}

TEST_CASE("MariaDB: LOAD DATA LOCAL INFILE through Sluice makes cached reads of its table fresh") {
  MyConn direct(my_port());
  REQUIRE(direct.scalar("DROP TABLE IF EXISTS minfile_t") == "");
  REQUIRE(direct.scalar("CREATE TABLE minfile_t (id INT PRIMARY KEY, v INT)") == "");
  REQUIRE(direct.scalar("INSERT INTO minfile_t VALUES (1, 10)") == "");
  SluiceProcess::mysql_extra = "local_infile = true\n";
  SluiceProcess s("[[pools]]\ndatabase = \"app\"\ncluster = \"my\"\npool_size = 2\n\n[cache]\nmode = \"all\"\n");
  SluiceProcess::mysql_extra.clear();
  MyConn c(s.my_port(), "app", "app", "app", CLIENT_LOCAL_FILES);
  REQUIRE(c.ok);
  unsigned int on = 1;
  mysql_optionsv(c.m, MYSQL_OPT_LOCAL_INFILE, &on);
  CHECK(c.scalar("SELECT COUNT(*) FROM minfile_t") == "1");
  CHECK(c.scalar("SELECT COUNT(*) FROM minfile_t") == "1");  // now from Sluice's memory
  std::string path = env_or("TMPDIR", "/tmp") + "/sluice-minfile-" + std::to_string(::getpid()) + ".tsv";
  std::ofstream(path) << "2\t20\n3\t30\n";
  // The file's packets replace the command in Sluice's buffer before the write is noted: the
  // table must still be the one invalidated.
  CHECK(c.scalar("LOAD DATA LOCAL INFILE '" + path + "' INTO TABLE minfile_t") == "");
  CHECK(c.scalar("SELECT COUNT(*) FROM minfile_t") == "3");
  CHECK(direct.scalar("DROP TABLE minfile_t") == "");
  std::remove(path.c_str());
}

TEST_CASE("MariaDB prepared statements: cached per parameter values") {
  MyConn direct(my_port());
  REQUIRE(direct.scalar("DROP TABLE IF EXISTS mcache2_t") == "");
  REQUIRE(direct.scalar("CREATE TABLE mcache2_t (id INT PRIMARY KEY, v INT)") == "");
  REQUIRE(direct.scalar("INSERT INTO mcache2_t VALUES (1, 10), (2, 20)") == "");
  SluiceProcess s("[[pools]]\ndatabase = \"app\"\ncluster = \"my\"\npool_size = 4\n\n[cache]\nmode = \"all\"\n");
  MyConn c(s.my_port());
  MyConn root(my_port(), "root", "", nullptr);
  MYSQL_STMT* st = mysql_stmt_init(c.m);
  const char* q = "SELECT v FROM mcache2_t WHERE id = ?";
  REQUIRE(mysql_stmt_prepare(st, q, std::strlen(q)) == 0);
  auto run = [&](int id) {
    MYSQL_BIND pb;
    std::memset(&pb, 0, sizeof pb);
    pb.buffer_type = MYSQL_TYPE_LONG;
    pb.buffer = &id;
    int out = -1;
    MYSQL_BIND rb;
    std::memset(&rb, 0, sizeof rb);
    rb.buffer_type = MYSQL_TYPE_LONG;
    rb.buffer = &out;
    if (mysql_stmt_bind_param(st, &pb) || mysql_stmt_execute(st) || mysql_stmt_bind_result(st, &rb) ||
        mysql_stmt_store_result(st) || mysql_stmt_fetch(st) != 0)
      return -2;
    mysql_stmt_free_result(st);
    return out;
  };
  CHECK(run(1) == 10);
  CHECK(run(2) == 20);
  long before = com_select(root, "Com_stmt_execute");
  for (int i = 0; i < 20; ++i) {
    CHECK(run(1) == 10);
    CHECK(run(2) == 20);
  }
  CHECK(com_select(root, "Com_stmt_execute") - before == 0);  // 40 executes, all from memory
  REQUIRE(direct.scalar("UPDATE mcache2_t SET v = 11 WHERE id = 1") == "");
  CHECK(run(1) == 10);  // behind Sluice's back: still cached
  CHECK(c.scalar("UPDATE mcache2_t SET v = 12 WHERE id = 1") == "");
  CHECK(run(1) == 12);  // a write through Sluice: fresh
  CHECK(run(2) == 20);
  mysql_stmt_close(st);
  CHECK(direct.scalar("DROP TABLE mcache2_t") == "");
}

TEST_CASE("the memory cap holds under a flood of distinct queries") {
  SluiceProcess s("[[pools]]\ndatabase = \"app\"\ncluster = \"pg\"\npool_size = 2\n\n[cache]\nmode = \"all\"\n"
                  "max_bytes = \"2MiB\"\n");
  auto rss_kb = [&] { return s.rss_kb(); };
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  CHECK(c.scalar("SELECT 0, repeat('x', 8000)") != "");
  long before = rss_kb();
  // 8000 distinct answers of 8 kB: 64 MB if nothing were evicted.
  for (int i = 1; i <= 8000; ++i) REQUIRE(c.scalar("SELECT " + std::to_string(i) + ", repeat('x', 8000)") == std::to_string(i));
  long after = rss_kb();
  MESSAGE("Sluice RSS grew by ", (after - before) / 1024, " MB over 64 MB of distinct cacheable answers (max_bytes 2 MiB)");
#ifndef SLUICE_SANITIZED  // ASan holds freed memory in its quarantine: RSS says nothing about the cap there
  CHECK(after - before < 24 * 1024);
#endif
  // The cache still answers (the newest entries are there).
  CHECK(c.scalar("SELECT 8000, repeat('x', 8000)") == "8000");
}

TEST_CASE("a cluster's write_functions are never cached and drop the cache when called, on both protocols") {
  // The operator lists functions that write: a read calling one is not a read, and what it
  // wrote is not in its text, so every entry goes.
  Conn(direct_conninfo()).exec("DROP TABLE IF EXISTS wf_log");
  Conn direct(app_direct());
  REQUIRE(direct.exec("CREATE TABLE wf_log (n int)"));
  REQUIRE(direct.exec("CREATE OR REPLACE FUNCTION touch_log() RETURNS int LANGUAGE sql VOLATILE AS "
                      "'INSERT INTO wf_log VALUES (1); SELECT 1'"));
  MyConn root(my_port(), "root", "", "app");
  REQUIRE(root.scalar("DROP TABLE IF EXISTS wf_log") == "");
  REQUIRE(root.scalar("DROP FUNCTION IF EXISTS touch_log") == "");
  REQUIRE(root.scalar("CREATE TABLE wf_log (n INT)") == "");
  REQUIRE(root.scalar("CREATE FUNCTION touch_log() RETURNS INT DETERMINISTIC MODIFIES SQL DATA "
                      "BEGIN INSERT INTO wf_log VALUES (1); RETURN 1; END") == "");
  SluiceProcess s("[clusters.pgw]\nprotocol = \"postgres\"\nprimary = \"" + pg_host() + ":" + std::to_string(pg_port()) +
                  "\"\nwrite_functions = [\"touch_log\"]\n\n[clusters.myw]\nprotocol = \"mysql\"\nprimary = "
                  "\"127.0.0.1:" +
                  std::to_string(my_port()) +
                  "\"\nwrite_functions = [\"touch_log\"]\n\n"
                  "[[pools]]\ndatabase = \"app\"\ncluster = \"pgw\"\npool_size = 2\n\n"
                  "[[pools]]\ndatabase = \"app\"\ncluster = \"myw\"\npool_size = 2\n\n"
                  "[cache]\nmode = \"all\"\ndefault_ttl = \"60s\"\n");
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  CHECK(c.scalar("SELECT count(*) FROM wf_log") == "0");
  CHECK(c.scalar("SELECT count(*) FROM wf_log") == "0");  // cached
  CHECK(c.scalar("SELECT touch_log()") == "1");
  CHECK(c.scalar("SELECT touch_log()") == "1");
  CHECK(direct.scalar("SELECT count(*) FROM wf_log") == "2");  // both calls ran
  CHECK(c.scalar("SELECT count(*) FROM wf_log") == "2");       // and the cached count went
  MyConn m(s.my_port());
  REQUIRE(m.ok);
  CHECK(m.scalar("SELECT COUNT(*) FROM wf_log") == "0");
  CHECK(m.scalar("SELECT COUNT(*) FROM wf_log") == "0");  // cached
  CHECK(m.scalar("SELECT touch_log()") == "1");
  CHECK(m.scalar("SELECT touch_log()") == "1");
  CHECK(root.scalar("SELECT COUNT(*) FROM wf_log") == "2");
  CHECK(m.scalar("SELECT COUNT(*) FROM wf_log") == "2");
  REQUIRE(direct.exec("DROP FUNCTION touch_log()"));
  REQUIRE(direct.exec("DROP TABLE wf_log"));
  CHECK(root.scalar("DROP FUNCTION touch_log") == "");
  CHECK(root.scalar("DROP TABLE wf_log") == "");
}

TEST_CASE("a whole transaction in one text (BEGIN; UPDATE; COMMIT) makes cached reads of its tables fresh") {
  Conn(direct_conninfo()).exec("DROP TABLE IF EXISTS tx1_t");
  Conn direct(app_direct());
  REQUIRE(direct.exec("CREATE TABLE tx1_t (id int primary key, v int)"));
  REQUIRE(direct.exec("INSERT INTO tx1_t VALUES (1, 10)"));
  MyConn root(my_port(), "root", "", "app");
  REQUIRE(root.scalar("DROP TABLE IF EXISTS mtx1_t") == "");
  REQUIRE(root.scalar("CREATE TABLE mtx1_t (id INT PRIMARY KEY, v INT)") == "");
  REQUIRE(root.scalar("INSERT INTO mtx1_t VALUES (1, 10)") == "");
  SluiceProcess s(std::string(kCachePools) +
                  "\n[[pools]]\ndatabase = \"app\"\ncluster = \"my\"\npool_size = 2\n");
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  CHECK(c.scalar("SELECT v FROM tx1_t WHERE id = 1") == "10");
  CHECK(c.scalar("SELECT v FROM tx1_t WHERE id = 1") == "10");  // cached
  REQUIRE(c.exec("BEGIN; UPDATE tx1_t SET v = 11 WHERE id = 1; COMMIT"));
  CHECK(c.scalar("SELECT v FROM tx1_t WHERE id = 1") == "11");
  REQUIRE(c.exec("START TRANSACTION; UPDATE tx1_t SET v = 12 WHERE id = 1; COMMIT"));
  CHECK(c.scalar("SELECT v FROM tx1_t WHERE id = 1") == "12");
  MyConn m(s.my_port(), "app", "app", "app", CLIENT_MULTI_STATEMENTS);
  REQUIRE(m.ok);
  CHECK(m.scalar("SELECT v FROM mtx1_t WHERE id = 1") == "10");
  CHECK(m.scalar("SELECT v FROM mtx1_t WHERE id = 1") == "10");  // cached
  m.scalar("START TRANSACTION; UPDATE mtx1_t SET v = 11 WHERE id = 1; COMMIT");
  while (mysql_next_result(m.m) == 0) {
    if (MYSQL_RES* r = mysql_store_result(m.m)) mysql_free_result(r);
  }
  CHECK(m.scalar("SELECT v FROM mtx1_t WHERE id = 1") == "11");
  REQUIRE(direct.exec("DROP TABLE tx1_t"));
  CHECK(root.scalar("DROP TABLE mtx1_t") == "");
}

TEST_CASE("a reload's cache policy reaches clients already connected, both ways") {
  Conn(direct_conninfo()).exec("DROP TABLE IF EXISTS policy_calls_t");
  Conn direct(app_direct());
  REQUIRE(direct.exec("DROP FUNCTION IF EXISTS policy_counted()"));
  REQUIRE(direct.exec("CREATE TABLE policy_calls_t (at timestamptz default now())"));
  REQUIRE(
      direct.exec("CREATE FUNCTION policy_counted() RETURNS int LANGUAGE sql VOLATILE AS "
                  "'INSERT INTO policy_calls_t DEFAULT VALUES; SELECT 7'"));
  auto pools = [](const char* mode) {
    return std::string(R"(
[[pools]]
database = "app"
cluster = "pg"
pool_size = 4

[cache]
default_ttl = "60s"
mode = ")") +
           mode + "\"\n";
  };
  ::setenv("SLUICE_TEST_LOG_LEVEL", "info", 1);  // "configuration reloaded" says a reload is in force
  struct Unset {
    ~Unset() { ::unsetenv("SLUICE_TEST_LOG_LEVEL"); }
  } unset;
  SluiceProcess s(pools("rules"));  // no rules: nothing is cached
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  auto calls = [&] { return direct.scalar("SELECT count(*) FROM policy_calls_t"); };
  auto reloads = [&] {  // reloads applied so far, by Sluice's log
    std::ifstream in(s.log_path());
    std::string line;
    int n = 0;
    while (std::getline(in, line)) n += line.find("configuration reloaded") != std::string::npos;
    return n;
  };
  auto reload = [&](const char* mode) {
    int before = reloads();
    s.reload(pools(mode));
    REQUIRE(eventually([&] { return reloads() > before; }));
  };
  for (int i = 0; i < 3; ++i) CHECK(c.scalar("SELECT policy_counted() AS seven") == "7");
  CHECK(calls() == "3");
  reload("all");
  for (int i = 0; i < 3; ++i) CHECK(c.scalar("SELECT policy_counted() AS seven") == "7");
  CHECK(calls() == "4");  // the same client: executed once, then from memory
  reload("rules");
  for (int i = 0; i < 3; ++i) CHECK(c.scalar("SELECT policy_counted() AS seven") == "7");
  CHECK(calls() == "7");  // cached no more
  REQUIRE(direct.exec("DROP FUNCTION policy_counted()"));
  REQUIRE(direct.exec("DROP TABLE policy_calls_t"));
}
