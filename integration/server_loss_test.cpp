// A server connection dies under a client (its backend terminated, its thread killed): in a
// pooled mode the client's connection to Sluice is not the one that died, so it stays. A read
// outside a transaction whose answer has not started runs again on another member (simple,
// extended and prepared on PostgreSQL; COM_QUERY and COM_STMT_EXECUTE on MariaDB); anything else
// gets an error that says what happened (a transaction is failed, as the server fails one) and
// the client goes on. Only session mode passes the server's FATAL through.
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>

#include <array>
#include <cstring>
#include <string>
#include <thread>

#include "harness.hpp"

using namespace sluice::itest;

namespace {

int pg_replica_port() { return std::stoi(env_or("SLUICE_PG_REPLICA_PORT", "15433")); }
int my_replica_port() { return std::stoi(env_or("SLUICE_MY_REPLICA_PORT", "13307")); }

// Both engines' primary + replica, read/write split with read-your-writes, transaction mode
// (or `mode`).
std::string clusters(const std::string& mode = "transaction") {
  return "[clusters.pgr]\nprotocol = \"postgres\"\nprimary = \"127.0.0.1:" + std::to_string(pg_port()) +
         "\"\nreplicas = [\"127.0.0.1:" + std::to_string(pg_replica_port()) +
         "\"]\nhealth_check_period = \"100ms\"\n"
         "\n[clusters.myr]\nprotocol = \"mysql\"\nprimary = \"127.0.0.1:" +
         std::to_string(my_port()) + "\"\nreplicas = [\"127.0.0.1:" + std::to_string(my_replica_port()) +
         "\"]\nhealth_check_period = \"100ms\"\n"
         "\n[[pools]]\ndatabase = \"app\"\ncluster = \"pgr\"\npool_size = 4\npool_mode = \"" +
         mode + "\"\n\n[[pools]]\ndatabase = \"app\"\ncluster = \"myr\"\npool_size = 4\npool_mode = \"" + mode + "\"\n";
}

std::string pg_superuser(int port) {
  return "host=127.0.0.1 port=" + std::to_string(port) + " user=postgres dbname=app sslmode=disable";
}

// Terminates (bounded wait) the backend of `app` on the server at `port` whose query contains
// `marker` (and meets `also`, a condition on pg_stat_activity); true when exactly one was found.
bool terminate_running(int port, const std::string& marker, const std::string& also = "true") {
  Conn su(pg_superuser(port));
  return eventually([&] {
    return su.scalar(
               "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'app' AND query LIKE '%" +
               marker + "%' AND pid <> pg_backend_pid() AND " + also) == "1";
  });
}

std::string sqlstate(PGresult* r) {
  const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  return s ? s : "";
}

// Reads go to the replica again (it is out for a moment after a failure is reported).
void wait_for_replica_reads(Conn& c) {
  REQUIRE(eventually([&] { return c.scalar("SELECT pg_is_in_recovery()") == "t"; }, 10000));
}

// Kills (bounded wait) the connection of `app` on the MariaDB server at `port` whose statement
// contains `marker` (and meets `also`, a condition on PROCESSLIST); true when one was found.
bool kill_running(int port, const std::string& marker, const std::string& also = "TRUE") {
  MyConn root(port, "root", "");
  REQUIRE_MESSAGE(root.ok, mysql_error(root.m));
  return eventually([&] {
    std::string id = root.scalar("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'app' AND INFO LIKE '%" +
                                 marker + "%' AND ID <> CONNECTION_ID() AND " + also + " LIMIT 1");
    return !id.empty() && id.rfind("ERR", 0) != 0 && root.scalar("KILL " + id).empty();
  });
}

}  // namespace

TEST_CASE("PostgreSQL, transaction mode: a read whose server is terminated before answering runs again elsewhere") {
  SluiceProcess s(clusters());
  Conn c(s.conninfo());
  REQUIRE_MESSAGE(c.ok(), c.error());
  for (const char* how : {"simple", "extended", "prepared"}) {
    INFO(how);
    wait_for_replica_reads(c);
    const std::string marker = std::string("loss_read_") + how;
    const std::string sql = "SELECT pg_is_in_recovery()::text || '/" + marker + "' FROM pg_sleep(0.5)";
    if (std::string(how) == "simple") {
      REQUIRE(PQsendQuery(c.c, sql.c_str()) == 1);
    } else if (std::string(how) == "extended") {
      REQUIRE(PQsendQueryParams(c.c, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) == 1);
    } else {
      PGresult* p = PQprepare(c.c, "loss_stmt", sql.c_str(), 0, nullptr);
      REQUIRE(PQresultStatus(p) == PGRES_COMMAND_OK);
      PQclear(p);
      REQUIRE(PQsendQueryPrepared(c.c, "loss_stmt", 0, nullptr, nullptr, nullptr, 0) == 1);
    }
    CHECK(terminate_running(pg_replica_port(), marker));
    PGresult* r = PQgetResult(c.c);
    REQUIRE_MESSAGE(PQresultStatus(r) == PGRES_TUPLES_OK, PQresultErrorMessage(r));
    CHECK(std::string(PQgetvalue(r, 0, 0)) == "false/" + marker);  // answered by the primary
    PQclear(r);
    CHECK(PQgetResult(c.c) == nullptr);
    CHECK(PQstatus(c.c) == CONNECTION_OK);
  }
  CHECK(s.wait_for_log("running it again", 1000));
}

// PostgreSQL keeps an answer's rows in its output buffer until the statement ends; a backend
// terminated mid-statement flushes them together with its FATAL. None of them has reached the
// client, so the read runs again elsewhere, and the client gets every row once.
TEST_CASE("PostgreSQL, transaction mode: a read terminated with rows unsent runs again elsewhere, every row once") {
  SluiceProcess s(clusters());
  Conn c(s.conninfo());
  REQUIRE_MESSAGE(c.ok(), c.error());
  for (const char* how : {"simple", "extended"}) {
    INFO(how);
    wait_for_replica_reads(c);
    const std::string marker = std::string("loss_rows_") + how;
    const std::string sql =
        "SELECT pg_is_in_recovery()::text || '/' || x || '/" + marker +
        "' FROM generate_series(1, 3) x WHERE pg_sleep(CASE WHEN x = 3 THEN 1.5 ELSE 0 END) IS NOT NULL";
    if (std::string(how) == "simple") REQUIRE(PQsendQuery(c.c, sql.c_str()) == 1);
    else REQUIRE(PQsendQueryParams(c.c, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) == 1);
    // Asleep at row 3 for a while: rows 1 and 2 are in its output buffer.
    CHECK(terminate_running(pg_replica_port(), marker,
                            "wait_event = 'PgSleep' AND now() - query_start > interval '200 milliseconds'"));
    PGresult* r = PQgetResult(c.c);
    REQUIRE_MESSAGE(PQresultStatus(r) == PGRES_TUPLES_OK, PQresultErrorMessage(r));
    std::string rows;
    for (int i = 0; i < PQntuples(r); ++i) rows += std::string(PQgetvalue(r, i, 0)) + ";";
    CHECK(rows == "false/1/" + marker + ";false/2/" + marker + ";false/3/" + marker + ";");  // the primary's
    PQclear(r);
    CHECK(PQgetResult(c.c) == nullptr);
    CHECK(PQstatus(c.c) == CONNECTION_OK);
  }
  CHECK(s.wait_for_log("running it again", 1000));
}

TEST_CASE("PostgreSQL, transaction mode: a transaction whose server dies is failed; the client rolls back and goes on") {
  SluiceProcess s(clusters());
  Conn c(s.conninfo());
  REQUIRE_MESSAGE(c.ok(), c.error());
  for (const char* how : {"simple", "extended"}) {
    INFO(how);
    REQUIRE(c.exec("BEGIN"));
    std::string pid = c.scalar("SELECT pg_backend_pid()");
    Conn su(pg_superuser(pg_port()));
    REQUIRE(su.scalar("SELECT pg_terminate_backend(" + pid + ")") == "t");
    PGresult* r = std::string(how) == "simple"
                      ? PQexec(c.c, "SELECT 2")
                      : PQexecParams(c.c, "SELECT $1::int", 1, nullptr, std::array<const char*, 1>{"2"}.data(), nullptr,
                                     nullptr, 0);
    CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);  // libpq's name for an ERROR result
    CHECK(sqlstate(r) == "40000");
    CHECK(std::string(PQresultErrorMessage(r)).find("the transaction is rolled back") != std::string::npos);
    PQclear(r);
    CHECK(PQstatus(c.c) == CONNECTION_OK);
    CHECK(PQtransactionStatus(c.c) == PQTRANS_INERROR);
    // As in any failed transaction: statements are refused until it ends.
    CHECK(c.scalar("SELECT 3") == "ERROR:25P02");
    r = PQexecParams(c.c, "SELECT $1::int", 1, nullptr, std::array<const char*, 1>{"3"}.data(), nullptr, nullptr, 0);
    CHECK(sqlstate(r) == "25P02");
    PQclear(r);
    CHECK(c.exec("ROLLBACK"));
    CHECK(PQtransactionStatus(c.c) == PQTRANS_IDLE);
    CHECK(c.scalar("SELECT 4") == "4");
  }
}

TEST_CASE("PostgreSQL, transaction mode: a failed transaction is not answered from the result cache") {
  Conn owner("host=127.0.0.1 port=" + std::to_string(pg_port()) + " user=app password=app dbname=app sslmode=disable");
  REQUIRE(owner.exec("DROP TABLE IF EXISTS loss_cached; CREATE TABLE loss_cached (v int); INSERT INTO loss_cached VALUES (7)"));
  SluiceProcess s(clusters() + "\n[cache]\nenabled = true\nmode = \"all\"\n");
  Conn c(s.conninfo());
  REQUIRE_MESSAGE(c.ok(), c.error());
  REQUIRE(eventually([&] { return c.scalar("SELECT v FROM loss_cached") == "7"; }, 10000));
  CHECK(c.scalar("SELECT v FROM loss_cached") == "7");  // cached now
  PGresult* p = PQprepare(c.c, "known", "SELECT v FROM loss_cached", 0, nullptr);  // a statement the server knows
  REQUIRE(PQresultStatus(p) == PGRES_COMMAND_OK);
  PQclear(p);
  REQUIRE(c.exec("BEGIN"));
  std::string pid = c.scalar("SELECT pg_backend_pid()");
  Conn su(pg_superuser(pg_port()));
  REQUIRE(su.scalar("SELECT pg_terminate_backend(" + pid + ")") == "t");
  CHECK(c.scalar("SELECT 1") == "ERROR:40000");
  // In the failed transaction the server refuses every statement, cached or not.
  CHECK(c.scalar("SELECT v FROM loss_cached") == "ERROR:25P02");
  // Nor a prepared statement's execution. (A Parse of a statement the server connection already
  // has is answered by the relay itself, in a failed transaction too, where PostgreSQL says 25P02
  // at the Parse already; the error then comes at the Bind: a difference for the wire-fidelity work.)
  p = PQexecPrepared(c.c, "known", 0, nullptr, nullptr, nullptr, 0);
  CHECK(sqlstate(p) == "25P02");
  PQclear(p);
  CHECK(c.exec("ROLLBACK"));
  CHECK(c.scalar("SELECT v FROM loss_cached") == "7");
  owner.exec("DROP TABLE loss_cached");
}

TEST_CASE("PostgreSQL, transaction mode: a statement of unknown outcome gets 08007; a Flush-driven pipeline gets its Sync") {
  SluiceProcess s(clusters());
  Conn c(s.conninfo());
  REQUIRE_MESSAGE(c.ok(), c.error());
  // Not a read (the hint sends it to the primary as one would send a write): not run again.
  REQUIRE(PQsendQuery(c.c, "/* sluice:primary */ SELECT 'loss_unknown' FROM pg_sleep(1)") == 1);
  CHECK(terminate_running(pg_port(), "loss_unknown"));
  PGresult* r = PQgetResult(c.c);
  CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
  CHECK(sqlstate(r) == "08007");
  CHECK(std::string(PQresultErrorMessage(r)).find("may or may not have completed") != std::string::npos);
  PQclear(r);
  CHECK(PQgetResult(c.c) == nullptr);
  CHECK(c.scalar("SELECT 5") == "5");

  // Pipeline mode, a statement sent with a flush request and no Sync yet (as drivers stream a
  // batch): the error comes at once, the Sync that follows gets its ReadyForQuery.
  REQUIRE(PQenterPipelineMode(c.c) == 1);
  REQUIRE(PQsendQueryParams(c.c, "/* sluice:primary */ SELECT 'loss_pipeline' FROM pg_sleep(1)", 0, nullptr, nullptr,
                            nullptr, nullptr, 0) == 1);
  REQUIRE(PQsendFlushRequest(c.c) == 1);
  REQUIRE(PQflush(c.c) == 0);
  CHECK(terminate_running(pg_port(), "loss_pipeline"));
  r = PQgetResult(c.c);
  CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
  CHECK(sqlstate(r) == "08007");
  PQclear(r);
  CHECK(PQgetResult(c.c) == nullptr);
  REQUIRE(PQpipelineSync(c.c) == 1);
  r = PQgetResult(c.c);
  CHECK(PQresultStatus(r) == PGRES_PIPELINE_SYNC);
  PQclear(r);
  REQUIRE(PQexitPipelineMode(c.c) == 1);
  CHECK(c.scalar("SELECT 6") == "6");

  // COPY FROM STDIN whose server dies: the error ends the COPY; data the client still sends is
  // dropped, as the server drops it.
  Conn(direct_conninfo()).exec("CREATE TABLE IF NOT EXISTS loss_copy (x int); GRANT ALL ON loss_copy TO app");
  r = PQexec(c.c, "COPY loss_copy FROM STDIN");
  REQUIRE(PQresultStatus(r) == PGRES_COPY_IN);
  PQclear(r);
  CHECK(terminate_running(pg_port(), "COPY loss_copy"));
  for (int i = 0; i < 10 && PQputCopyData(c.c, "1\n", 2) == 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  PQputCopyEnd(c.c, nullptr);
  r = PQgetResult(c.c);
  CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
  CHECK(sqlstate(r) == "08007");
  PQclear(r);
  while ((r = PQgetResult(c.c)) != nullptr) PQclear(r);
  CHECK(c.scalar("SELECT 7") == "7");
  Conn(direct_conninfo()).exec("DROP TABLE loss_copy");
}

TEST_CASE("PostgreSQL, session mode: the server's FATAL reaches the client, which owned that session") {
  SluiceProcess s(clusters("session"));
  Conn c(s.conninfo());
  REQUIRE_MESSAGE(c.ok(), c.error());
  std::string pid = c.scalar("SELECT pg_backend_pid()");
  Conn su(pg_superuser(pg_port()));
  REQUIRE(su.scalar("SELECT pg_terminate_backend(" + pid + ")") == "t");
  CHECK(c.scalar("SELECT 1").rfind("ERROR", 0) == 0);
  CHECK(PQstatus(c.c) == CONNECTION_BAD);
  CHECK_MESSAGE(std::string(PQerrorMessage(c.c)).find("terminating connection due to administrator command") !=
                    std::string::npos,
                PQerrorMessage(c.c));
}

TEST_CASE("MariaDB, transaction mode: a read whose server thread is killed runs again elsewhere (COM_QUERY, COM_STMT_EXECUTE)") {
  SluiceProcess s(clusters());
  MyConn c(s.my_port());
  REQUIRE_MESSAGE(c.ok, mysql_error(c.m));
  REQUIRE(eventually([&] { return c.scalar("SELECT @@read_only") == "1"; }, 10000));
  const std::string q = "SELECT CONCAT(@@read_only, '/loss_query') FROM (SELECT SLEEP(0.5)) s";
  REQUIRE(mysql_send_query(c.m, q.data(), q.size()) == 0);
  CHECK(kill_running(my_replica_port(), "loss_query"));
  REQUIRE_MESSAGE(mysql_read_query_result(c.m) == 0, mysql_error(c.m));
  MYSQL_RES* res = mysql_store_result(c.m);
  REQUIRE(res);
  MYSQL_ROW row = mysql_fetch_row(res);
  REQUIRE(row);
  CHECK(std::string(row[0]) == "OFF/loss_query");  // answered by the primary
  mysql_free_result(res);

  REQUIRE(eventually([&] { return c.scalar("SELECT @@read_only") == "1"; }, 10000));
  MYSQL_STMT* st = mysql_stmt_init(c.m);
  const std::string ps = "SELECT CONCAT(@@read_only, '/loss_execute') FROM (SELECT SLEEP(0.5)) s";
  REQUIRE(mysql_stmt_prepare(st, ps.data(), ps.size()) == 0);
  int rc = -1;
  std::thread exec([&] { rc = mysql_stmt_execute(st); });
  CHECK(kill_running(my_replica_port(), "loss_execute"));
  exec.join();
  REQUIRE_MESSAGE(rc == 0, mysql_stmt_error(st));
  char buf[64] = {};
  unsigned long len = 0;
  MYSQL_BIND b{};
  b.buffer_type = MYSQL_TYPE_STRING;
  b.buffer = buf;
  b.buffer_length = sizeof buf;
  b.length = &len;
  REQUIRE(mysql_stmt_bind_result(st, &b) == 0);
  REQUIRE(mysql_stmt_fetch(st) == 0);
  CHECK(std::string(buf, len) == "OFF/loss_execute");
  mysql_stmt_close(st);
  CHECK(s.wait_for_log("running it again", 1000));
}

// MariaDB keeps a result's rows in its network buffer until the buffer fills or the statement
// ends. A thread killed with rows of its answer produced but not yet sent (MariaDB 10.11 drops
// them and closes the connection): none reached the client, so the read runs again elsewhere,
// and the client gets every row once.
TEST_CASE("MariaDB, transaction mode: a read killed with rows produced but unsent runs again elsewhere") {
  SluiceProcess s(clusters());
  MyConn c(s.my_port());
  REQUIRE_MESSAGE(c.ok, mysql_error(c.m));
  REQUIRE(eventually([&] { return c.scalar("SELECT @@read_only") == "1"; }, 10000));
  const std::string q =
      "SELECT CONCAT(@@read_only, '/', seq, '/loss_rows') FROM seq_1_to_3 WHERE SLEEP(IF(seq = 3, 1.5, 0)) = 0";
  REQUIRE(mysql_send_query(c.m, q.data(), q.size()) == 0);
  // Asleep at row 3 for a while: rows 1 and 2 are in its network buffer.
  CHECK(kill_running(my_replica_port(), "loss_rows", "STATE = 'User sleep' AND TIME_MS > 200"));
  REQUIRE_MESSAGE(mysql_read_query_result(c.m) == 0, mysql_error(c.m));
  MYSQL_RES* res = mysql_store_result(c.m);
  REQUIRE(res);
  std::string rows;
  while (MYSQL_ROW row = mysql_fetch_row(res)) rows += std::string(row[0]) + ";";
  mysql_free_result(res);
  CHECK(rows == "OFF/1/loss_rows;OFF/2/loss_rows;OFF/3/loss_rows;");  // all of them, from the primary
  CHECK(s.wait_for_log("running it again", 1000));
}

TEST_CASE("MariaDB, transaction mode: a killed transaction, and a result cut off mid-stream, end in an error, not a lost client") {
  SluiceProcess s(clusters());
  MyConn c(s.my_port());
  REQUIRE_MESSAGE(c.ok, mysql_error(c.m));
  REQUIRE(c.scalar("BEGIN").empty());
  std::string id = c.scalar("SELECT CONNECTION_ID()");
  MyConn root(my_port(), "root", "");
  REQUIRE(root.ok);
  REQUIRE(root.scalar("KILL " + id).empty());
  CHECK(c.scalar("SELECT 2") == "ERR:1317");
  CHECK(std::string(mysql_error(c.m)).find("the transaction is rolled back") != std::string::npos);
  CHECK(c.scalar("SELECT @@in_transaction") == "0");
  CHECK(c.scalar("SELECT 3") == "3");

  // COM_SET_OPTION in a transaction whose server thread was killed: an answer, not a wait (the
  // read timeout turns a hang into error 2013 here).
  {
    MYSQL* m = mysql_init(nullptr);
    unsigned timeout = 5;
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &timeout);
    REQUIRE(mysql_real_connect(m, "127.0.0.1", "app", "app", "app", static_cast<unsigned>(s.my_port()), nullptr, 0));
    REQUIRE(mysql_query(m, "BEGIN") == 0);
    REQUIRE(mysql_query(m, "SELECT CONNECTION_ID()") == 0);
    MYSQL_RES* r = mysql_store_result(m);
    std::string thread = mysql_fetch_row(r)[0];
    mysql_free_result(r);
    REQUIRE(root.scalar("KILL " + thread).empty());
    CHECK(mysql_set_server_option(m, MYSQL_OPTION_MULTI_STATEMENTS_ON) != 0);
    CHECK_MESSAGE(mysql_errno(m) == 1317, mysql_error(m));
    CHECK(mysql_query(m, "SELECT 1") == 0);
    if (MYSQL_RES* ok = mysql_store_result(m)) mysql_free_result(ok);
    mysql_close(m);
  }

  // Rows streaming (mysql_use_result) when the server thread is killed: the rows already sent
  // arrive, then an ERR in place of the rest; the connection stays usable.
  const std::string q = "/* sluice:primary */ SELECT REPEAT('x', 1000), 'loss_stream' FROM seq_1_to_200000";
  REQUIRE(mysql_real_query(c.m, q.data(), q.size()) == 0);
  MYSQL_RES* res = mysql_use_result(c.m);
  REQUIRE(res);
  int rows = 0;
  for (; rows < 100; ++rows) REQUIRE(mysql_fetch_row(res));
  CHECK(kill_running(my_port(), "loss_stream"));
  while (mysql_fetch_row(res)) ++rows;
  CHECK(rows < 200000);
  CHECK_MESSAGE(mysql_errno(c.m) == 1317, mysql_error(c.m));
  mysql_free_result(res);
  CHECK(c.scalar("SELECT 4") == "4");
}
