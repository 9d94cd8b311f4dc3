// Parked idle clients (frontend/common/admission.hpp): a client idle between transactions for a
// janitor period gives up its coroutine frames and waits with a plain handler. SHOW CLIENTS says
// so (`parked`); a parked client must still do everything an idle one does: run the next request
// (short, long, right at the moment it parks), hear its notifications, be killed from the
// console, be told of a shutdown; over plain TCP and TLS.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "harness.hpp"
#include "tls_support.hpp"

using namespace sluice::itest;

namespace {

const char* kAdmin = "\n[[users]]\nname = \"admin\"\npassword = \"adminpw\"\n";
const char* kGeneral = "admin_users = [\"admin\"]";

std::string tx_pool() {
  return std::string(kAdmin) +
         "[[pools]]\ndatabase = \"app\"\ncluster = \"pg\"\npool_mode = \"transaction\"\npool_size = 2\n";
}

std::string both_pools() {
  return tx_pool() + "\n[[pools]]\ndatabase = \"app\"\ncluster = \"my\"\npool_mode = \"transaction\"\npool_size = 2\n";
}

int socket_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

int local_port(PGconn* c) { return socket_port(PQsocket(c)); }
int local_port(MYSQL* m) { return socket_port(static_cast<int>(mysql_get_socket(m))); }

// SHOW CLIENTS' `column` for the client whose port is `port` ("" when not listed).
std::string client_column(PGconn* adm, int port, const char* column) {
  PGresult* r = PQexec(adm, "SHOW CLIENTS");
  std::string v;
  int pc = PQfnumber(r, "port"), cc = PQfnumber(r, column);
  if (PQresultStatus(r) == PGRES_TUPLES_OK && pc >= 0 && cc >= 0)
    for (int i = 0; i < PQntuples(r); ++i)
      if (std::stoi(PQgetvalue(r, i, pc)) == port) v = PQgetvalue(r, i, cc);
  PQclear(r);
  return v;
}

// What libpq reports of messages that come while no query runs (a FATAL to an idle client).
void capture_notices(PGconn* c, std::string& into) {
  PQsetNoticeProcessor(
      c, [](void* arg, const char* msg) { *static_cast<std::string*>(arg) += msg; }, &into);
}

// SHOW CACHE's hits over all pools (the "*" row).
long cache_hits(PGconn* adm) {
  PGresult* r = PQexec(adm, "SHOW CACHE");
  long hits = -1;
  int pc = PQfnumber(r, "pool"), hc = PQfnumber(r, "hits");
  if (PQresultStatus(r) == PGRES_TUPLES_OK && pc >= 0 && hc >= 0)
    for (int i = 0; i < PQntuples(r); ++i)
      if (std::string(PQgetvalue(r, i, pc)) == "*") hits = std::stol(PQgetvalue(r, i, hc));
  PQclear(r);
  return hits;
}

bool parks_port(PGconn* adm, int port) {
  return eventually([&] { return client_column(adm, port, "parked") == "t"; }, 5000);
}

bool parks(PGconn* adm, PGconn* client) {
  int port = local_port(client);
  return eventually([&] { return client_column(adm, port, "parked") == "t"; }, 5000);
}

// Parked with its session object gone (hibernated, after kSleepAfter parked): SHOW CLIENTS says
// `asleep`.
bool sleeps(PGconn* adm, PGconn* client) {
  int port = local_port(client);
  return eventually([&] { return client_column(adm, port, "asleep") == "t"; }, 5000);
}
std::string asleep_now(PGconn* adm, PGconn* client) { return client_column(adm, local_port(client), "asleep"); }

// Waits (bounded) for bytes on the client's socket and lets libpq read them.
bool await_input(PGconn* c, int timeout_ms = 5000) {
  pollfd p{PQsocket(c), POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return false;
  PQconsumeInput(c);  // a closed connection is seen by the caller
  return true;
}

// A notification on `c` within the time bound.
std::string await_notification(PGconn* c) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < until) {
    PQconsumeInput(c);
    if (PGnotify* n = PQnotifies(c)) {
      std::string got = std::string(n->relname) + ":" + n->extra;
      PQfreemem(n);
      return got;
    }
    await_input(c, 200);
  }
  return "";
}

}  // namespace

TEST_CASE("PostgreSQL: a parked client runs its next requests, hears notifications, and can be killed") {
  SluiceProcess s(tx_pool(), kGeneral);
  Conn adm(s.conninfo("admin", "adminpw", "sluice"));
  REQUIRE_MESSAGE(adm.ok(), adm.error());
  Conn a(s.conninfo());
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE(a.scalar("SELECT 1") == "1");
  REQUIRE(parks(adm.c, a.c));
  CHECK(sleeps(adm.c, a.c));  // nothing in progress: the session object goes too
  CHECK(client_column(adm.c, local_port(a.c), "state") == "idle");

  // The next request, short and then longer than the bytes the parked wait reads at once.
  CHECK(a.scalar("SELECT 40 + 2") == "42");
  REQUIRE(parks(adm.c, a.c));
  std::string big(100000, 'x');
  CHECK(a.scalar("SELECT length('" + big + "')") == "100000");
  REQUIRE(parks(adm.c, a.c));

  // Requests that come around the moment the session parks (a janitor period is 250 ms).
  for (int i = 0; i < 12; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + 50 * i));
    CHECK(a.scalar("SELECT " + std::to_string(i)) == std::to_string(i));
  }

  // Notifications reach a parked client without it asking.
  REQUIRE(a.exec("LISTEN park_ch"));
  REQUIRE(parks(adm.c, a.c));
  CHECK(asleep_now(adm.c, a.c) == "f");  // a listener's mailbox stays with its session
  Conn direct(direct_conninfo());
  REQUIRE(direct.exec("NOTIFY park_ch, 'one'"));
  CHECK(await_notification(a.c) == "park_ch:one");
  REQUIRE(parks(adm.c, a.c));
  REQUIRE(direct.exec("NOTIFY park_ch, 'two'"));
  CHECK(await_notification(a.c) == "park_ch:two");
  CHECK(a.scalar("SELECT 'after'") == "after");

  // KILL from the console: the parked client gets the FATAL and its connection ends.
  REQUIRE(parks(adm.c, a.c));
  std::string id = client_column(adm.c, local_port(a.c), "id");
  REQUIRE(!id.empty());
  std::string notices;
  capture_notices(a.c, notices);
  PGresult* r = PQexec(adm.c, ("KILL " + id).c_str());
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  CHECK(await_input(a.c));
  CHECK(a.scalar("SELECT 1").rfind("ERROR", 0) == 0);
  CHECK(PQstatus(a.c) == CONNECTION_BAD);
  CHECK(notices.find("administrator command") != std::string::npos);
  // The console and other clients go on.
  Conn b(s.conninfo());
  CHECK(b.scalar("SELECT 7") == "7");
}

// A parked session lets go of what only a working one needs (sessions' Work): what it owes its
// client across transactions must all still be there when it wakes.
TEST_CASE("A parked session keeps its settings, prepared statements, cached answers and their invalidation") {
  SluiceProcess s(both_pools() + "\n[cache]\nmode = \"all\"\ndefault_ttl = \"60s\"\n", kGeneral);
  Conn adm(s.conninfo("admin", "adminpw", "sluice"));
  REQUIRE_MESSAGE(adm.ok(), adm.error());

  Conn a(s.conninfo());
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE(a.exec("DROP TABLE IF EXISTS park_cache_t"));
  REQUIRE(a.exec("CREATE TABLE park_cache_t (id int primary key, v int)"));
  REQUIRE(a.exec("INSERT INTO park_cache_t VALUES (1, 10)"));
  REQUIRE(a.exec("SET TimeZone = 'Asia/Tokyo'"));
  PGresult* r = PQprepare(a.c, "park_s", "SELECT $1::int + 1", 1, nullptr);
  REQUIRE(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  const std::string read = "SELECT v FROM park_cache_t WHERE id = 1";
  CHECK(a.scalar(read) == "10");  // fills the cache
  REQUIRE(parks(adm.c, a.c));
  long hits = cache_hits(adm.c);
  CHECK(a.scalar(read) == "10");
  CHECK(cache_hits(adm.c) == hits + 1);
  REQUIRE(parks(adm.c, a.c));
  CHECK(a.scalar("SHOW TimeZone") == "Asia/Tokyo");
  REQUIRE(parks(adm.c, a.c));
  const char* arg = "41";
  r = PQexecPrepared(a.c, "park_s", 1, &arg, nullptr, nullptr, 0);
  CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
  CHECK(std::string(PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "") == "42");
  PQclear(r);
  REQUIRE(a.exec("UPDATE park_cache_t SET v = 11 WHERE id = 1"));  // drops the cached answer
  REQUIRE(parks(adm.c, a.c));
  CHECK(a.scalar(read) == "11");
  REQUIRE(parks(adm.c, a.c));
  CHECK(a.scalar(read) == "11");
  CHECK(a.exec("DROP TABLE park_cache_t"));

  MyConn m(s.my_port());
  REQUIRE(m.ok);
  int port = local_port(m.m);
  REQUIRE(m.scalar("DROP TABLE IF EXISTS park_cache_m") == "");
  REQUIRE(m.scalar("CREATE TABLE park_cache_m (id int primary key, v int)") == "");
  REQUIRE(m.scalar("INSERT INTO park_cache_m VALUES (1, 10)") == "");
  const std::string mread = "SELECT v FROM park_cache_m WHERE id = 1";
  CHECK(m.scalar(mread) == "10");
  REQUIRE(parks_port(adm.c, port));
  hits = cache_hits(adm.c);
  CHECK(m.scalar(mread) == "10");
  CHECK(cache_hits(adm.c) == hits + 1);
  REQUIRE(m.scalar("UPDATE park_cache_m SET v = 11 WHERE id = 1") == "");
  REQUIRE(parks_port(adm.c, port));
  CHECK(m.scalar(mread) == "11");
  CHECK(m.scalar("DROP TABLE park_cache_m") == "");
}

// With no prepared statement, LISTEN or pin, a parking session drops its relay too and keeps only
// the client's parameters: each must be back on whichever server connection runs its next
// request, and no other client may see them.
TEST_CASE("A parked session with only settings keeps them when its relay goes") {
  SluiceProcess s(both_pools(), kGeneral);
  Conn adm(s.conninfo("admin", "adminpw", "sluice"));
  REQUIRE_MESSAGE(adm.ok(), adm.error());
  Conn a(s.conninfo());
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE(a.exec("SET TimeZone = 'Asia/Tokyo'"));
  REQUIRE(a.exec("SET application_name = 'parked_app'"));
  REQUIRE(a.exec("SET extra_float_digits = 2"));
  for (int round = 0; round < 3; ++round) {
    REQUIRE(parks(adm.c, a.c));
    CHECK(a.scalar("SHOW TimeZone") == "Asia/Tokyo");
    CHECK(a.scalar("SELECT current_setting('application_name') || '/' || current_setting('extra_float_digits')") ==
          "parked_app/2");
  }
  REQUIRE(a.exec("RESET TimeZone"));
  REQUIRE(parks(adm.c, a.c));
  Conn b(s.conninfo());
  REQUIRE_MESSAGE(b.ok(), b.error());
  std::string tz = b.scalar("SHOW TimeZone");
  CHECK(tz != "Asia/Tokyo");
  CHECK(a.scalar("SHOW TimeZone") == tz);
  CHECK(b.scalar("SHOW application_name") != "parked_app");
}

// A sleeping session (parked, its Session object gone, only what it owes its client kept) comes
// back with all of it: settings, named prepared statements, a failed transaction, its cancel key
// (read-your-writes: the next test); KILL and a client that leaves reach it while it
// sleeps.
TEST_CASE("PostgreSQL: a sleeping client wakes with its settings, statements and transaction state") {
  SluiceProcess s(tx_pool(), kGeneral);
  Conn adm(s.conninfo("admin", "adminpw", "sluice"));
  REQUIRE_MESSAGE(adm.ok(), adm.error());
  Conn a(s.conninfo());
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE(a.exec("SET TimeZone = 'Asia/Tokyo'"));
  // Parked, but back well within kSleepAfter (2 s): it keeps its session object.
  for (int i = 0; i < 3; ++i) {
    REQUIRE(parks(adm.c, a.c));
    CHECK(asleep_now(adm.c, a.c) == "f");
    CHECK(a.scalar("SELECT 1") == "1");
  }
  PGresult* r = PQprepare(a.c, "sleep_s", "SELECT $1::int * 2", 1, nullptr);
  REQUIRE(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    REQUIRE(sleeps(adm.c, a.c));
    CHECK(a.scalar("SHOW TimeZone") == "Asia/Tokyo");
    REQUIRE(sleeps(adm.c, a.c));
    const char* arg = "21";
    r = PQexecPrepared(a.c, "sleep_s", 1, &arg, nullptr, nullptr, 0);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
    CHECK(std::string(PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "") == "42");
    PQclear(r);
  }
  // Between transactions only: a client inside a transaction keeps its server connection.
  REQUIRE(a.exec("BEGIN"));
  CHECK(a.scalar("SELECT 5") == "5");
  // Longer than parking and kSleepAfter (2 s) together: it neither parks nor sleeps.
  CHECK_FALSE(eventually(
      [&] { return asleep_now(adm.c, a.c) == "t" || client_column(adm.c, local_port(a.c), "parked") == "t"; }, 3000));
  REQUIRE(a.exec("COMMIT"));
  // Its cancel key still cancels its statement after it slept.
  REQUIRE(sleeps(adm.c, a.c));
  PGcancel* cancel = PQgetCancel(a.c);
  REQUIRE(cancel != nullptr);
  REQUIRE(PQsendQuery(a.c, "SELECT pg_sleep(10)"));
  Conn direct(direct_conninfo());
  REQUIRE(eventually([&] {  // the statement runs on the server before it is cancelled
    return direct.scalar(
               "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(10)' AND "
               "state = 'active'") == "1";
  }));
  char err[256];
  CHECK(PQcancel(cancel, err, sizeof err) == 1);
  PQfreeCancel(cancel);
  std::string state;
  while (PGresult* res = PQgetResult(a.c)) {
    if (const char* st = PQresultErrorField(res, PG_DIAG_SQLSTATE)) state = st;
    PQclear(res);
  }
  CHECK(state == "57014");
  CHECK(a.scalar("SELECT 'after cancel'") == "after cancel");
  // Another client never sees its settings.
  REQUIRE(sleeps(adm.c, a.c));
  Conn b(s.conninfo());
  REQUIRE_MESSAGE(b.ok(), b.error());
  CHECK(b.scalar("SHOW TimeZone") != "Asia/Tokyo");
  // KILL while it sleeps.
  REQUIRE(sleeps(adm.c, a.c));
  std::string id = client_column(adm.c, local_port(a.c), "id");
  std::string notices;
  capture_notices(a.c, notices);
  r = PQexec(adm.c, ("KILL " + id).c_str());
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  CHECK(await_input(a.c));
  CHECK(a.scalar("SELECT 1").rfind("ERROR", 0) == 0);
  CHECK(notices.find("administrator command") != std::string::npos);
  CHECK(eventually([&] { return client_column(adm.c, local_port(a.c), "id").empty(); }, 5000));
  // One that leaves while it sleeps is gone from SHOW CLIENTS.
  REQUIRE(b.scalar("SELECT 1") == "1");
  REQUIRE(sleeps(adm.c, b.c));
  int bport = local_port(b.c);
  PQfinish(b.c);
  b.c = nullptr;
  CHECK(eventually([&] { return client_column(adm.c, bport, "id").empty(); }, 5000));
}

// Read-your-writes survives sleep: with the replica's replay paused, a client that wrote and
// then slept still reads its write (on the primary), while a new client reads the replica's
// older row (so the first check can fail).
TEST_CASE("PostgreSQL: a sleeping client keeps its read-your-writes token") {
  const std::string replica_port = env_or("SLUICE_PG_REPLICA_PORT", "15433");
  // Values of this run only: the replica is seen to have this run's table before replay pauses.
  const std::string v0 = std::to_string(10 + ::getpid() % 100000), v1 = v0 + "1";
  Conn(direct_conninfo()).exec("DROP TABLE IF EXISTS sleep_ryw");
  Conn setup("host=127.0.0.1 port=" + std::to_string(pg_port()) + " user=app password=app dbname=app sslmode=disable");
  REQUIRE(setup.exec("CREATE TABLE sleep_ryw (id int primary key, v int)"));
  REQUIRE(setup.exec("INSERT INTO sleep_ryw VALUES (1, " + v0 + ")"));
  Conn replica("host=127.0.0.1 port=" + replica_port + " user=postgres dbname=app sslmode=disable");
  REQUIRE_MESSAGE(replica.ok(), replica.error());
  REQUIRE(eventually([&] { return replica.scalar("SELECT v FROM sleep_ryw WHERE id = 1") == v0; }));
  SluiceProcess s(std::string(kAdmin) + "[clusters.pgr]\nprotocol = \"postgres\"\nprimary = \"127.0.0.1:" +
                      std::to_string(pg_port()) + "\"\nreplicas = [\"127.0.0.1:" + replica_port +
                      "\"]\nhealth_check_period = \"100ms\"\nconsistency = \"read_your_writes\"\n"
                      "[[pools]]\ndatabase = \"app\"\ncluster = \"pgr\"\npool_mode = \"transaction\"\npool_size = 2\n",
                  kGeneral);
  Conn adm(s.conninfo("admin", "adminpw", "sluice"));
  Conn a(s.conninfo());
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE(eventually([&] { return a.scalar("SELECT pg_is_in_recovery()") == "t"; }));  // the replica is in use
  REQUIRE(replica.exec("SELECT pg_wal_replay_pause()"));
  REQUIRE_MESSAGE(a.exec("UPDATE sleep_ryw SET v = " + v1 + " WHERE id = 1"), a.error());
  REQUIRE(sleeps(adm.c, a.c));
  CHECK(a.scalar("SELECT v FROM sleep_ryw WHERE id = 1") == v1);
  Conn b(s.conninfo());
  CHECK(b.scalar("SELECT v FROM sleep_ryw WHERE id = 1") == v0);  // the paused replica's row
  REQUIRE(replica.exec("SELECT pg_wal_replay_resume()"));
  CHECK(setup.exec("DROP TABLE sleep_ryw"));
}

// What sleeping clients leave behind must go back to the system when they go, and glibc's
// per-thread cache would pin it (src/app/allocator_env.hpp): Sluice runs with the cache off,
// as the same process (the PID a service manager watches), unless the operator set it.
TEST_CASE("Sluice runs with glibc's per-thread cache off, in the process it was started as") {
  // The process's starting environment. glibc ends each tunable's value in place with a NUL
  // as it reads them, so "a=1:b=2" reads back as "a=1" and "b=2": look for the one wanted.
  auto environ_of = [](int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  auto has = [](const std::string& env, const std::string& entry) {
    return env.find(std::string("\0", 1) + entry + std::string("\0", 1)) != std::string::npos ||
           env.rfind(entry + std::string("\0", 1), 0) == 0;
  };
  {
    SluiceProcess s(tx_pool(), kGeneral);
    Conn c(s.conninfo());  // serving: the start is over
    REQUIRE_MESSAGE(c.ok(), c.error());
    std::string env = environ_of(s.pid());
    CHECK(has(env, "GLIBC_TUNABLES=glibc.malloc.tcache_count=0"));
  }
  // The operator's own setting stays as it is, and what else they set is kept.
  ::setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=4", 1);
  {
    SluiceProcess s(tx_pool(), kGeneral);
    Conn c(s.conninfo());
    REQUIRE_MESSAGE(c.ok(), c.error());
    std::string env = environ_of(s.pid());
    CHECK(has(env, "GLIBC_TUNABLES=glibc.malloc.arena_max=4"));
    CHECK(has(env, "glibc.malloc.tcache_count=0"));
  }
  ::setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=7", 1);
  {
    SluiceProcess s(tx_pool(), kGeneral);
    Conn c(s.conninfo());
    REQUIRE_MESSAGE(c.ok(), c.error());
    std::string env = environ_of(s.pid());
    CHECK(has(env, "GLIBC_TUNABLES=glibc.malloc.tcache_count=7"));
    CHECK(env.find("tcache_count=0") == std::string::npos);
  }
  ::unsetenv("GLIBC_TUNABLES");
}

// A parked client that leaves (PostgreSQL's Terminate, MySQL's COM_QUIT, or a plain close) is
// closed from the parked wait itself: its session ends and its place is free for the next one.
TEST_CASE("Parked clients that leave are gone at once, and their places are free") {
  SluiceProcess s(both_pools(), std::string(kGeneral) + "\nmax_client_conn = 4");
  Conn adm(s.conninfo("admin", "adminpw", "sluice"));
  REQUIRE_MESSAGE(adm.ok(), adm.error());
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    auto pg = std::make_unique<Conn>(s.conninfo());
    auto raw = std::make_unique<Conn>(s.conninfo());
    auto my = std::make_unique<MyConn>(s.my_port());
    REQUIRE_MESSAGE(pg->ok(), pg->error());
    REQUIRE_MESSAGE(raw->ok(), raw->error());
    REQUIRE(my->ok);
    int pport = local_port(pg->c), rport = local_port(raw->c), mport = local_port(my->m);
    CHECK(pg->scalar("SELECT 1") == "1");
    CHECK(raw->scalar("SELECT 1") == "1");
    CHECK(my->scalar("SELECT 1") == "1");
    REQUIRE(parks_port(adm.c, pport));
    REQUIRE(parks_port(adm.c, rport));
    REQUIRE(parks_port(adm.c, mport));
    pg.reset();                               // PQfinish: Terminate, then close
    ::shutdown(PQsocket(raw->c), SHUT_RDWR);  // gone without a word
    my.reset();                               // mysql_close: COM_QUIT, then close
    CHECK(eventually([&] { return client_column(adm.c, pport, "id").empty(); }, 5000));
    CHECK(eventually([&] { return client_column(adm.c, rport, "id").empty(); }, 5000));
    CHECK(eventually([&] { return client_column(adm.c, mport, "id").empty(); }, 5000));
    raw.reset();
  }
  // Four places (the console's among them): all free again.
  Conn a(s.conninfo()), b(s.conninfo());
  MyConn c(s.my_port());
  CHECK(a.scalar("SELECT 1") == "1");
  CHECK(b.scalar("SELECT 1") == "1");
  CHECK(c.scalar("SELECT 1") == "1");
}

TEST_CASE("PostgreSQL: a parked client is told of a shutdown, and Sluice exits") {
  SluiceProcess s(tx_pool(), std::string(kGeneral) + "\nshutdown_timeout = \"10s\"");
  Conn adm(s.conninfo("admin", "adminpw", "sluice"));
  REQUIRE_MESSAGE(adm.ok(), adm.error());
  Conn a(s.conninfo());
  REQUIRE(a.scalar("SELECT 1") == "1");
  REQUIRE(parks(adm.c, a.c));
  REQUIRE(sleeps(adm.c, a.c));  // the shutdown's kick wakes it
  PQfinish(adm.c);
  adm.c = nullptr;
  std::string notices;
  capture_notices(a.c, notices);
  REQUIRE(::kill(s.pid(), SIGTERM) == 0);
  CHECK(await_input(a.c));
  CHECK(a.scalar("SELECT 1").rfind("ERROR", 0) == 0);
  CHECK(notices.find("shutting down") != std::string::npos);
  PQfinish(a.c);
  a.c = nullptr;
  int status = s.wait_exit(10000);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("PostgreSQL: under client_idle_timeout an idle client parks too, and is closed at the timeout") {
  SluiceProcess s(tx_pool(), std::string(kGeneral) + "\nclient_idle_timeout = \"3s\"");
  Conn adm(s.conninfo("admin", "adminpw", "sluice"));
  REQUIRE_MESSAGE(adm.ok(), adm.error());
  Conn a(s.conninfo());
  REQUIRE(a.scalar("SELECT 1") == "1");
  std::string notices;
  capture_notices(a.c, notices);
  REQUIRE(parks(adm.c, a.c));
  // Busy enough: a client that never stays idle for the timeout is never closed.
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    REQUIRE(a.scalar("SELECT 2") == "2");
  }
  auto idle_since = std::chrono::steady_clock::now();
  REQUIRE(parks(adm.c, a.c));
  CHECK(sleeps(adm.c, a.c));  // the timeout is kept while it sleeps
  CHECK(await_input(a.c, 8000));
  auto idle_for = std::chrono::steady_clock::now() - idle_since;
  CHECK(idle_for >= std::chrono::milliseconds(2900));
  CHECK(idle_for < std::chrono::milliseconds(5000));
  CHECK(a.scalar("SELECT 1").rfind("ERROR", 0) == 0);
  CHECK(notices.find("client_idle_timeout") != std::string::npos);
  // The console (idle itself, but not a client's idle wait) is not closed by the timeout.
  CHECK(client_column(adm.c, local_port(adm.c), "database") == "sluice");
}

TEST_CASE("PostgreSQL over TLS: a parked client runs its next requests and hears notifications") {
  SluiceProcess::postgres_extra = tls_keys("require");
  Guard guard;
  SluiceProcess s(tx_pool(), kGeneral);
  Conn adm(s.conninfo("admin", "adminpw", "sluice") + " sslmode=require");
  REQUIRE_MESSAGE(adm.ok(), adm.error());
  Conn a(s.conninfo() + " sslmode=require");
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE(PQsslInUse(a.c) == 1);
  REQUIRE(a.scalar("SELECT 1") == "1");
  REQUIRE(parks(adm.c, a.c));
  CHECK(asleep_now(adm.c, a.c) == "f");  // TLS state stays with its session
  std::string big(50000, 'y');
  CHECK(a.scalar("SELECT length('" + big + "')") == "50000");
  REQUIRE(parks(adm.c, a.c));
  REQUIRE(a.exec("LISTEN park_tls"));
  REQUIRE(parks(adm.c, a.c));
  Conn direct(direct_conninfo());
  REQUIRE(direct.exec("NOTIFY park_tls, 'tls'"));
  CHECK(await_notification(a.c) == "park_tls:tls");
  CHECK(a.scalar("SELECT 3") == "3");
}

TEST_CASE("MySQL over TLS: a parked client runs its next commands, keeps its session, and can be killed") {
  SluiceProcess::mysql_extra = tls_keys("require");
  MyGuard guard;
  SluiceProcess s(both_pools(), kGeneral);
  Conn adm(s.conninfo("admin", "adminpw", "sluice"));
  REQUIRE_MESSAGE(adm.ok(), adm.error());
  MyTls a(s.my_port(), cert_dir() + "/ca.pem", true);
  REQUIRE_MESSAGE(a.ok, mysql_error(a.m));
  REQUIRE(mysql_get_ssl_cipher(a.m) != nullptr);
  int port = local_port(a.m);
  REQUIRE(a.scalar("SELECT 1") == "1");
  REQUIRE(parks_port(adm.c, port));
  CHECK(client_column(adm.c, port, "tls") == "t");
  std::string big(50000, 'z');
  CHECK(a.scalar(("SELECT length('" + big + "')").c_str()) == "50000");
  REQUIRE(parks_port(adm.c, port));
  REQUIRE(a.scalar("SET SESSION sql_mode = 'ANSI_QUOTES'") == "");
  REQUIRE(parks_port(adm.c, port));
  CHECK(a.scalar("SELECT @@SESSION.sql_mode") == "ANSI_QUOTES");
  for (int i = 0; i < 8; ++i) {  // around the moment it parks
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + 50 * i));
    CHECK(a.scalar(("SELECT " + std::to_string(i)).c_str()) == std::to_string(i));
  }
  REQUIRE(parks_port(adm.c, port));
  std::string id = client_column(adm.c, port, "id");
  PGresult* r = PQexec(adm.c, ("KILL " + id).c_str());
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  CHECK(eventually([&] { return client_column(adm.c, port, "id").empty(); }));
  CHECK(a.scalar("SELECT 3").rfind("ERROR", 0) == 0);
}

TEST_CASE("MySQL: a parked client runs its next commands, and can be killed; a shutdown closes it") {
  SluiceProcess s(both_pools(), std::string(kGeneral) + "\nshutdown_timeout = \"10s\"");
  Conn adm(s.conninfo("admin", "adminpw", "sluice"));
  REQUIRE_MESSAGE(adm.ok(), adm.error());
  MyConn a(s.my_port());
  REQUIRE(a.ok);
  int port = local_port(a.m);
  REQUIRE(a.scalar("SELECT 1") == "1");
  REQUIRE(parks_port(adm.c, port));
  CHECK(client_column(adm.c, port, "protocol") == "mysql");
  CHECK(a.scalar("SELECT 40 + 2") == "42");
  REQUIRE(parks_port(adm.c, port));
  std::string big(100000, 'x');
  CHECK(a.scalar("SELECT length('" + big + "')") == "100000");
  for (int i = 0; i < 12; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + 50 * i));
    CHECK(a.scalar("SELECT " + std::to_string(i)) == std::to_string(i));
  }
  // Session state carried across parking: a session variable and a prepared statement.
  REQUIRE(a.scalar("SET SESSION sql_mode = 'ANSI_QUOTES'") == "");
  MYSQL_STMT* st = mysql_stmt_init(a.m);
  const std::string ps = "SELECT ? + 1";
  REQUIRE(mysql_stmt_prepare(st, ps.data(), ps.size()) == 0);
  REQUIRE(parks_port(adm.c, port));
  CHECK(a.scalar("SELECT @@SESSION.sql_mode") == "ANSI_QUOTES");
  REQUIRE(parks_port(adm.c, port));
  long long in = 41, out = 0;
  MYSQL_BIND pb{}, rb{};
  pb.buffer_type = MYSQL_TYPE_LONGLONG;
  pb.buffer = &in;
  rb.buffer_type = MYSQL_TYPE_LONGLONG;
  rb.buffer = &out;
  REQUIRE(mysql_stmt_bind_param(st, &pb) == 0);
  REQUIRE(mysql_stmt_execute(st) == 0);
  REQUIRE(mysql_stmt_bind_result(st, &rb) == 0);
  CHECK(mysql_stmt_fetch(st) == 0);
  CHECK(out == 42);
  mysql_stmt_close(st);

  // KILL from the console: the parked client's next command finds the connection gone.
  MyConn b(s.my_port());
  REQUIRE(b.ok);
  int bport = local_port(b.m);
  REQUIRE(b.scalar("SELECT 2") == "2");
  REQUIRE(parks_port(adm.c, bport));
  std::string id = client_column(adm.c, bport, "id");
  PGresult* r = PQexec(adm.c, ("KILL " + id).c_str());
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  CHECK(eventually([&] { return client_column(adm.c, bport, "id").empty(); }));
  CHECK(b.scalar("SELECT 3").rfind("ERR:", 0) == 0);

  // A shutdown closes the parked client, and Sluice exits.
  REQUIRE(parks_port(adm.c, port));
  PQfinish(adm.c);
  adm.c = nullptr;
  REQUIRE(::kill(s.pid(), SIGTERM) == 0);
  int status = s.wait_exit(10000);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(a.scalar("SELECT 4").rfind("ERR:", 0) == 0);
}

TEST_CASE("MySQL: the admin console is not a client's idle wait: it stays open while idle") {
  for (const char* general : {"", "\nclient_idle_timeout = \"2s\""}) {
    SluiceProcess s(both_pools(), std::string(kGeneral) + general);
    MyConn console(s.my_port(), "admin", "adminpw", "sluice");
    REQUIRE(console.ok);
    REQUIRE(mysql_query(console.m, "SHOW VERSION") == 0);
    mysql_free_result(mysql_store_result(console.m));
    std::this_thread::sleep_for(std::chrono::milliseconds(3000));  // parking, and the timeout
    CHECK_MESSAGE(mysql_query(console.m, "SHOW CLIENTS") == 0, general, mysql_error(console.m));
    MYSQL_RES* r = mysql_store_result(console.m);
    CHECK(r != nullptr);
    if (r) mysql_free_result(r);
  }
}

TEST_CASE("MySQL: under client_idle_timeout an idle client parks too, and is closed at the timeout") {
  SluiceProcess s(both_pools(), std::string(kGeneral) + "\nclient_idle_timeout = \"3s\"");
  Conn adm(s.conninfo("admin", "adminpw", "sluice"));
  REQUIRE_MESSAGE(adm.ok(), adm.error());
  MyConn a(s.my_port());
  REQUIRE(a.ok);
  int port = local_port(a.m);
  REQUIRE(a.scalar("SELECT 1") == "1");
  REQUIRE(parks_port(adm.c, port));
  for (int i = 0; i < 4; ++i) {  // busy enough: never closed
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    REQUIRE(a.scalar("SELECT 2") == "2");
  }
  auto idle_since = std::chrono::steady_clock::now();
  REQUIRE(parks_port(adm.c, port));
  CHECK(eventually([&] { return client_column(adm.c, port, "id").empty(); }, 8000));
  auto idle_for = std::chrono::steady_clock::now() - idle_since;
  CHECK(idle_for >= std::chrono::milliseconds(2900));
  CHECK(idle_for < std::chrono::milliseconds(5000));
  CHECK(a.scalar("SELECT 3").rfind("ERR:", 0) == 0);
}
