// The admin console through libpq and Connector/C, /metrics through a real Prometheus
// text-format check, RELOAD (good and broken files), PAUSE across a primary restart, and the
// operator commands (DISABLE, DRAIN, KILL, CACHE PURGE, SET, SHUTDOWN).
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace sluice::itest;

namespace {

int pg_replica_port() { return std::stoi(env_or("SLUICE_PG_REPLICA_PORT", "15433")); }

const char* kGeneral = "admin_users = [\"admin\"]\nstats_users = [\"watcher\"]\n";
// The console's users: an admin and a stats user (kGeneral names them).
const char* kConsoleUsers = R"(
[[users]]
name = "admin"
password = "adminpw"

[[users]]
name = "watcher"
password = "watchpw"
)";

std::string pools(int pool_size, int http_port, bool cache = true) {
  std::string s = std::string(kConsoleUsers) + R"(
[clusters.pgr]
protocol = "postgres"
primary = ")" + pg_host() + ":" + std::to_string(pg_port()) +
                  "\"\nreplicas = [\"127.0.0.1:" + std::to_string(pg_replica_port()) + R"("]
health_check_period = "100ms"

[[pools]]
database = "app"
cluster = "pg"
pool_size = )" + std::to_string(pool_size) + R"(

[[pools]]
database = "app2"
cluster = "pgr"
server_database = "app"
pool_size = 4

[[pools]]
database = "app"
cluster = "my"
pool_size = 3
)";
  if (http_port) s += "\n[http]\nlisten = \"127.0.0.1:" + std::to_string(http_port) + "\"\n";
  if (cache) s += "\n[cache]\nmode = \"all\"\n";
  return s;
}

// A result set by column name.
struct Table {
  std::vector<std::string> names;
  std::vector<Oid> types;
  std::vector<std::map<std::string, std::optional<std::string>>> rows;
  std::string error;  // SQLSTATE when the command failed
  std::string message;
  std::string tag;
  std::optional<std::string> at(std::size_t row, const std::string& col) const { return rows.at(row).at(col); }
  Oid type(const std::string& col) const {
    for (std::size_t i = 0; i < names.size(); ++i)
      if (names[i] == col) return types[i];
    return 0;
  }
  // The first row whose `col` equals `value`, or -1.
  int find(const std::string& col, const std::string& value) const {
    for (std::size_t i = 0; i < rows.size(); ++i)
      if (rows[i].at(col) == value) return static_cast<int>(i);
    return -1;
  }
};

Table collect(PGresult* r) {
  Table t;
  auto st = PQresultStatus(r);
  if (st == PGRES_FATAL_ERROR) {
    const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    t.error = code ? code : "?";
    t.message = PQresultErrorMessage(r);
  }
  t.tag = PQcmdStatus(r);
  for (int c = 0; c < PQnfields(r); ++c) {
    t.names.push_back(PQfname(r, c));
    t.types.push_back(PQftype(r, c));
  }
  for (int i = 0; i < PQntuples(r); ++i) {
    std::map<std::string, std::optional<std::string>> row;
    for (int c = 0; c < PQnfields(r); ++c)
      row[PQfname(r, c)] = PQgetisnull(r, i, c) ? std::nullopt : std::optional<std::string>(PQgetvalue(r, i, c));
    t.rows.push_back(std::move(row));
  }
  PQclear(r);
  return t;
}

Table query(Conn& c, const std::string& sql) { return collect(PQexec(c.c, sql.c_str())); }

std::string admin_conninfo(const SluiceProcess& s, const std::string& user = "admin", const std::string& pw = "adminpw") {
  return "host=127.0.0.1 port=" + std::to_string(s.port()) + " user=" + user + " password=" + pw +
         " dbname=sluice sslmode=disable application_name=admin_test";
}

int local_port(PGconn* c) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(PQsocket(c), reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

long num(const std::optional<std::string>& v) { return v ? std::stol(*v) : -1; }

int http_port_for(const SluiceProcess& s) { return s.port() + 700; }


}  // namespace

TEST_CASE("console over libpq: SHOW POOLS / CLIENTS / SERVERS / STATS / BACKENDS / CACHE / CONFIG / VERSION") {
  SluiceProcess s(pools(5, 0, true), kGeneral);
  Conn adm(admin_conninfo(s));
  REQUIRE(adm.ok());

  Conn app(s.conninfo());
  REQUIRE(app.ok());
  REQUIRE(app.scalar("SELECT 1") == "1");

  // SHOW POOLS: the pool the test used, typed columns, the configured size.
  auto p = query(adm, "SHOW POOLS");
  REQUIRE(p.error.empty());
  for (auto* col : {"database", "user", "cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used", "sv_login",
                    "maxwait", "maxwait_us", "pool_mode", "sv_moved"})
    CHECK(p.type(col) != 0);
  CHECK(p.type("database") == 25);
  CHECK(p.type("cl_active") == 20);
  CHECK(p.type("paused") == 16);
  int row = -1;
  for (std::size_t i = 0; i < p.rows.size(); ++i)
    if (p.at(i, "database") == "app" && p.at(i, "protocol") == "postgres") row = static_cast<int>(i);
  REQUIRE(row >= 0);
  CHECK(p.at(row, "user") == "app");
  CHECK(p.at(row, "pool_size") == "5");
  CHECK(p.at(row, "pool_mode") == "transaction");
  CHECK(num(p.at(row, "cl_active")) == 1);
  CHECK(num(p.at(row, "sv_idle")) + num(p.at(row, "sv_active")) >= 1);
  CHECK(p.tag == "SHOW");

  // SHOW CLIENTS lists this very connection (matched by its local port), and the app client.
  auto c = query(adm, "SHOW CLIENTS");
  REQUIRE(c.error.empty());
  CHECK(c.type("connect_time") == 1114);
  CHECK(c.type("port") == 20);
  int me = c.find("port", std::to_string(local_port(adm.c)));
  REQUIRE(me >= 0);
  CHECK(c.at(me, "user") == "admin");
  CHECK(c.at(me, "database") == "sluice");
  CHECK(c.at(me, "state") == "active");
  CHECK(c.at(me, "application_name") == "admin_test");
  CHECK(c.at(me, "addr") == "127.0.0.1");
  int appc = c.find("port", std::to_string(local_port(app.c)));
  REQUIRE(appc >= 0);
  CHECK(c.at(appc, "user") == "app");
  std::string app_id = *c.at(appc, "id");
  // The session hands its server connection back just after the client has its answer.
  CHECK(eventually([&] {
    auto cc = query(adm, "SHOW CLIENTS");
    int i = cc.find("id", app_id);
    return i >= 0 && cc.at(i, "state") == "idle" && !cc.at(i, "link");
  }));
  CHECK(query(adm, "SHOW CLIENTS LIKE 'adm%'").rows.size() == 1);

  // SHOW SERVERS: while the app client is in a transaction its server connection is linked.
  REQUIRE(app.exec("BEGIN"));
  REQUIRE(app.scalar("SELECT 2") == "2");
  auto sv = query(adm, "SHOW SERVERS");
  REQUIRE(sv.error.empty());
  int linked = sv.find("link", app_id);
  REQUIRE(linked >= 0);
  CHECK(sv.at(linked, "state") == "active");
  CHECK(sv.at(linked, "port") == std::to_string(pg_port()));
  CHECK(num(sv.at(linked, "remote_pid")) > 0);
  auto backend_pid = app.scalar("SELECT pg_backend_pid()");
  CHECK(sv.at(linked, "remote_pid") == backend_pid);
  c = query(adm, "SHOW CLIENTS");
  CHECK(c.at(c.find("id", app_id), "state") == "active");
  REQUIRE(app.exec("COMMIT"));
  CHECK(eventually([&] { return query(adm, "SHOW SERVERS").find("link", app_id) < 0; }));

  // SHOW STATS counts exactly the queries this test made.
  auto st0 = query(adm, "SHOW STATS");
  REQUIRE(st0.error.empty());
  int srow = -1;
  for (std::size_t i = 0; i < st0.rows.size(); ++i)
    if (st0.at(i, "database") == "app" && st0.at(i, "protocol") == "postgres") srow = static_cast<int>(i);
  REQUIRE(srow >= 0);
  long q0 = num(st0.at(srow, "total_query_count")), x0 = num(st0.at(srow, "total_xact_count"));
  long recv0 = num(st0.at(srow, "total_received"));
  for (int i = 0; i < 25; ++i) REQUIRE(app.scalar("SELECT " + std::to_string(i) + " + 0 AS n") == std::to_string(i));
  REQUIRE(app.exec("BEGIN"));
  REQUIRE(app.exec("SELECT 1"));
  REQUIRE(app.exec("COMMIT"));
  auto st1 = query(adm, "SHOW STATS LIKE 'app'");
  REQUIRE(st1.rows.size() >= 1);
  srow = -1;
  for (std::size_t i = 0; i < st1.rows.size(); ++i)
    if (st1.at(i, "protocol") == "postgres") srow = static_cast<int>(i);
  REQUIRE(srow >= 0);
  CHECK(num(st1.at(srow, "total_query_count")) - q0 == 28);
  CHECK(num(st1.at(srow, "total_xact_count")) - x0 == 26);
  CHECK(num(st1.at(srow, "total_received")) > recv0);
  CHECK(num(st1.at(srow, "total_query_time")) > 0);
  CHECK(st1.type("avg_query_time") == 701);

  // SHOW BACKENDS: both members of the replicated cluster, healthy, with their roles.
  auto b = query(adm, "SHOW BACKENDS");
  REQUIRE(b.error.empty());
  int rep = b.find("member", "127.0.0.1:" + std::to_string(pg_replica_port()));
  REQUIRE(rep >= 0);
  CHECK(b.at(rep, "cluster") == "pgr");
  CHECK(eventually([&] {
    auto bb = query(adm, "SHOW BACKENDS");
    int r = bb.find("member", "127.0.0.1:" + std::to_string(pg_replica_port()));
    return r >= 0 && bb.at(r, "healthy") == "t" && bb.at(r, "role") == "replica";
  }));
  CHECK(b.type("healthy") == 16);

  // SHOW CACHE: two identical reads make a hit.
  REQUIRE(app.scalar("SELECT 'cached' AS v") == "cached");
  REQUIRE(app.scalar("SELECT 'cached' AS v") == "cached");
  auto ca = query(adm, "SHOW CACHE");
  REQUIRE(ca.error.empty());
  int all = ca.find("pool", "*");
  REQUIRE(all >= 0);
  CHECK(num(ca.at(all, "hits")) >= 1);
  CHECK(num(ca.at(all, "entries")) >= 1);
  CHECK(ca.at(all, "enabled") == "t");

  // SHOW CONFIG / VERSION / HELP / DATABASES.
  auto cf = query(adm, "SHOW CONFIG LIKE 'query_wait%'");
  REQUIRE(cf.rows.size() == 1);
  CHECK(cf.at(0, "value") == "120s");
  CHECK(cf.at(0, "changeable") == "t");
  auto v = query(adm, "SHOW VERSION");
  REQUIRE(v.rows.size() == 1);
  CHECK(v.at(0, "version")->rfind("Sluice ", 0) == 0);
  CHECK(query(adm, "SHOW HELP").rows.size() >= 15);
  // SHOW MEMORY: the kernel's and the allocator's figures, in bytes.
  auto mem = query(adm, "SHOW MEMORY");
  auto bytes = [&](const std::string& name) -> long long {
    for (std::size_t i = 0; i < mem.rows.size(); ++i)
      if (mem.at(i, "name") == name) return std::stoll(*mem.at(i, "bytes"));
    return -1;
  };
  CHECK(bytes("rss") > 1 << 20);
  CHECK(bytes("heap_in_use") > 64 << 10);
  CHECK(bytes("heap_free") >= 0);
  CHECK(bytes("heap_in_use") < bytes("rss") + bytes("heap_mmapped"));
  CHECK(query(adm, "SHOW MEMORY LIKE 'heap%'").rows.size() == 5);
  auto dbs = query(adm, "SHOW DATABASES LIKE 'app_'");
  REQUIRE(dbs.rows.size() == 1);
  CHECK(dbs.at(0, "cluster") == "pgr");
  CHECK(query(adm, "SHOW NONSENSE").error == "42601");
}

TEST_CASE("SHOW STATS times each query from its request to its answer, on both protocols") {
  // Query times come from the worker's loop clock (observe/loop_clock.hpp), read when the
  // reactor's epoll_wait comes back: a query that sleeps 300 ms counts at least that long, and a
  // quick one after the worker slept a second with nothing to do counts well under it.
  SluiceProcess s(pools(5, 0, false), kGeneral);
  Conn adm(admin_conninfo(s));
  REQUIRE(adm.ok());
  Conn app(s.conninfo());
  REQUIRE(app.ok());
  MyConn my(s.my_port(), "app", "app", "app");
  REQUIRE(my.ok);
  auto totals = [&](const std::string& protocol) {
    auto st = query(adm, "SHOW STATS LIKE 'app'");
    for (std::size_t i = 0; i < st.rows.size(); ++i)
      if (st.at(i, "protocol") == protocol)
        return std::pair{num(st.at(i, "total_query_time")), num(st.at(i, "total_query_count"))};
    return std::pair{-1L, -1L};
  };
  for (const std::string protocol : {"postgres", "mysql"}) {
    INFO(protocol);
    auto ask = [&](const std::string& pg_sql, const std::string& my_sql) {
      return protocol == "postgres" ? app.scalar(pg_sql) : my.scalar(my_sql);
    };
    REQUIRE(ask("SELECT 1", "SELECT 1") == "1");
    auto [t0, n0] = totals(protocol);
    REQUIRE(ask("SELECT 1 FROM pg_sleep(0.3)", "SELECT 1 FROM (SELECT SLEEP(0.3)) AS s") == "1");
    auto [t1, n1] = totals(protocol);
    CHECK(n1 - n0 == 1);
    CHECK(t1 - t0 >= 300000);
    CHECK(t1 - t0 < 3000000);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    REQUIRE(ask("SELECT 2", "SELECT 2") == "2");
    auto [t2, n2] = totals(protocol);
    CHECK(n2 - n1 == 1);
    CHECK(t2 - t1 < 500000);
  }
}

TEST_CASE("extended protocol on the console: prepared SHOW with binary results; Describe before Execute") {
  SluiceProcess s(pools(6, 0, false), kGeneral);
  Conn adm(admin_conninfo(s));
  REQUIRE(adm.ok());
  Conn app(s.conninfo());
  REQUIRE(app.scalar("SELECT 1") == "1");
  PGresult* r = PQprepare(adm.c, "pools", "SHOW POOLS", 0, nullptr);
  REQUIRE(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  r = PQdescribePrepared(adm.c, "pools");
  REQUIRE(PQresultStatus(r) == PGRES_COMMAND_OK);
  CHECK(PQnfields(r) >= 11);
  CHECK(std::string(PQfname(r, 0)) == "database");
  PQclear(r);
  r = PQexecPrepared(adm.c, "pools", 0, nullptr, nullptr, nullptr, 1);  // binary results
  REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
  int size_col = PQfnumber(r, "pool_size"), db_col = PQfnumber(r, "database"), paused_col = PQfnumber(r, "paused");
  bool found = false;
  for (int i = 0; i < PQntuples(r); ++i) {
    if (std::string(PQgetvalue(r, i, db_col)) != "app") continue;
    REQUIRE(PQgetlength(r, i, size_col) == 8);
    auto* p = reinterpret_cast<const unsigned char*>(PQgetvalue(r, i, size_col));
    std::uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v = v << 8 | p[k];
    CHECK(v == 6);
    CHECK(PQgetlength(r, i, paused_col) == 1);
    found = true;
  }
  CHECK(found);
  PQclear(r);
  // Parameterless PQexecParams (always extended protocol), text results.
  auto t = collect(PQexecParams(adm.c, "SHOW VERSION", 0, nullptr, nullptr, nullptr, nullptr, 0));
  REQUIRE(t.rows.size() == 1);
  CHECK(t.at(0, "version")->rfind("Sluice", 0) == 0);
  // Several statements in one simple Query: each answered in order (PQexec keeps the last).
  t = query(adm, "SHOW VERSION; SHOW DATABASES LIKE 'app2'");
  REQUIRE(t.rows.size() == 1);
  CHECK(t.at(0, "cluster") == "pgr");
  CHECK(query(adm, "SHOW NOTHING; SHOW VERSION").error == "42601");  // stops at the first error
  // An error inside an extended batch, then the connection still works.
  t = collect(PQexecParams(adm.c, "SHOW NOTHING", 0, nullptr, nullptr, nullptr, nullptr, 0));
  CHECK(t.error == "42601");
  CHECK(adm.scalar("SHOW VERSION").rfind("Sluice", 0) == 0);
}

TEST_CASE("access: stats users may only SHOW; anyone else is refused on both protocols") {
  SluiceProcess s(pools(5, 0, false), kGeneral);
  Conn w(admin_conninfo(s, "watcher", "watchpw"));
  REQUIRE(w.ok());
  CHECK(query(w, "SHOW POOLS").error.empty());
  auto r = query(w, "RELOAD");
  CHECK(r.error == "42501");
  CHECK(query(w, "PAUSE").error == "42501");
  CHECK(query(w, "SHUTDOWN").error == "42501");
  Conn app(admin_conninfo(s, "app", "app"));
  CHECK(!app.ok());
  CHECK(app.error().find("permission denied for database \"sluice\"") != std::string::npos);
  Conn wrong(admin_conninfo(s, "admin", "nope"));
  CHECK(!wrong.ok());
  CHECK(wrong.error().find("password authentication failed") != std::string::npos);

  MyConn mapp(s.my_port(), "app", "app", "sluice");
  CHECK(!mapp.ok);
  CHECK(mysql_errno(mapp.m) == 1044);
  CHECK(std::string(mysql_error(mapp.m)).find("Access denied for user 'app'") != std::string::npos);
  MyConn mw(s.my_port(), "watcher", "watchpw", "sluice");
  REQUIRE(mw.ok);
  CHECK(mysql_query(mw.m, "SHOW CLIENTS") == 0);
  mysql_free_result(mysql_store_result(mw.m));
  CHECK(mysql_query(mw.m, "RELOAD") != 0);
  CHECK(mysql_errno(mw.m) == 1227);
}

TEST_CASE("console over Connector/C: typed columns, own connection listed, prepared statements") {
  SluiceProcess s(pools(5, 0, false), kGeneral);
  MyConn app(s.my_port(), "app", "app", "app");
  REQUIRE(app.ok);
  REQUIRE(mysql_query(app.m, "SELECT 1") == 0);
  mysql_free_result(mysql_store_result(app.m));
  MyConn adm(s.my_port(), "admin", "adminpw", "sluice");
  REQUIRE(adm.ok);

  REQUIRE(mysql_query(adm.m, "SHOW POOLS") == 0);
  MYSQL_RES* res = mysql_store_result(adm.m);
  REQUIRE(res);
  std::map<std::string, int> idx;
  MYSQL_FIELD* f = mysql_fetch_fields(res);
  for (unsigned i = 0; i < mysql_num_fields(res); ++i) idx[f[i].name] = static_cast<int>(i);
  CHECK(f[idx["database"]].type == MYSQL_TYPE_VAR_STRING);
  CHECK(f[idx["cl_active"]].type == MYSQL_TYPE_LONGLONG);
  CHECK(f[idx["paused"]].type == MYSQL_TYPE_TINY);
  bool found = false;
  while (MYSQL_ROW row = mysql_fetch_row(res)) {
    if (std::string(row[idx["protocol"]]) == "mysql" && std::string(row[idx["database"]]) == "app") {
      CHECK(std::string(row[idx["pool_size"]]) == "3");
      CHECK(std::string(row[idx["cl_active"]]) == "1");
      found = true;
    }
  }
  CHECK(found);
  mysql_free_result(res);

  // SHOW CLIENTS: the connection id the server handshake gave us is the console's client id.
  std::string me = std::to_string(mysql_thread_id(adm.m));
  REQUIRE(mysql_query(adm.m, ("SHOW CLIENTS LIKE 'admin'")) == 0);
  res = mysql_store_result(adm.m);
  f = mysql_fetch_fields(res);
  idx.clear();
  for (unsigned i = 0; i < mysql_num_fields(res); ++i) idx[f[i].name] = static_cast<int>(i);
  CHECK(f[idx["connect_time"]].type == MYSQL_TYPE_DATETIME);
  found = false;
  while (MYSQL_ROW row = mysql_fetch_row(res))
    if (std::string(row[idx["id"]]) == me) {
      found = true;
      CHECK(std::string(row[idx["protocol"]]) == "mysql");
      CHECK(std::string(row[idx["database"]]) == "sluice");
    }
  CHECK(found);
  mysql_free_result(res);

  // Prepared statement: SHOW STATS through the binary protocol counts this test's queries.
  for (int i = 0; i < 10; ++i) {
    REQUIRE(mysql_query(app.m, "SELECT 1") == 0);
    mysql_free_result(mysql_store_result(app.m));
  }
  MYSQL_STMT* st = mysql_stmt_init(adm.m);
  const char* sql = "SHOW STATS LIKE 'app'";
  REQUIRE(mysql_stmt_prepare(st, sql, std::strlen(sql)) == 0);
  CHECK(mysql_stmt_field_count(st) == 16);
  REQUIRE(mysql_stmt_execute(st) == 0);
  // Columns: database, protocol (text), seven totals (BIGINT), seven averages (DOUBLE).
  char db[64] = {0}, proto[64] = {0};
  unsigned long db_len = 0, proto_len = 0;
  long long ints[7] = {0};
  double avgs[7] = {0};
  std::vector<MYSQL_BIND> binds(16);
  std::memset(binds.data(), 0, sizeof(MYSQL_BIND) * 16);
  binds[0].buffer_type = MYSQL_TYPE_STRING;
  binds[0].buffer = db;
  binds[0].buffer_length = sizeof db;
  binds[0].length = &db_len;
  binds[1].buffer_type = MYSQL_TYPE_STRING;
  binds[1].buffer = proto;
  binds[1].buffer_length = sizeof proto;
  binds[1].length = &proto_len;
  for (std::size_t i = 0; i < 7; ++i) {
    binds[2 + i].buffer_type = MYSQL_TYPE_LONGLONG;
    binds[2 + i].buffer = &ints[i];
    binds[9 + i].buffer_type = MYSQL_TYPE_DOUBLE;
    binds[9 + i].buffer = &avgs[i];
  }
  long long& xacts = ints[0];
  long long& queries = ints[1];
  REQUIRE(mysql_stmt_bind_result(st, binds.data()) == 0);
  REQUIRE(mysql_stmt_store_result(st) == 0);
  found = false;
  while (mysql_stmt_fetch(st) == 0)
    if (std::string(proto, proto_len) == "mysql") {
      found = true;
      CHECK(std::string(db, db_len) == "app");
      CHECK(queries >= 10);  // 11 sent; the last may be counted a moment after its answer
      CHECK(xacts >= 10);
    }
  CHECK(found);
  mysql_stmt_close(st);
  // The console refuses unknown commands with a syntax error.
  CHECK(mysql_query(adm.m, "SHOW NONSENSE") != 0);
  CHECK(mysql_errno(adm.m) == 1064);
}

TEST_CASE("RELOAD applies a new pool_size live; a broken file is rejected and the old config keeps serving") {
  SluiceProcess s(pools(5, 0, false), kGeneral);
  Conn adm(admin_conninfo(s));
  REQUIRE(adm.ok());
  Conn app(s.conninfo());
  REQUIRE(app.scalar("SELECT 1") == "1");
  auto size_of = [&]() -> std::string {
    auto p = query(adm, "SHOW POOLS");
    for (std::size_t i = 0; i < p.rows.size(); ++i)
      if (p.at(i, "database") == "app" && p.at(i, "protocol") == "postgres") return *p.at(i, "pool_size");
    return "?";
  };
  CHECK(size_of() == "5");
  Conn ops_before(admin_conninfo(s, "ops", "opspw"));
  CHECK(!ops_before.ok());
  s.rewrite(pools(9, 0, false) + "\n[[users]]\nname = \"ops\"\npassword = \"opspw\"\n",
            "admin_users = [\"admin\", \"ops\"]\nstats_users = [\"watcher\"]\n");
  auto r = query(adm, "RELOAD");
  CHECK(r.error.empty());
  CHECK(r.tag == "RELOAD");
  CHECK(size_of() == "9");
  CHECK(app.scalar("SELECT 3") == "3");  // the client connected before the reload stays
  Conn ops(admin_conninfo(s, "ops", "opspw"));  // a user added by the reload
  CHECK(ops.ok());
  CHECK(query(ops, "SHOW POOLS").error.empty());

  // SIGHUP does the same.
  s.reload(pools(11, 0, false), kGeneral);
  CHECK(eventually([&] { return size_of() == "11"; }));

  // A broken file: a clear error to the caller, a log line, the running config untouched.
  s.rewrite_raw("[general]\nworkers = 2\n[[pools]]\ndatabase = \"app\"\ncluster = \"nowhere\"\n");
  r = query(adm, "RELOAD");
  CHECK(r.error == "F0000");
  CHECK(r.message.find("RELOAD rejected") != std::string::npos);
  CHECK(r.message.find("nowhere") != std::string::npos);
  CHECK(s.wait_for_log("reload rejected, keeping the running configuration", 2000));
  CHECK(size_of() == "11");
  CHECK(app.scalar("SELECT 4") == "4");
  Conn fresh(s.conninfo());
  CHECK(fresh.ok());
  CHECK(fresh.scalar("SELECT 5") == "5");

  // A new listen address: bound on RELOAD, the old one closed, connected clients stay.
  int moved = s.port() + 600;
  s.set_pg_listen_port(moved);
  s.rewrite(pools(11, 0, false), kGeneral);
  r = query(adm, "RELOAD");
  CHECK(r.error.empty());
  Conn on_new("host=127.0.0.1 port=" + std::to_string(moved) + " user=app password=app dbname=app sslmode=disable");
  CHECK(on_new.ok());
  CHECK(on_new.scalar("SELECT 6") == "6");
  Conn on_old(s.conninfo());
  CHECK(!on_old.ok());
  CHECK(app.scalar("SELECT 7") == "7");
  CHECK(adm.scalar("SHOW VERSION").rfind("Sluice", 0) == 0);
  // An address that cannot be bound (taken by the MySQL listener) rejects the whole reload.
  s.set_pg_listen_port(s.my_port());
  s.rewrite(pools(13, 0, false), kGeneral);
  r = query(adm, "RELOAD");
  CHECK(r.error == "F0000");
  CHECK(r.message.find("cannot listen") != std::string::npos);
  CHECK(size_of() == "11");
  CHECK(on_new.scalar("SELECT 8") == "8");
}

TEST_CASE("PAUSE, restart the PostgreSQL primary, RESUME: a client querying throughout sees no error") {
  SluiceProcess s(pools(3, 0, false), kGeneral);
  Conn adm(admin_conninfo(s));
  REQUIRE(adm.ok());
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, errors{0}, after_resume{0};
  std::atomic<bool> resumed{false};
  std::string last_error;
  std::thread loop([&] {
    Conn c(s.conninfo());
    if (!c.ok()) {
      ++errors;
      return;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!stop && std::chrono::steady_clock::now() < deadline) {
      auto v = c.scalar("SELECT count(*) FROM pg_class WHERE oid > 0");
      if (v.empty() || v.rfind("ERROR", 0) == 0) {
        ++errors;
        last_error = v + " " + c.error();
        if (c.error().find("connection") != std::string::npos) break;
      } else {
        ++ok;
        if (resumed) ++after_resume;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  REQUIRE(eventually([&] { return ok.load() > 20; }));
  auto r = query(adm, "PAUSE app");
  REQUIRE(r.error.empty());
  auto p = query(adm, "SHOW POOLS LIKE 'app'");
  REQUIRE(!p.rows.empty());
  CHECK(p.at(0, "paused") == "t");
  CHECK(num(p.at(0, "sv_active")) == 0);
  CHECK(num(p.at(0, "sv_idle")) == 0);  // PAUSE closed them: the server may go away
  int before = ok.load();
  std::string script = env_or("SLUICE_SANDBOX_SCRIPT", "");
  REQUIRE(!script.empty());
  REQUIRE(std::system((script + " restart-primary >/dev/null").c_str()) == 0);
  CHECK(ok.load() <= before + 1);  // held while paused
  auto cl = query(adm, "SHOW POOLS LIKE 'app'");
  CHECK(num(cl.at(0, "cl_waiting")) == 1);
  resumed = true;
  REQUIRE(query(adm, "RESUME app").error.empty());
  CHECK(eventually([&] { return after_resume.load() > 20; }, 10000));
  stop = true;
  loop.join();
  CHECK(errors.load() == 0);
  if (errors.load()) MESSAGE("last error: ", last_error);
  CHECK(query(adm, "RESUME app").error == "55000");  // not paused any more
}

TEST_CASE("DISABLE / ENABLE, KILL, DRAIN / UNDRAIN, CACHE PURGE, SET, SHUTDOWN WAIT") {
  SluiceProcess s(pools(5, 0, true), kGeneral);
  Conn adm(admin_conninfo(s));
  REQUIRE(adm.ok());
  // The harness starts Sluice at log_level "warn": connection lines need "info", set live.
  REQUIRE(query(adm, "SET log_level = 'info'").error.empty());

  // DISABLE: new connections refused; existing ones keep working; ENABLE restores.
  Conn before(s.conninfo());
  REQUIRE(before.ok());
  REQUIRE(query(adm, "DISABLE app").error.empty());
  Conn refused(s.conninfo());
  CHECK(!refused.ok());
  CHECK(refused.error().find("not currently accepting connections") != std::string::npos);
  CHECK(before.scalar("SELECT 1") == "1");
  CHECK(query(adm, "DISABLE nosuchdb").error == "3D000");
  REQUIRE(query(adm, "ENABLE app").error.empty());
  Conn after(s.conninfo());
  CHECK(after.ok());

  // KILL: the client gets a FATAL and its connection ends.
  auto c = query(adm, "SHOW CLIENTS");
  int row = c.find("port", std::to_string(local_port(before.c)));
  REQUIRE(row >= 0);
  REQUIRE(query(adm, "KILL " + *c.at(row, "id")).error.empty());
  CHECK(eventually([&] { return before.scalar("SELECT 1") != "1"; }));
  CHECK(PQstatus(before.c) == CONNECTION_BAD);
  CHECK(std::string(PQerrorMessage(before.c)).find("administrator") != std::string::npos);
  CHECK(query(adm, "KILL 999999").error == "42704");
  CHECK(after.scalar("SELECT 1") == "1");  // others untouched

  // DRAIN the replica: reads of the replicated pool go to the primary; UNDRAIN: back.
  std::string replica = "127.0.0.1:" + std::to_string(pg_replica_port());
  Conn r(s.conninfo("app", "app", "app2"));
  REQUIRE(r.ok());
  int n = 0;  // distinct texts: the cache (mode "all") must not answer these
  auto in_recovery = [&] { return r.scalar("SELECT pg_is_in_recovery(), " + std::to_string(++n)); };
  REQUIRE(eventually([&] { return in_recovery() == "t"; }));
  REQUIRE(query(adm, "DRAIN " + replica).error.empty());
  auto b = query(adm, "SHOW BACKENDS");
  CHECK(b.at(b.find("member", replica), "drained") == "t");
  for (int i = 0; i < 20; ++i) CHECK(in_recovery() == "f");
  REQUIRE(query(adm, "UNDRAIN " + replica).error.empty());
  CHECK(eventually([&] { return in_recovery() == "t"; }));
  CHECK(query(adm, "DRAIN 10.9.9.9:1").error == "42704");

  // CACHE PURGE: the cache empties.
  REQUIRE(after.scalar("SELECT 'x' || 'y'") == "xy");
  REQUIRE(after.scalar("SELECT 'x' || 'y'") == "xy");
  auto ca = query(adm, "SHOW CACHE LIKE '*'");
  REQUIRE(ca.rows.size() == 1);
  CHECK(num(ca.at(0, "entries")) >= 1);
  REQUIRE(query(adm, "CACHE PURGE").error.empty());
  ca = query(adm, "SHOW CACHE LIKE '*'");
  CHECK(num(ca.at(0, "entries")) == 0);

  // SET: a run-time setting changes (SHOW CONFIG shows it); read-only and bad values refused.
  REQUIRE(query(adm, "SET query_wait_timeout = '7s'").error.empty());
  CHECK(query(adm, "SHOW CONFIG LIKE 'query_wait_timeout'").at(0, "value") == "7s");
  REQUIRE(query(adm, "SET log_level = debug").error.empty());
  CHECK(query(adm, "SHOW CONFIG LIKE 'log_level'").at(0, "value") == "debug");
  CHECK(query(adm, "SET workers = 4").error == "42704");
  CHECK(query(adm, "SET query_wait_timeout = 'soon'").error == "22023");
  CHECK(after.scalar("SELECT 1") == "1");

  // Logs: connection start and end with address, user, database and reason; no password.
  CHECK(s.wait_for_log("connected: user app database app", 2000));
  CHECK(s.wait_for_log("killed by the administrator", 2000));
  std::ifstream lf(s.log_path());
  std::string log((std::istreambuf_iterator<char>(lf)), std::istreambuf_iterator<char>());
  CHECK(log.find("adminpw") == std::string::npos);
  CHECK(log.find("password = ") == std::string::npos);

  // SHUTDOWN WAIT: Sluice stops by itself once clients are gone.
  REQUIRE(query(adm, "SHUTDOWN WAIT").error.empty());
  CHECK(s.wait_exit(15000) == 0);
}

TEST_CASE("/metrics passes promtool check metrics and counts what happened; /healthz answers") {
  SluiceProcess s(pools(5, 0, true), kGeneral);
  s.rewrite(pools(5, http_port_for(s), true), kGeneral);
  s.reload(pools(5, http_port_for(s), true), kGeneral);
  REQUIRE(eventually([&] { return http_get(http_port_for(s), "/healthz").first == 200; }));
  Conn app(s.conninfo());
  for (int i = 0; i < 12; ++i) REQUIRE(app.scalar("SELECT " + std::to_string(i)) == std::to_string(i));
  Conn r(s.conninfo("app", "app", "app2"));
  REQUIRE(r.scalar("SELECT 1") == "1");
  MyConn my(s.my_port(), "app", "app", "app");
  REQUIRE(my.ok);
  REQUIRE(mysql_query(my.m, "SELECT 1") == 0);
  mysql_free_result(mysql_store_result(my.m));

  // A MySQL command is counted right after its answer is sent: give it a moment.
  CHECK(eventually([&] {
    return metric(http_get(http_port_for(s), "/metrics").second, "sluice_queries_total{protocol=\"mysql\",database=\"app\"}") >= 1;
  }));
  auto [status, body] = http_get(http_port_for(s), "/metrics");
  REQUIRE(status == 200);
  CHECK(metric(body, "sluice_queries_total{protocol=\"postgres\",database=\"app\"}") >= 12);
  CHECK(metric(body, "sluice_queries_total{protocol=\"mysql\",database=\"app\"}") >= 1);
  CHECK(metric(body, "sluice_client_connections{protocol=\"postgres\",database=\"app\",state=\"idle\"}") >= 1);
  CHECK(metric(body, "sluice_query_duration_seconds_count{protocol=\"postgres\",database=\"app\"}") >= 12);
  CHECK(body.find("sluice_query_duration_seconds_bucket{protocol=\"postgres\",database=\"app\",le=\"+Inf\"}") != std::string::npos);
  CHECK(metric(body, "sluice_backend_up{cluster=\"pgr\",member=\"127.0.0.1:" + std::to_string(pg_replica_port()) + "\"}") >= 0);
  CHECK(body.find("sluice_cache_hits_total") != std::string::npos);
  CHECK(body.find("sluice_server_connections{") != std::string::npos);
  CHECK(http_get(http_port_for(s), "/nothing").first == 404);
  // Every cluster has a member its health checks reach: ready.
  CHECK(eventually([&] { return http_get(http_port_for(s), "/readyz").first == 200; }));

  // Every metric family the Grafana dashboard and the alert rules name is one Sluice exports.
  std::string repo(__FILE__);
  repo.resize(repo.rfind("/integration/"));
  std::set<std::string> named;
  for (const char* f : {"/docs/monitoring/sluice-dashboard.json", "/docs/monitoring/sluice-alerts.yml"}) {
    std::ifstream in(repo + f);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    INFO("file: ", repo + f);
    REQUIRE(!text.empty());
    for (std::size_t at = text.find("sluice_"); at != std::string::npos; at = text.find("sluice_", at + 1)) {
      if (at > 0 && (std::isalnum(static_cast<unsigned char>(text[at - 1])) || text[at - 1] == '_')) continue;
      std::size_t end = at;
      while (end < text.size() && (std::islower(static_cast<unsigned char>(text[end])) || text[end] == '_')) ++end;
      std::string name = text.substr(at, end - at);
      for (const char* suffix : {"_bucket", "_count", "_sum"})
        if (name.size() > std::strlen(suffix) && name.ends_with(suffix) &&
            body.find("# TYPE " + name.substr(0, name.size() - std::strlen(suffix)) + " histogram") !=
                std::string::npos)
          name.resize(name.size() - std::strlen(suffix));
      named.insert(name);
    }
  }
  CHECK(named.size() >= 15);
  for (const auto& name : named) {
    // The change stream's families exist only with [cache] invalidation = "stream".
    if (name.rfind("sluice_cache_stream_", 0) == 0) continue;
    INFO("metric named in docs/monitoring: ", name);
    CHECK(body.find("# TYPE " + name + " ") != std::string::npos);
  }

  // The real Prometheus text-format checker (Debian's prometheus package).
  std::string promtool = env_or("SLUICE_PROMTOOL", "promtool");
  std::string file = env_or("TMPDIR", "/tmp") + "/sluice-metrics-" + std::to_string(::getpid()) + ".txt";
  std::ofstream(file) << body;
  std::string cmd = promtool + " check metrics < " + file + " > " + file + ".out 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream out(file + ".out");
  std::string report((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
  INFO("promtool: ", report);
  CHECK(rc == 0);
  CHECK(report.empty());
  std::remove(file.c_str());
  std::remove((file + ".out").c_str());
}

TEST_CASE("/readyz: not ready while a cluster has no reachable member, alive all the same") {
  auto closed_port = [] {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    ::close(fd);
    return std::to_string(ntohs(a.sin_port));
  };
  // "gone": a primary and a replica on closed ports (health-checked). "lone": one member on a
  // closed port (no health checks: its pool's connection attempts tell).
  const std::string gone = closed_port(), gone_replica = closed_port(), lone = closed_port();
  auto config = [&](int http) {
    return pools(5, http, false) + "\n[clusters.gone]\nprotocol = \"postgres\"\nprimary = \"127.0.0.1:" + gone +
           "\"\nreplicas = [\"127.0.0.1:" + gone_replica +
           "\"]\nhealth_check_period = \"100ms\"\n\n[[pools]]\ndatabase = \"app3\"\ncluster = \"gone\"\n" +
           "\n[clusters.lone]\nprotocol = \"postgres\"\nprimary = \"127.0.0.1:" + lone +
           "\"\n\n[[pools]]\ndatabase = \"app4\"\ncluster = \"lone\"\n";
  };
  SluiceProcess s(config(0), kGeneral);
  s.rewrite(config(http_port_for(s)), kGeneral);
  s.reload(config(http_port_for(s)), kGeneral);
  REQUIRE(eventually([&] { return http_get(http_port_for(s), "/healthz").first == 200; }));
  auto readyz_says = [&](const std::string& expected, const std::string& absent) {
    std::string last;
    bool seen = eventually([&] {
      auto [status, body] = http_get(http_port_for(s), "/readyz");
      last = std::to_string(status) + " " + body;
      return status == 503 && body.find(expected) != std::string::npos && body.find(absent) == std::string::npos;
    });
    INFO("/readyz said: ", last);
    CHECK(seen);
  };
  // The health checks find neither member of "gone"; "lone" is not known to be down yet.
  readyz_says("cluster gone: no member reachable (127.0.0.1:" + gone + ", 127.0.0.1:" + gone_replica + ")",
              "cluster lone");
  // A client of app4 fails to get a server connection: now "lone" is known to be down too.
  Conn lost(s.conninfo("app", "app", "app4"));
  CHECK(!lost.ok());
  readyz_says("cluster lone: no member reachable (127.0.0.1:" + lone + ")", "cluster pg:");
  Conn app(s.conninfo());
  CHECK(app.scalar("SELECT 1") == "1");  // alive and serving the rest
  // Without those clusters: ready.
  s.reload(pools(5, http_port_for(s), false), kGeneral);
  CHECK(eventually([&] { return http_get(http_port_for(s), "/readyz").first == 200; }));
}

TEST_CASE("every command through Connector/C: same columns as libpq, operator commands answer OK") {
  SluiceProcess s(pools(5, 0, true), kGeneral);
  Conn pg(admin_conninfo(s));
  REQUIRE(pg.ok());
  MyConn adm(s.my_port(), "admin", "adminpw", "sluice");
  REQUIRE(adm.ok);
  MyConn app(s.my_port(), "app", "app", "app");
  REQUIRE(app.ok);
  REQUIRE(mysql_query(app.m, "SELECT 1") == 0);
  mysql_free_result(mysql_store_result(app.m));
  for (const char* show : {"SHOW HELP", "SHOW POOLS", "SHOW CLIENTS", "SHOW SERVERS", "SHOW BACKENDS", "SHOW STATS",
                           "SHOW CACHE", "SHOW CONFIG", "SHOW DATABASES", "SHOW VERSION"}) {
    CAPTURE(show);
    auto expected = query(pg, show);
    REQUIRE(expected.error.empty());
    REQUIRE(mysql_query(adm.m, show) == 0);
    MYSQL_RES* res = mysql_store_result(adm.m);
    REQUIRE(res);
    REQUIRE(mysql_num_fields(res) == expected.names.size());
    MYSQL_FIELD* f = mysql_fetch_fields(res);
    for (unsigned i = 0; i < mysql_num_fields(res); ++i) {
      CHECK(std::string(f[i].name) == expected.names[i]);
      // Types agree: int8 <-> BIGINT, text <-> VARCHAR, bool <-> TINYINT, float8 <-> DOUBLE.
      auto t = expected.types[i];
      auto mt = f[i].type;
      CHECK(((t == 20 && mt == MYSQL_TYPE_LONGLONG) || (t == 25 && mt == MYSQL_TYPE_VAR_STRING) ||
             (t == 16 && mt == MYSQL_TYPE_TINY) || (t == 701 && mt == MYSQL_TYPE_DOUBLE) ||
             (t == 1114 && mt == MYSQL_TYPE_DATETIME)));
    }
    if (std::string(show) != "SHOW CLIENTS" && std::string(show) != "SHOW STATS" && std::string(show) != "SHOW SERVERS")
      CHECK(mysql_num_rows(res) == expected.rows.size());
    mysql_free_result(res);
  }
  auto ok = [&](const std::string& sql) {
    CAPTURE(sql);
    bool good = mysql_query(adm.m, sql.c_str()) == 0;
    if (!good) MESSAGE(std::string(mysql_error(adm.m)));
    if (MYSQL_RES* r = mysql_store_result(adm.m)) mysql_free_result(r);
    return good;
  };
  CHECK(ok("RELOAD"));
  CHECK(ok("PAUSE app"));
  CHECK(query(pg, "SHOW DATABASES").rows.size() >= 1);
  CHECK(ok("RESUME app"));
  CHECK(ok("DISABLE app"));
  MyConn refused(s.my_port(), "app", "app", "app");
  CHECK(!refused.ok);
  CHECK(ok("ENABLE app"));
  CHECK(ok("DRAIN 127.0.0.1:" + std::to_string(pg_replica_port())));
  CHECK(ok("UNDRAIN 127.0.0.1:" + std::to_string(pg_replica_port())));
  CHECK(ok("CACHE PURGE pgbench_accounts"));
  CHECK(ok("SET client_idle_timeout = '1h'"));
  CHECK(query(pg, "SHOW CONFIG LIKE 'client_idle_timeout'").at(0, "value") == "3600s");
  // KILL a MySQL client by its connection id: its next command fails, the session is gone.
  CHECK(ok("KILL " + std::to_string(mysql_thread_id(app.m))));
  CHECK(eventually([&] {
    bool failed = mysql_query(app.m, "SELECT 1") != 0;
    if (!failed) mysql_free_result(mysql_store_result(app.m));
    return failed;
  }));
  CHECK(!ok("KILL 424242"));
  CHECK(mysql_errno(adm.m) == 1094);
  // The mysql client's start-up query and a ping work on the console.
  CHECK(ok("select @@version_comment limit 1"));
  CHECK(mysql_ping(adm.m) == 0);
  CHECK(ok("SHUTDOWN WAIT"));
  CHECK(s.wait_exit(15000) == 0);
}

TEST_CASE("database = \"*\" pools: DISABLE, PAUSE and SHOW STATS name the client's database, on both protocols") {
  // The MySQL side once checked the pool's literal "*" (issue 18's drift): DISABLE app let MySQL
  // clients of app in, PAUSE app did not hold them, and their stats were filed under "*".
  const std::string star = std::string(kConsoleUsers) + R"(
[[pools]]
database = "*"
cluster = "pg"
pool_size = 3

[[pools]]
database = "*"
cluster = "my"
pool_size = 3
)";
  SluiceProcess s(star, kGeneral);
  Conn adm(admin_conninfo(s));
  REQUIRE(adm.ok());

  REQUIRE(query(adm, "DISABLE app").error.empty());
  Conn pg_refused(s.conninfo());
  CHECK(!pg_refused.ok());
  MyConn my_refused(s.my_port(), "app", "app", "app");
  CHECK(!my_refused.ok);
  REQUIRE(query(adm, "ENABLE app").error.empty());

  MyConn app(s.my_port(), "app", "app", "app");
  REQUIRE(app.ok);
  for (int i = 0; i < 3; ++i) CHECK(app.scalar("SELECT 1") == "1");
  auto st = query(adm, "SHOW STATS");
  CHECK(st.find("database", "*") < 0);
  bool mysql_app = false;
  for (std::size_t i = 0; i < st.rows.size(); ++i)
    mysql_app = mysql_app || (st.at(i, "database") == "app" && st.at(i, "protocol") == "mysql");
  CHECK(mysql_app);

  // PAUSE app holds the MySQL client's next query until RESUME.
  REQUIRE(query(adm, "PAUSE app").error.empty());
  std::atomic<bool> done{false};
  std::thread t([&] {
    CHECK(app.scalar("SELECT 2") == "2");
    done = true;
  });
  // Held: SHOW CLIENTS shows it waiting (bounded), and its query has not run.
  CHECK(eventually([&] {
    auto c = query(adm, "SHOW CLIENTS");
    for (std::size_t i = 0; i < c.rows.size(); ++i)
      if (c.at(i, "protocol") == "mysql" && c.at(i, "state") == "waiting") return true;
    return false;
  }));
  CHECK_FALSE(done.load());
  REQUIRE(query(adm, "RESUME app").error.empty());
  t.join();
  CHECK(done.load());
}
