// Transaction pooling never lets one client's session state reach another: two clients share one
// server connection (pool_size = 1) and take turns. What can be carried follows each client to
// whatever server connection it gets; what cannot pins the client to its server connection
// (SHOW CLIENTS says why) until the state is gone; untracked changes are reset before reuse.
#include <doctest/doctest.h>
#include <libpq-fe.h>

#include <poll.h>

#include <chrono>
#include <thread>
#include <optional>
#include <string>

#include "harness.hpp"

using namespace sluice::itest;

namespace {

const char* kPools = R"(
[[pools]]
database = "app"
cluster = "pg"
pool_mode = "transaction"
pool_size = 1

[[pools]]
database = "app_two"
server_database = "app"
cluster = "pg"
pool_mode = "transaction"
pool_size = 2

[[users]]
name = "admin"
password = "admin"
)";

std::string pinned_reason(SluiceProcess& s, PGconn* client) {
  Conn admin(s.conninfo("admin", "admin", "sluice"));
  PGresult* r = PQexec(admin.c, "SHOW CLIENTS");
  std::string out = "?";
  int col = PQfnumber(r, "pinned"), app = PQfnumber(r, "application_name");
  for (int i = 0; i < PQntuples(r); ++i)
    if (std::string(PQgetvalue(r, i, app)) == PQparameterStatus(client, "application_name"))
      out = PQgetisnull(r, i, col) ? "" : PQgetvalue(r, i, col);
  PQclear(r);
  return out;
}

struct Notification {
  std::string channel, payload;
  int pid = 0;
};

// The next notification `c` receives within `ms`, or nothing.
std::optional<Notification> next_notification(PGconn* c, int ms = 5000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    if (PQconsumeInput(c) == 0) return std::nullopt;
    if (PGnotify* n = PQnotifies(c)) {
      Notification out{n->relname, n->extra, n->be_pid};
      PQfreemem(n);
      return out;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{PQsocket(c), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
}

}  // namespace

TEST_CASE("carried: SET, SET ROLE, set_config(..., false), SETs of committed transactions; nothing leaks") {
  SluiceProcess s(kPools, "admin_users = [\"admin\"]\n");
  Conn su(direct_conninfo());
  su.exec("DO $$BEGIN CREATE ROLE wd_role NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$");
  REQUIRE(su.exec("GRANT wd_role TO app"));
  Conn a(s.conninfo()), b(s.conninfo());
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE_MESSAGE(b.ok(), b.error());
  const std::string timeout0 = b.scalar("SHOW statement_timeout"), work_mem0 = b.scalar("SHOW work_mem");

  REQUIRE(a.exec("SET statement_timeout = '1234ms'"));
  REQUIRE(a.exec("SET ROLE wd_role"));
  CHECK(a.scalar("SELECT set_config('work_mem', '2345kB', false)") == "2345kB");
  REQUIRE(a.exec("SET default_transaction_read_only = on"));
  REQUIRE(a.exec("SET myapp.tenant = 'acme'"));
  // b, on the same (only) server connection, sees none of it.
  CHECK(b.scalar("SHOW statement_timeout") == timeout0);
  CHECK(b.scalar("SELECT current_user") == "app");
  CHECK(b.scalar("SHOW work_mem") == work_mem0);
  CHECK(b.scalar("SHOW default_transaction_read_only") == "off");
  CHECK(b.scalar("SELECT current_setting('myapp.tenant', true)") != "acme");
  // a still has all of it.
  CHECK(a.scalar("SHOW statement_timeout") == "1234ms");
  CHECK(a.scalar("SELECT current_user") == "wd_role");
  CHECK(a.scalar("SHOW work_mem") == "2345kB");
  CHECK(a.scalar("SHOW default_transaction_read_only") == "on");
  CHECK(a.scalar("SELECT current_setting('myapp.tenant')") == "acme");

  // Inside transactions: kept at COMMIT, undone by ROLLBACK.
  REQUIRE(a.exec("RESET ROLE"));
  REQUIRE(a.exec("BEGIN"));
  REQUIRE(a.exec("SET lock_timeout = '3s'"));
  REQUIRE(a.exec("COMMIT"));
  REQUIRE(a.exec("BEGIN"));
  REQUIRE(a.exec("SET lock_timeout = '4s'"));
  REQUIRE(a.exec("ROLLBACK"));
  CHECK(b.scalar("SHOW lock_timeout") == "0");
  CHECK(a.scalar("SHOW lock_timeout") == "3s");
  CHECK(a.scalar("SELECT current_user") == "app");
  // RESET comes along too.
  REQUIRE(a.exec("RESET statement_timeout"));
  CHECK(b.scalar("SELECT 1") == "1");
  CHECK(a.scalar("SHOW statement_timeout") == timeout0);
}

TEST_CASE("carried SETs follow savepoints: ROLLBACK TO undoes those after it, RELEASE keeps them, as directly") {
  SluiceProcess s(kPools, "admin_users = [\"admin\"]\n");
  Conn direct(direct_conninfo());
  Conn a(s.conninfo()), b(s.conninfo());
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE_MESSAGE(b.ok(), b.error());
  const char* script[] = {
      "BEGIN",
      "SAVEPOINT zero",  // before any SET
      "SET vacuum_cost_delay = 7",
      "ROLLBACK TO zero",
      "SET lock_timeout = '1s'",
      "SAVEPOINT one",
      "SET lock_timeout = '2s'",
      "SET statement_timeout = '22s'",
      "SAVEPOINT \"Two\"",
      "SET work_mem = '1111kB'",
      "ROLLBACK TO SAVEPOINT one",  // undoes 2s, 22s and 1111kB; "one" stays, "Two" is gone
      "SET idle_in_transaction_session_timeout = '33s'",
      "SAVEPOINT three",
      "SET search_path = public, pg_catalog",
      "RELEASE three",  // kept
      "SAVEPOINT four",
      "SELECT 1/0",
      "ROLLBACK TO four",  // the failed transaction goes on
      "SET maintenance_work_mem = '4444kB'",
      "COMMIT",
  };
  const char* show =
      "SELECT current_setting('lock_timeout') || ' ' || current_setting('statement_timeout') || ' ' || "
      "current_setting('work_mem') || ' ' || current_setting('idle_in_transaction_session_timeout') || ' ' || "
      "current_setting('search_path') || ' ' || current_setting('maintenance_work_mem') || ' ' || "
      "current_setting('vacuum_cost_delay')";
  for (const char* sql : script) {
    PQclear(PQexec(direct.c, sql));
    PQclear(PQexec(a.c, sql));
  }
  const std::string want = direct.scalar(show);
  CHECK(want.rfind("1s 0 ", 0) == 0);
  CHECK(b.scalar("SELECT 1") == "1");  // the only server connection serves another client between
  CHECK(a.scalar(show) == want);
}

TEST_CASE("pinned: advisory locks, temporary tables, WITH HOLD cursors, SQL PREPARE; released when gone") {
  SluiceProcess s(kPools, "admin_users = [\"admin\"]\n");
  Conn a(s.conninfo("app", "app", "app_two") + " application_name=wd_pin_a");
  Conn b(s.conninfo("app", "app", "app_two") + " application_name=wd_pin_b");
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE_MESSAGE(b.ok(), b.error());
  struct Case {
    const char* take;
    const char* release;
    const char* reason;
  };
  for (auto c : {Case{"SELECT pg_advisory_lock(4242)", "SELECT pg_advisory_unlock(4242)", "advisory lock"},
                 Case{"CREATE TEMP TABLE wd_tmp (a int)", "DROP TABLE wd_tmp", "temporary table"},
                 Case{"BEGIN; DECLARE wd_hold CURSOR WITH HOLD FOR SELECT 1; COMMIT", "CLOSE wd_hold", "WITH HOLD cursor"},
                 Case{"PREPARE wd_sqlprep AS SELECT 7", "DEALLOCATE wd_sqlprep", "SQL PREPARE"}}) {
    INFO(std::string(c.take));
    REQUIRE(a.exec(c.take));
    const std::string pid = a.scalar("SELECT pg_backend_pid()");
    CHECK(pinned_reason(s, a.c) == std::string(c.reason));
    // Several transactions of b: never on a's server connection.
    for (int i = 0; i < 4; ++i) CHECK(b.scalar("SELECT pg_backend_pid()") != pid);
    CHECK(a.scalar("SELECT pg_backend_pid()") == pid);
    REQUIRE(a.exec(c.release));
    // The session asks the server whether anything still pins it after the client has its
    // ReadyForQuery, so SHOW CLIENTS says so a moment later.
    CHECK(eventually([&] { return pinned_reason(s, a.c).empty(); }, 5000));
  }
  // The state is usable across a's transactions while pinned.
  REQUIRE(a.exec("CREATE TEMP TABLE wd_tmp2 (a int)"));
  REQUIRE(a.exec("INSERT INTO wd_tmp2 VALUES (1)"));
  CHECK(a.scalar("SELECT count(*) FROM wd_tmp2") == "1");
  CHECK(b.scalar("SELECT count(*) FROM pg_class WHERE relname = 'wd_tmp2' AND relnamespace = pg_my_temp_schema()") == "0");
  // A client that leaves pinned: its server connection is reset before the next client.
  a.exec("SELECT pg_advisory_lock(4343)");
  PQfinish(a.c);
  a.c = nullptr;
  Conn c(s.conninfo("app", "app", "app_two"));
  // The reset runs once a's connection is gone, as a server ends a closed session's backend
  // after the client left: c (on another server connection, or on a's once reset) gets the lock
  // within moments, never the session's state.
  CHECK(eventually([&] { return c.scalar("SELECT pg_try_advisory_lock(4343)") == "t"; }, 5000));
  CHECK(c.scalar("SELECT pg_advisory_unlock(4343)") == "t");
}

TEST_CASE("untracked: a DO block that sets a parameter; the server connection is reset before the next client") {
  SluiceProcess s(kPools, "admin_users = [\"admin\"]\n");
  Conn a(s.conninfo()), b(s.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const std::string work_mem0 = b.scalar("SHOW work_mem");
  REQUIRE(a.exec("DO $$BEGIN PERFORM set_config('work_mem', '3456kB', false); END$$"));
  CHECK(b.scalar("SHOW work_mem") == work_mem0);
}

TEST_CASE("carried: LISTEN and UNLISTEN, with transaction semantics; notifications reach idle clients, and nobody else") {
  SluiceProcess s(kPools, "admin_users = [\"admin\"]\n");
  Conn a(s.conninfo() + " application_name=wd_listen_a"), b(s.conninfo()), direct(direct_conninfo());
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE_MESSAGE(b.ok(), b.error());
  REQUIRE(direct.ok());
  auto got = [&](const char* channel, const char* payload) {
    auto n = next_notification(a.c);
    INFO((std::string(channel) + " " + payload));
    REQUIRE(n);
    CHECK(n->channel == channel);
    CHECK(n->payload == payload);
    return *n;
  };

  REQUIRE(a.exec("LISTEN wd_carry"));
  CHECK(pinned_reason(s, a.c) == "");  // not pinned: the server connection goes on to b
  const std::string pid = a.scalar("SELECT pg_backend_pid()");
  CHECK(b.scalar("SELECT pg_backend_pid()") == pid);
  CHECK(b.scalar("SELECT count(*) FROM pg_listening_channels()") == "0");
  REQUIRE(b.exec("NOTIFY wd_carry, 'one'"));
  got("wd_carry", "one");  // a, idle, without a server connection

  // Quoted names keep their case; pg_notify names the channel as a string.
  REQUIRE(a.exec("LISTEN \"WD Mixed\""));
  REQUIRE(direct.exec("SELECT pg_notify('WD Mixed', 'two')"));
  got("WD Mixed", "two");

  // A LISTEN rolled back (also to a savepoint) never listens; one committed does, from COMMIT on.
  REQUIRE(a.exec("BEGIN; LISTEN wd_rolled; ROLLBACK"));
  REQUIRE(a.exec("BEGIN"));
  REQUIRE(a.exec("SAVEPOINT s1"));
  REQUIRE(a.exec("LISTEN wd_sp"));
  REQUIRE(a.exec("ROLLBACK TO s1"));
  REQUIRE(a.exec("LISTEN wd_sp2"));
  REQUIRE(direct.exec("NOTIFY wd_carry, 'in-tx'"));
  CHECK_FALSE(next_notification(a.c, 300));  // inside a transaction: nothing, as directly
  REQUIRE(a.exec("COMMIT"));
  got("wd_carry", "in-tx");
  REQUIRE(direct.exec("NOTIFY wd_rolled, 'no'; NOTIFY wd_sp, 'no'; NOTIFY wd_sp2, 'yes'"));
  got("wd_sp2", "yes");

  // The extended protocol.
  PGresult* r = PQexecParams(a.c, "LISTEN wd_ext", 0, nullptr, nullptr, nullptr, nullptr, 0);
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  REQUIRE(direct.exec("NOTIFY wd_ext, 'ext'"));
  got("wd_ext", "ext");

  // Its own NOTIFY: delivered, with the process id the client was given.
  REQUIRE(a.exec("NOTIFY wd_carry, 'self'"));
  CHECK(got("wd_carry", "self").pid == PQbackendPID(a.c));

  // A client pinned for another reason hears them too, idle between its transactions.
  REQUIRE(a.exec("CREATE TEMP TABLE wd_listen_tmp (a int)"));
  CHECK(pinned_reason(s, a.c) == "temporary table");
  REQUIRE(direct.exec("NOTIFY wd_carry, 'pinned'"));
  got("wd_carry", "pinned");
  REQUIRE(a.exec("DROP TABLE wd_listen_tmp"));

  // UNLISTEN one, then all.
  REQUIRE(a.exec("UNLISTEN wd_carry"));
  REQUIRE(direct.exec("NOTIFY wd_carry, 'no'; NOTIFY wd_ext, 'still'"));
  got("wd_ext", "still");
  REQUIRE(a.exec("UNLISTEN *"));
  REQUIRE(a.exec("LISTEN wd_last"));
  REQUIRE(direct.exec("NOTIFY wd_ext, 'no'; NOTIFY \"WD Mixed\", 'no'; NOTIFY wd_last, 'last'"));
  got("wd_last", "last");

  // b shared the server connection throughout and heard nothing; the connection listens on nothing.
  CHECK(b.scalar("SELECT count(*) FROM pg_listening_channels()") == "0");
  CHECK_FALSE(next_notification(b.c, 100));
  CHECK(pinned_reason(s, a.c) == "");

  // The last listener leaves: the listening connection closes (it would hold the database).
  PQfinish(a.c);
  a.c = nullptr;
  std::string left = "?";
  for (int i = 0; i < 100 && left != "0"; ++i) {
    left = direct.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE query ~ 'LISTEN \"wd_' AND pid <> pg_backend_pid()");
    if (left != "0") std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(left == "0");
}

TEST_CASE("LISTEN in transaction pooling: losing the listening connection closes its clients, as directly") {
  SluiceProcess s(kPools, "admin_users = [\"admin\"]\n");
  Conn a(s.conninfo()), direct(direct_conninfo());
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE(a.exec("LISTEN wd_lost"));
  std::string said;  // libpq passes an error that comes while idle to the notice processor
  PQsetNoticeProcessor(a.c, [](void* arg, const char* m) { *static_cast<std::string*>(arg) += m; }, &said);
  CHECK(direct.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = 'LISTEN "
                      "\"wd_lost\"' AND pid <> pg_backend_pid()") == "1");
  CHECK_FALSE(next_notification(a.c, 5000));
  CHECK(PQstatus(a.c) == CONNECTION_BAD);
  CHECK(said.find("FATAL:  terminating connection due to administrator command") != std::string::npos);
  // A new client listens through a new listening connection.
  Conn c(s.conninfo());
  REQUIRE(c.exec("LISTEN wd_lost"));
  REQUIRE(direct.exec("NOTIFY wd_lost, 'again'"));
  auto n = next_notification(c.c);
  REQUIRE(n);
  CHECK(n->payload == "again");
}
