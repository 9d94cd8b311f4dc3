// Byte-level differential: the same protocol messages sent directly to PostgreSQL and through
// Sluice (session, transaction and statement pools) must bring back the same messages, byte for
// byte (after pgw::normalize). Each scenario is a script of steps: bytes to send, and what ends
// the reading (a message type, a close, or quiet). Logins go through libpq; the exchange itself
// is raw bytes on its socket. Every scenario gets fresh connections on both sides.
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "harness.hpp"
#include "wire_modes.hpp"
#include "pg_wire.hpp"

using namespace sluice::itest;
using namespace sluice::itest::pgw;

namespace {

using namespace sluice::itest::modes;

const std::string kPools = pools("pg");

struct Scenario {
  const char* name;
  std::vector<Step> steps;
  unsigned modes = All;
};

Step send(std::string bytes, Until u = until('Z')) { return Step{std::move(bytes), u, "", 0}; }
Step side(std::string sql, Until u) { return Step{"", u, std::move(sql), 0}; }

std::vector<Scenario> scenarios() {
  const std::string series = "SELECT g, repeat('x', g) FROM generate_series(1, 7) g";
  // Sluice reads an idle client's next request into 128 bytes of its own and serves a request
  // that fits from there: requests that straddle that boundary, arriving in pieces.
  const std::string long_q = query("SELECT '" + std::string(200, 'l') + "' AS long_one");
  const std::string short_q = query("SELECT 1 AS short_one");
  return {
      // Requests in pieces around the idle read's 128 bytes.
      {"a request longer than 128 bytes, its first 100 bytes alone",
       {send(long_q.substr(0, 100), until_quiet(100)), send(long_q.substr(100))}},
      {"a whole request and the first 100 bytes of a longer one, then its rest",
       {send(short_q + long_q.substr(0, 100), until('Z')), send(long_q.substr(100))}},
      {"a whole request and 3 bytes of the next, then its rest",
       {send(short_q + short_q.substr(0, 3), until('Z')), send(short_q.substr(3))}},
      {"two short requests in one write", {send(short_q + short_q, until('Z', 2))}},
      // Results and errors.
      {"notices and a warning between statements and rows",
       {send(query("DO $$BEGIN RAISE NOTICE 'first'; RAISE WARNING 'second'; END$$; SELECT g FROM "
                   "generate_series(1, 3) g; DO $$BEGIN RAISE NOTICE 'third'; END$$"))}},
      {"an error in the middle of a result", {send(query("SELECT 10 / (g - 300) FROM generate_series(1, 500) g"))}},
      {"small rows cut across reads", {send(query("SELECT g, repeat('r', g % 700) FROM generate_series(1, 3000) g"))}},
      {"large rows streaming", {send(query("SELECT repeat(md5(g::text), 6000) FROM generate_series(1, 20) g"))}},
      {"an empty query", {send(query(""))}},
      {"several statements, the second failing", {send(query("SELECT 1; SELECT 1/0; SELECT 3"))}},
      {"a failed transaction refuses until ROLLBACK",
       {send(query("BEGIN")), send(query("SELECT 1/0")), send(query("SELECT 1")), send(query("ROLLBACK")),
        send(query("SELECT 'ok'"))},
       NoStatement},
      {"binary result format",
       {send(parse("SELECT 42::int4, 'abc'::text, 1.5::float8") + bind("", "", {}, {1}) + describe_portal() +
             execute() + sync_msg())}},
      {"text parameters and mixed result formats",
       {send(parse("SELECT $1::int + 1, $2::text", "", {23, 25}) + bind("", "", {"41", "y"}, {1, 0}) +
             describe_portal() + execute() + sync_msg())}},
      {"ParameterDescription of a named statement",
       {send(parse("SELECT $1::int, $2::text", "wd_pd") + describe_statement("wd_pd") + sync_msg())}},
      {"Bind with the wrong number of parameters",
       {send(parse("SELECT $1::int", "wd_bad") + bind("", "wd_bad", {}) + execute() + sync_msg() + query("SELECT 1"),
             until('Z', 2))}},
      {"Sync alone", {send(sync_msg())}},
      {"a second Parse of a name already prepared (42P05), outside a transaction",
       {send(parse("SELECT 1", "wd_dup") + sync_msg()),
        send(parse("SELECT 2", "wd_dup") + bind("", "wd_dup") + execute() + sync_msg()),
        send(bind("", "wd_dup") + execute() + sync_msg())}},
      {"a second Parse of a name already prepared (42P05), inside a transaction: the transaction fails",
       {send(parse("SELECT 1", "wd_dup_tx") + sync_msg()), send(query("BEGIN")),
        send(parse("SELECT 2", "wd_dup_tx") + bind("", "wd_dup_tx") + execute() + sync_msg()),
        send(query("SELECT 'refused'")), send(query("ROLLBACK")), send(bind("", "wd_dup_tx") + execute() + sync_msg())},
       NoStatement},
      {"Close of a statement, then its name prepared again",
       {send(parse("SELECT 1", "wd_again") + sync_msg()), send(close_statement("wd_again") + sync_msg()),
        send(parse("SELECT 'two'", "wd_again") + bind("", "wd_again") + execute() + sync_msg()),
        send(close_statement("wd_never_prepared") + sync_msg())}},
      {"a notice inside an extended-protocol execute",
       {send(parse("SELECT g FROM generate_series(1, 2) g, LATERAL (SELECT set_config('client_min_messages', "
                   "'notice', true)) s") +
             bind() + describe_portal() + execute() + sync_msg())}},

      // Pipelines and Flush.
      {"a pipeline with an error and a Flush in the middle",
       {send(parse("SELECT 1") + bind() + describe_portal() + execute() + flush() + sync_msg() + parse("SELECT 1/0") +
                 bind() + execute() + sync_msg() + parse("SELECT 'after'") + bind() + describe_portal() + execute() +
                 flush() + sync_msg(),
             until('Z', 3))}},
      {"each message answered on Flush, one at a time",
       {send(parse("SELECT 'one step'") + flush(), until('1')), send(bind() + flush(), until('2')),
        send(describe_portal() + flush(), until('T')), send(execute() + flush(), until('C')), send(sync_msg())}},
      {"an error answered on Flush, then messages skipped until Sync",
       {send(parse("SELECT 1/0") + bind() + execute() + flush(), until('E')),
        send(parse("SELECT 2") + bind() + execute() + flush(), until_quiet()), send(sync_msg()),
        send(query("SELECT 'after'"))}},
      {"a named statement described on Flush",
       {send(parse("SELECT $1::text", "wd_flush", {25}) + describe_statement("wd_flush") + flush(), until('T')),
        send(bind("", "wd_flush", {"v"}) + execute() + sync_msg())}},
      {"Flush with nothing pending", {send(flush(), until_quiet()), send(query("SELECT 1"))}},
      {"a pipeline of 200 statements",
       {send(
           [] {
             std::string b;
             for (int i = 0; i < 200; ++i) b += parse("SELECT " + std::to_string(i)) + bind() + execute();
             return b + sync_msg();
           }(),
           until('Z'))}},
      {"several Syncs in one write, the middle group failing",
       {send(parse("SELECT 1") + bind() + execute() + sync_msg() + parse("SELECT x FROM wd_no_such_table") + bind() +
                 execute() + sync_msg() + parse("SELECT 3") + bind() + execute() + sync_msg(),
             until('Z', 3))}},

      // Portals read in chunks.
      {"an unnamed portal read in chunks on Flush",
       {send(parse(series) + bind() + describe_portal() + execute("", 2) + flush(), until('s')),
        send(execute("", 2) + flush(), until('s')), send(execute("", 0) + flush(), until('C')), send(sync_msg())}},
      {"a portal read in chunks, each chunk synced, inside a transaction",
       {send(query("BEGIN")),
        send(parse(series, "wd_chunks") + bind("c1", "wd_chunks") + execute("c1", 3) + sync_msg()),
        send(execute("c1", 3) + sync_msg()), send(execute("c1", 3) + sync_msg()), send(query("COMMIT"))},
       NoStatement},
      {"a row limit without Flush, answered at Sync", {send(parse(series) + bind() + execute("", 2) + sync_msg())}},
      {"two portals interleaved",
       {send(query("BEGIN")),
        send(parse(series, "wd_a") + bind("pa", "wd_a") + bind("pb", "wd_a") + execute("pa", 1) + execute("pb", 2) +
                 execute("pa", 1) + flush(),
             until('s', 3)),
        send(execute("pb", 0) + close_portal("pa") + sync_msg()), send(query("COMMIT"))},
       NoStatement},
      {"a portal closed half read",
       {send(parse(series) + bind("wd_p") + execute("wd_p", 2) + flush(), until('s')),
        send(close_portal("wd_p") + sync_msg())}},
      {"DECLARE and FETCH in a transaction",
       {send(query("BEGIN")), send(query("DECLARE wd_cur CURSOR FOR " + series)), send(query("FETCH 3 FROM wd_cur")),
        send(query("FETCH ALL FROM wd_cur")), send(query("CLOSE wd_cur; COMMIT"))},
       NoStatement},

      // COPY.
      {"COPY TO STDOUT", {send(query("COPY (SELECT g, 'v' || g FROM generate_series(1, 50) g) TO STDOUT"))}},
      {"COPY FROM STDIN",
       {send(query("COPY wd_copy FROM STDIN"), until('G')),
        send(copy_data("1\tone\n") + copy_data("2\ttwo\n") + copy_done())}},
      {"COPY FROM STDIN failed by the client",
       {send(query("COPY wd_copy FROM STDIN"), until('G')), send(copy_data("1\tone\n") + copy_fail("client gave up"))}},
      {"COPY FROM STDIN with bad data",
       {send(query("COPY wd_copy FROM STDIN"), until('G')), send(copy_data("not a number\tx\n") + copy_done())}},
      {"COPY in the extended protocol",
       // 55.2.6: Sync and Flush are ignored during COPY FROM STDIN; CommandComplete waits in the
       // server's buffer for the Sync after CopyDone.
       {send(parse("COPY wd_copy FROM STDIN") + bind() + execute() + sync_msg(), until('G')),
        send(copy_data("3\tthree\n") + copy_done(), until_quiet()), send(sync_msg()),
        send(parse("COPY (SELECT * FROM generate_series(1, 5)) TO STDOUT") + bind() + execute() + sync_msg())}},
      {"COPY FROM STDIN in the extended protocol, with Flush",
       {send(parse("COPY wd_copy FROM STDIN") + bind() + execute() + flush(), until('G')),
        send(copy_data("4\tfour\n") + copy_done() + flush(), until('C')), send(sync_msg())}},

      // Messages the server sends on its own.
      // Pooled, notifications come by the pool's listening connection, whatever the client holds.
      {"a notification to a listening client while it is idle",
       {send(query("LISTEN wd_channel")), side("NOTIFY wd_channel, 'hello'", until('A'))}},
      {"UNLISTEN: only the channels still listened on are heard",
       {send(query("LISTEN wd_u")), send(query("LISTEN \"WD_v\"")), send(query("UNLISTEN wd_u")),
        side("NOTIFY wd_u, 'no'; NOTIFY \"WD_v\", 'yes'", until('A'))}},
      {"LISTEN in the extended protocol",
       {send(parse("LISTEN wd_x") + bind() + execute() + sync_msg()), side("NOTIFY wd_x, 'ext'", until('A'))}},
      {"a notification of its own, before ReadyForQuery",
       {send(query("LISTEN wd_self")), send(query("SELECT pg_notify('wd_self', 'me')"))},
       Session},
      {"idle_session_timeout ends an idle session",
       {send(query("SET idle_session_timeout = '200ms'")), Step{"", until_closed(), "", 0}},
       Session},
      {"idle_in_transaction_session_timeout ends an idle transaction",
       {send(query("BEGIN; SET LOCAL idle_in_transaction_session_timeout = '200ms'")), Step{"", until_closed(), "", 0}},
       NoStatement},
      {"pg_terminate_backend while the client is idle",
       {send(query("SELECT 1")),
        side("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'",
             until_closed())},
       Session},
      {"a Terminate after a query", {send(query("SELECT 1")), send(terminate(), until_closed())}},
  };
}

std::string replace_app(std::string sql, const std::string& app) {
  for (auto p = sql.find("{app}"); p != std::string::npos; p = sql.find("{app}"))
    sql.replace(p, 5, app);
  return sql;
}

Messages run(const std::string& conninfo, const std::string& app, const Scenario& sc, PGconn* helper) {
  INFO("connection " << app);
  Conn c(conninfo + " application_name=" + app);
  REQUIRE_MESSAGE(c.ok(), c.error());
  auto side_sql = [&](const std::string& sql) {
    PGresult* r = PQexec(helper, replace_app(sql, app).c_str());
    CHECK_MESSAGE((PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK),
                  PQresultErrorMessage(r));
    PQclear(r);
  };
  Messages m = run_steps(PQsocket(c.c), sc.steps, side_sql);
  normalize(m);
  return m;
}

}  // namespace

TEST_CASE("the same bytes come back directly and through Sluice, in every pool mode") {
  SluiceProcess s(kPools);
  const std::string direct = "host=" + pg_host() + " port=" + std::to_string(pg_port()) +
                             " user=app password=app dbname=app sslmode=disable";
  Conn helper(direct_conninfo());
  REQUIRE_MESSAGE(helper.ok(), helper.error());
  REQUIRE(helper.exec("DROP TABLE IF EXISTS wd_copy; CREATE TABLE wd_copy (a int, b text); GRANT ALL ON wd_copy TO app"));
  struct Mode {
    const char* db;
    unsigned bit;
  };
  int index = 0;
  for (const auto& sc : scenarios()) {
    ++index;
    Messages want;
    bool have_want = false;
    for (Mode mode : {Mode{"app_session", Session}, Mode{"app_transaction", Transaction}, Mode{"app_statement", Statement}}) {
      if (!(sc.modes & mode.bit)) continue;
      const std::string where = std::string(mode.db) + ": " + sc.name;
      INFO(where);
      // A failed REQUIRE inside a scenario is recorded and ends that scenario only.
      try {
        if (!have_want) {
          want = run(direct, "wd_direct_" + std::to_string(index), sc, helper.c);
          have_want = true;
        }
        Messages got = run(s.conninfo("app", "app", mode.db), "wd_" + std::to_string(index) + "_" + mode.db, sc, helper.c);
        CHECK_MESSAGE(got == want, describe_difference(got, want));
      } catch (const doctest::detail::TestFailureException&) {
      }
    }
  }
}

TEST_CASE("a client that leaves while its statement runs: noticed at once, its server connection freed") {
  SluiceProcess s(kPools + std::string(R"(
[[pools]]
database = "app_one"
server_database = "app"
cluster = "pg"
pool_mode = "transaction"
pool_size = 1
)"),
                  "query_wait_timeout = \"4s\"\n");
  Conn helper(direct_conninfo());
  REQUIRE_MESSAGE(helper.ok(), helper.error());
  auto running = [&](const std::string& marker) {
    return helper.scalar("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%" + marker +
                         "%' AND pid <> pg_backend_pid()");
  };
  SUBCASE("inside a transaction the statement is cancelled (its work is rolled back anyway)") {
    for (std::string db : {"app_session", "app_transaction"}) {
      INFO(db);
      const std::string marker = "wd_close_tx_" + db;
      {
        Conn c(s.conninfo("app", "app", db));
        REQUIRE_MESSAGE(c.ok(), c.error());
        REQUIRE(c.exec("BEGIN"));
        REQUIRE(PQsendQuery(c.c, ("SELECT pg_sleep(20) /* " + marker + " */").c_str()) == 1);
        REQUIRE(eventually([&] { return running(marker) == "1"; }));
      }  // PQfinish: Terminate, then close
      CHECK_MESSAGE(eventually([&] { return running(marker) == "0"; }, 3000),
                    "the statement still runs 3 s after its client left");
    }
  }
  SUBCASE("outside one the statement completes as directly, but the pool has its slot back at once") {
    const std::string marker = "wd_close_autocommit";
    {
      Conn c(s.conninfo("app", "app", "app_one"));
      REQUIRE_MESSAGE(c.ok(), c.error());
      REQUIRE(PQsendQuery(c.c, ("SELECT pg_sleep(6) /* " + marker + " */").c_str()) == 1);
      REQUIRE(eventually([&] { return running(marker) == "1"; }));
    }
    // pool_size = 1 and query_wait_timeout = 4s: served only if the leaving client gave its slot up.
    Conn next(s.conninfo("app", "app", "app_one"));
    CHECK(next.scalar("SELECT 'fresh'") == "fresh");
  }
}

TEST_CASE("StartupMessage and Terminate in one write: the login ends as directly") {
  SluiceProcess s(kPools);
  auto attempt = [](int port) {
    int fd = loopback_connect(port);
    REQUIRE(fd >= 0);
    std::string startup;
    std::string body;
    put_u32(body, 196608);
    body += cstr("user") + cstr("app") + cstr("database") + cstr("app") + std::string(1, '\0');
    put_u32(startup, static_cast<std::uint32_t>(body.size() + 4));
    startup += body + terminate();
    Messages m = run_steps(fd, {Step{startup, until_closed(), "", 0}}, [](const std::string&) {});
    ::close(fd);
    return m;
  };
  Messages direct = attempt(pg_port());
  Messages via = attempt(s.port());
  REQUIRE(!direct.empty());
  REQUIRE(!via.empty());
  // Both ask for a password and then end the connection; neither complains of the packet.
  CHECK(direct.front().first == 'R');
  CHECK(via.front().first == 'R');
  CHECK(via.back().first == '#');
  for (auto& m : via) CHECK_MESSAGE(m.second.find("startup packet") == std::string::npos, m.second);
  // PostgreSQL's own words for the Terminate where the password was due.
  auto message_of = [](const Messages& m) {
    for (auto& [type, body] : m)
      if (type == 'E') {
        auto p = body.find("\0M");
        return p == std::string::npos ? std::string() : std::string(body.c_str() + p + 2);
      }
    return std::string();
  };
  CHECK(message_of(via) == message_of(direct));
}

TEST_CASE("a fresh Parse after its table changed gets a fresh plan, as directly; an old one fails as directly") {
  SluiceProcess s(kPools + std::string(R"(
[[pools]]
database = "app_one_tx"
server_database = "app"
cluster = "pg"
pool_mode = "transaction"
pool_size = 1
)"));
  Conn helper(direct_conninfo());
  REQUIRE_MESSAGE(helper.ok(), helper.error());
  auto result_of = [](PGconn* c, const char* name) {
    PGresult* r = PQexecPrepared(c, name, 0, nullptr, nullptr, nullptr, 0);
    std::string out = PQresultStatus(r) == PGRES_TUPLES_OK ? "columns:" + std::to_string(PQnfields(r))
                                                           : "ERROR:" + std::string(PQresultErrorField(r, PG_DIAG_SQLSTATE) ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : "?");
    PQclear(r);
    return out;
  };
  auto prepare = [](PGconn* c, const char* name, const std::string& sql) {
    PGresult* r = PQprepare(c, name, sql.c_str(), 0, nullptr);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
  };
  const std::string direct = "host=" + pg_host() + " port=" + std::to_string(pg_port()) +
                             " user=app password=app dbname=app sslmode=disable";
  for (std::string target : {std::string("direct"), std::string("app_session"), std::string("app_one_tx")}) {
    INFO(target);
    REQUIRE(helper.exec("DROP TABLE IF EXISTS wd_plan; CREATE TABLE wd_plan (a int); INSERT INTO wd_plan VALUES (1); "
                        "GRANT ALL ON wd_plan TO app"));
    const std::string sql = "SELECT * FROM wd_plan /* " + target + " */";
    const std::string info = target == "direct" ? direct : s.conninfo("app", "app", target);
    Conn a(info), b(info);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    REQUIRE(prepare(a.c, "old", sql));
    CHECK(result_of(a.c, "old") == "columns:1");
    REQUIRE(helper.exec("ALTER TABLE wd_plan ADD COLUMN b int"));
    // Another client's Parse after the change (in transaction mode it shares a's server connection).
    REQUIRE(prepare(b.c, "fresh", sql));
    CHECK(result_of(b.c, "fresh") == "columns:2");
    // The same client parsing the same text again, under another name.
    REQUIRE(prepare(a.c, "again", sql));
    CHECK(result_of(a.c, "again") == "columns:2");
  }
}
