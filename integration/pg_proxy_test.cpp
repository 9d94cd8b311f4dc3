// PostgreSQL front end, driven by libpq through Sluice against real PostgreSQL 15 servers.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace sluice::itest;
using Clock = std::chrono::steady_clock;

namespace {

const char* kTxPool = "[[pools]]\ndatabase = \"app\"\ncluster = \"pg\"\npool_mode = \"transaction\"\npool_size = ";

std::string tx_pool(int size) { return std::string(kTxPool) + std::to_string(size) + "\n"; }

// Reads one backend message from a raw socket (bounded by a receive timeout).
bool read_message(int fd, char& type, std::string& body) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);  // libpq's sockets are non-blocking
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char hdr[5];
  std::size_t got = 0;
  while (got < 5) {
    ssize_t n = ::recv(fd, hdr + got, 5 - got, 0);
    if (n <= 0) return false;
    got += static_cast<std::size_t>(n);
  }
  type = hdr[0];
  uint32_t len = (uint32_t(uint8_t(hdr[1])) << 24) | (uint32_t(uint8_t(hdr[2])) << 16) | (uint32_t(uint8_t(hdr[3])) << 8) | uint8_t(hdr[4]);
  if (len < 4 || len > (1u << 20)) return false;
  body.assign(len - 4, '\0');
  got = 0;
  while (got < body.size()) {
    ssize_t n = ::recv(fd, body.data() + got, body.size() - got, 0);
    if (n <= 0) return false;
    got += static_cast<std::size_t>(n);
  }
  return true;
}

std::string error_code_in(const std::string& body) {
  for (std::size_t i = 0; i < body.size();) {
    char f = body[i++];
    if (f == 0) break;
    auto end = body.find('\0', i);
    if (f == 'C') return body.substr(i, end - i);
    i = end + 1;
  }
  return "";
}

int raw_connect(int port) {
  int fd = loopback_connect(port);
  REQUIRE(fd >= 0);
  return fd;
}

}  // namespace

TEST_CASE("authentication: SCRAM and md5 succeed; wrong password, unknown user and database fail properly") {
  SluiceProcess s(tx_pool(5));
  {
    Conn c(s.conninfo());
    REQUIRE_MESSAGE(c.ok(), c.error());
    CHECK(c.scalar("select current_user") == "app");
    CHECK(std::string(PQparameterStatus(c.c, "server_version")).rfind("15", 0) == 0);
    CHECK(PQbackendPID(c.c) != 0);
  }
  {
    Conn c(s.conninfo("md5user", "md5pass"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    CHECK(c.scalar("select current_user") == "md5user");
  }
  {
    Conn c(s.conninfo("app", "wrong"));
    CHECK_FALSE(c.ok());
    CHECK(c.error().find("password authentication failed for user \"app\"") != std::string::npos);
  }
  {
    Conn c(s.conninfo("nobody", "x"));
    CHECK_FALSE(c.ok());
    CHECK(c.error().find("role \"nobody\" does not exist") != std::string::npos);
  }
  {
    Conn c(s.conninfo("app", "app", "nodb"));
    CHECK_FALSE(c.ok());
    CHECK(c.error().find("database \"nodb\" does not exist") != std::string::npos);
  }
}

TEST_CASE("SASLprep: a non-ASCII password PostgreSQL accepts is accepted through Sluice, both ways") {
  // U+2168 ROMAN NUMERAL NINE: SASLprep (RFC 4013) makes it "IX" before the SCRAM keys are derived,
  // in libpq, in PostgreSQL and so in Sluice (to the client, and to the server).
  const std::string pw = "\xE2\x85\xA8-\xC2\xAA";
  Conn admin(direct_conninfo());
  REQUIRE_MESSAGE(admin.ok(), admin.error());
  const bool exists = admin.scalar("SELECT count(*) FROM pg_roles WHERE rolname = 'saslprep_user'") == "1";
  REQUIRE(admin.exec((exists ? "ALTER" : "CREATE") + std::string(" ROLE saslprep_user LOGIN PASSWORD '") + pw + "'"));
  REQUIRE(admin.exec("GRANT CONNECT ON DATABASE app TO saslprep_user"));
  Conn direct("host=" + pg_host() + " port=" + std::to_string(pg_port()) + " user=saslprep_user password=" + pw +
              " dbname=app sslmode=disable");
  REQUIRE_MESSAGE(direct.ok(), direct.error());
  SluiceProcess s(tx_pool(2) + "\n[[users]]\nname = \"saslprep_user\"\npassword = \"" + pw + "\"\n");
  Conn c(s.conninfo("saslprep_user", pw));
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(c.scalar("select current_user") == "saslprep_user");
  Conn wrong(s.conninfo("saslprep_user", "IX-b"));
  CHECK_FALSE(wrong.ok());
}

TEST_CASE("raw protocol: SSLRequest is answered N, error codes 28P01 / 3D000 / 08P01 on the wire") {
  SluiceProcess s(tx_pool(2));
  int fd = raw_connect(s.port());
  const unsigned char ssl[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
  REQUIRE(::send(fd, ssl, 8, 0) == 8);
  char answer = 0;
  REQUIRE(::recv(fd, &answer, 1, 0) == 1);
  CHECK(answer == 'N');
  // A startup packet claiming 2 GB.
  const unsigned char huge[8] = {0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0};
  REQUIRE(::send(fd, huge, 8, 0) == 8);
  char type = 0;
  std::string body;
  REQUIRE(read_message(fd, type, body));
  CHECK(type == 'E');
  CHECK(error_code_in(body) == "08P01");
  ::close(fd);

  // After login, a message with an absurd length is refused with 08P01 and the session closes.
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  int cfd = PQsocket(c.c);
  const unsigned char bad[5] = {'Q', 0x7f, 0xff, 0xff, 0xff};
  REQUIRE(::send(cfd, bad, 5, 0) == 5);
  REQUIRE(read_message(cfd, type, body));
  CHECK(type == 'E');
  CHECK(error_code_in(body) == "08P01");
  // An unknown message type is refused too.
  Conn c2(s.conninfo());
  REQUIRE(c2.ok());
  const unsigned char unknown[6] = {'!', 0, 0, 0, 5, 'x'};
  REQUIRE(::send(PQsocket(c2.c), unknown, 6, 0) == 6);
  REQUIRE(read_message(PQsocket(c2.c), type, body));
  CHECK(type == 'E');
  CHECK(error_code_in(body) == "08P01");
  // Sluice is still serving.
  Conn c3(s.conninfo());
  CHECK(c3.scalar("select 7") == "7");
}

TEST_CASE("simple, extended and pipelined queries; errors and notices like a direct connection") {
  SluiceProcess s(tx_pool(3));
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  PGresult* r = PQexec(c.c, "select g, repeat('x', g) from generate_series(1, 500) g");
  REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
  CHECK(PQntuples(r) == 500);
  CHECK(std::string(PQgetvalue(r, 499, 1)).size() == 500);
  CHECK(std::string(PQfname(r, 1)) == "repeat");
  PQclear(r);

  // Errors inside a transaction: aborted state, then rollback.
  CHECK(c.exec("begin"));
  CHECK(c.scalar("select * from no_such_table") == "ERROR:42P01");
  CHECK(PQtransactionStatus(c.c) == PQTRANS_INERROR);
  CHECK(c.scalar("select 1") == "ERROR:25P02");
  CHECK(c.exec("rollback"));
  CHECK(PQtransactionStatus(c.c) == PQTRANS_IDLE);

  // Notices are relayed.
  static std::string notice;
  PQsetNoticeReceiver(c.c, [](void*, const PGresult* res) { notice = PQresultErrorMessage(res); }, nullptr);
  CHECK(c.exec("do $$ begin raise notice 'hello from plpgsql'; end $$"));
  CHECK(notice.find("hello from plpgsql") != std::string::npos);

  // Extended protocol with text and binary parameters.
  const char* params[2] = {"41", "abc"};
  r = PQexecParams(c.c, "select $1::int + 1, upper($2)", 2, nullptr, params, nullptr, nullptr, 0);
  REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(r, 0, 0)) == "42");
  CHECK(std::string(PQgetvalue(r, 0, 1)) == "ABC");
  PQclear(r);
  r = PQexecParams(c.c, "select $1::int", 1, nullptr, params, nullptr, nullptr, 1);  // binary result
  REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
  CHECK(PQgetlength(r, 0, 0) == 4);
  PQclear(r);

  // Pipeline mode: several Syncs in flight, including an error in the middle.
  REQUIRE(PQenterPipelineMode(c.c) == 1);
  const char* v1[1] = {"1"};
  REQUIRE(PQsendQueryParams(c.c, "select $1::int * 10", 1, nullptr, v1, nullptr, nullptr, 0));
  REQUIRE(PQpipelineSync(c.c));
  REQUIRE(PQsendQueryParams(c.c, "select 1/0", 0, nullptr, nullptr, nullptr, nullptr, 0));
  REQUIRE(PQpipelineSync(c.c));
  const char* v3[1] = {"3"};
  REQUIRE(PQsendQueryParams(c.c, "select $1::int * 10", 1, nullptr, v3, nullptr, nullptr, 0));
  REQUIRE(PQpipelineSync(c.c));
  std::vector<std::string> seen;
  int syncs = 0;
  while (syncs < 3) {
    PGresult* pr = PQgetResult(c.c);
    if (!pr) continue;
    auto st = PQresultStatus(pr);
    if (st == PGRES_PIPELINE_SYNC) ++syncs;
    else if (st == PGRES_TUPLES_OK) seen.push_back(PQgetvalue(pr, 0, 0));
    else if (st == PGRES_FATAL_ERROR) seen.push_back(std::string("ERROR:") + PQresultErrorField(pr, PG_DIAG_SQLSTATE));
    PQclear(pr);
  }
  REQUIRE(PQexitPipelineMode(c.c) == 1);
  CHECK(seen == std::vector<std::string>{"10", "ERROR:22012", "30"});
  CHECK(c.scalar("select 'still fine'") == "still fine");
}

TEST_CASE("prepared statements: 50 clients over 5 server connections in transaction mode") {
  SluiceProcess s(tx_pool(5));
  std::atomic<int> failures{0}, done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 50; ++t)
    threads.emplace_back([&, t] {
      Conn c(s.conninfo());
      if (!c.ok()) {
        ++failures;
        return;
      }
      // Half the clients use one statement name, half another, with overlapping texts.
      std::string name = t % 2 ? "add_one" : "stmt_" + std::to_string(t);
      PGresult* r = PQprepare(c.c, name.c_str(), "select $1::int + 1", 0, nullptr);
      if (PQresultStatus(r) != PGRES_COMMAND_OK) ++failures;
      PQclear(r);
      for (int i = 0; i < 20; ++i) {
        std::string v = std::to_string(t * 100 + i);
        const char* p[1] = {v.c_str()};
        r = PQexecPrepared(c.c, name.c_str(), 1, p, nullptr, nullptr, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || std::stoi(PQgetvalue(r, 0, 0)) != t * 100 + i + 1) ++failures;
        PQclear(r);
      }
      r = PQdescribePrepared(c.c, name.c_str());
      if (PQresultStatus(r) != PGRES_COMMAND_OK || PQnparams(r) != 1) ++failures;
      PQclear(r);
      ++done;
    });
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(done == 50);
  Conn direct(direct_conninfo());
  REQUIRE(direct.ok());
  // Backends of the previous tests' Sluice processes may take a moment to go.
  int servers = 0;
  CHECK(eventually([&] {
    servers = std::stoi(direct.scalar("select count(*) from pg_stat_activity where usename = 'app' and datname = 'app'"));
    return servers <= 5;
  }, 3000));
  CHECK(servers >= 1);
  // A statement the client never prepared is still an error, with PostgreSQL's code.
  Conn c(s.conninfo());
  PGresult* r = PQexecPrepared(c.c, "never_prepared", 0, nullptr, nullptr, nullptr, 0);
  CHECK(std::string(PQresultErrorField(r, PG_DIAG_SQLSTATE)) == "26000");
  PQclear(r);
}

TEST_CASE("COPY FROM STDIN and TO STDOUT of more than 10 MB") {
  SluiceProcess s(tx_pool(2));
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  REQUIRE(c.exec("drop table if exists itest_copy; create table itest_copy (id int, payload text)"));
  PGresult* r = PQexec(c.c, "copy itest_copy from stdin");
  REQUIRE(PQresultStatus(r) == PGRES_COPY_IN);
  PQclear(r);
  const int rows = 120000;
  std::string line, payload(90, 'p');
  std::size_t sent = 0;
  for (int i = 0; i < rows; ++i) {
    line = std::to_string(i) + "\t" + payload + "\n";
    REQUIRE(PQputCopyData(c.c, line.data(), static_cast<int>(line.size())) == 1);
    sent += line.size();
  }
  CHECK(sent > 10'000'000);
  REQUIRE(PQputCopyEnd(c.c, nullptr) == 1);
  r = PQgetResult(c.c);
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  CHECK(std::string(PQcmdTuples(r)) == std::to_string(rows));
  PQclear(r);
  while ((r = PQgetResult(c.c))) PQclear(r);

  r = PQexec(c.c, "copy itest_copy to stdout");
  REQUIRE(PQresultStatus(r) == PGRES_COPY_OUT);
  PQclear(r);
  std::size_t received = 0;
  int lines = 0;
  char* buf = nullptr;
  int n;
  while ((n = PQgetCopyData(c.c, &buf, 0)) > 0) {
    received += static_cast<std::size_t>(n);
    ++lines;
    PQfreemem(buf);
  }
  CHECK(n == -1);
  r = PQgetResult(c.c);
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  while ((r = PQgetResult(c.c))) PQclear(r);
  CHECK(lines == rows);
  CHECK(received == sent);
  // A failed COPY (client aborts) leaves the session usable.
  r = PQexec(c.c, "copy itest_copy from stdin");
  PQclear(r);
  PQputCopyEnd(c.c, "client changed its mind");
  r = PQgetResult(c.c);
  CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
  PQclear(r);
  while ((r = PQgetResult(c.c))) PQclear(r);
  CHECK(c.scalar("select count(*) from itest_copy") == std::to_string(rows));
  CHECK(c.exec("drop table itest_copy"));
}

TEST_CASE("cancel reaches the running pg_sleep and nothing else") {
  SluiceProcess s(tx_pool(3));
  Conn sleeper(s.conninfo()), bystander(s.conninfo());
  REQUIRE(sleeper.ok());
  REQUIRE(bystander.ok());
  REQUIRE(PQsendQuery(sleeper.c, "select pg_sleep(30) /* itest-cancel */"));
  Conn direct(direct_conninfo());
  bool running = false;
  for (int i = 0; i < 100 && !running; ++i) {  // wait (max 10 s) until the server runs it
    running = direct.scalar("select count(*) from pg_stat_activity where query like '%itest-cancel%' and state = 'active' and pid <> pg_backend_pid()") == "1";
    if (!running) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(running);
  auto start = Clock::now();
  PGcancel* cancel = PQgetCancel(sleeper.c);
  char err[256];
  REQUIRE(PQcancel(cancel, err, sizeof err) == 1);
  PQfreeCancel(cancel);
  PGresult* r = PQgetResult(sleeper.c);
  CHECK(std::string(PQresultErrorField(r, PG_DIAG_SQLSTATE)) == "57014");
  PQclear(r);
  while ((r = PQgetResult(sleeper.c))) PQclear(r);
  CHECK(Clock::now() - start < std::chrono::seconds(10));
  CHECK(sleeper.scalar("select 'after cancel'") == "after cancel");
  CHECK(bystander.scalar("select 'untouched'") == "untouched");
}

TEST_CASE("a client killed mid-transaction does not leak its transaction to the next client") {
  SluiceProcess s(tx_pool(1));
  {
    Conn setup(s.conninfo());
    REQUIRE(setup.exec("drop table if exists itest_leak; create table itest_leak (v int)"));
  }
  {
    Conn victim(s.conninfo());
    REQUIRE(victim.exec("begin"));
    REQUIRE(victim.exec("insert into itest_leak values (1)"));
    CHECK(PQtransactionStatus(victim.c) == PQTRANS_INTRANS);
    ::shutdown(PQsocket(victim.c), SHUT_RDWR);  // vanish without Terminate
  }
  Conn next(s.conninfo());
  REQUIRE(next.ok());
  CHECK(next.scalar("select count(*) from itest_leak") == "0");
  CHECK(next.scalar("select coalesce(txid_current_if_assigned()::text, 'none')") == "none");
  CHECK(PQtransactionStatus(next.c) == PQTRANS_IDLE);
  CHECK(next.exec("drop table itest_leak"));
}

TEST_CASE("two clients with different TimeZone and search_path share one server connection") {
  SluiceProcess s(tx_pool(1));
  Conn a(s.conninfo()), b(s.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(a.exec("create schema if not exists itest_a"));
  REQUIRE(a.exec("set timezone = 'UTC'"));
  REQUIRE(b.exec("set timezone = 'Asia/Tokyo'"));
  REQUIRE(a.exec("set search_path to itest_a, public"));
  for (int i = 0; i < 5; ++i) {
    CHECK(a.scalar("show timezone") == "UTC");
    CHECK(b.scalar("show timezone") == "Asia/Tokyo");
    CHECK(a.scalar("show search_path") == "itest_a, public");
    CHECK(b.scalar("show search_path") == "\"$user\", public");
  }
  CHECK(std::string(PQparameterStatus(a.c, "TimeZone")) == "UTC");
  CHECK(std::string(PQparameterStatus(b.c, "TimeZone")) == "Asia/Tokyo");
  CHECK(a.scalar("select pg_backend_pid()") == b.scalar("select pg_backend_pid()"));
  // Startup parameters are honoured too.
  Conn c(s.conninfo() + " application_name=itest_app options='-c extra_float_digits=2'");
  REQUIRE(c.ok());
  CHECK(c.scalar("show application_name") == "itest_app");
  CHECK(c.scalar("show extra_float_digits") == "2");
  CHECK(a.scalar("show extra_float_digits") == "1");  // the server default, not c's value  // not carried over to other clients
  REQUIRE(a.exec("drop schema itest_a"));
}

TEST_CASE("logins like earlier ones get the same answer, others their own, in every pool mode") {
  // Each worker remembers the answers (parameter set, ParameterStatus) to its last few kinds of
  // login. Over three rounds each of the two workers meets what earlier logins left: repeats,
  // kinds that differ in one startup parameter, and more kinds than it remembers. The
  // reference is a direct connection with the same parameters. Session mode attaches a server
  // connection before answering; the other modes answer without one.
  for (const char* mode : {"transaction", "session", "statement"}) {
    CAPTURE(mode);
    SluiceProcess s(std::string("[[pools]]\ndatabase = \"app\"\ncluster = \"pg\"\npool_mode = \"") + mode +
                    "\"\npool_size = 2\n");
    const std::vector<std::string> kinds = {"",
                                            " application_name=memo_a",
                                            " application_name=memo_b",
                                            " options='-c TimeZone=Asia/Tokyo'",
                                            " application_name=memo_a options='-c TimeZone=Asia/Tokyo'",
                                            " options='-c extra_float_digits=2'"};
    const char* reported[] = {"application_name", "TimeZone", "DateStyle", "IntervalStyle", "client_encoding"};
    for (int round = 0; round < 3; ++round)
      for (std::size_t k = 0; k < kinds.size(); k += (round == 1 ? 2 : 1)) {
        CAPTURE(round);
        CAPTURE(kinds[k]);
        Conn direct(direct_conninfo() + kinds[k]);
        Conn via(s.conninfo() + kinds[k]);
        REQUIRE_MESSAGE(via.ok(), via.error());
        REQUIRE(direct.ok());
        for (const char* name : reported) {
          CAPTURE(name);
          const char* want = PQparameterStatus(direct.c, name);
          const char* got = PQparameterStatus(via.c, name);
          REQUIRE(want);
          REQUIRE(got);
          CHECK(std::string(got) == want);
        }
        CHECK(via.scalar("show application_name") == direct.scalar("show application_name"));
        CHECK(via.scalar("show timezone") == direct.scalar("show timezone"));
        CHECK(via.scalar("show extra_float_digits") == direct.scalar("show extra_float_digits"));
      }
  }
}

TEST_CASE("pool exhaustion gives the query_wait_timeout error naming the pool") {
  SluiceProcess s(tx_pool(1), "query_wait_timeout = \"1s\"");
  Conn holder(s.conninfo());
  REQUIRE(holder.exec("begin"));
  REQUIRE(holder.scalar("select 1") == "1");
  Conn waiter(s.conninfo());
  REQUIRE(waiter.ok());  // login does not need a server connection once parameters are known
  auto start = Clock::now();
  PGresult* r = PQexec(waiter.c, "select 1");
  PQclear(r);
  std::string msg = PQerrorMessage(waiter.c);  // the FATAL, then libpq's "server closed the connection"
  CHECK(msg.find("query_wait_timeout") != std::string::npos);
  CHECK(msg.find("app/app") != std::string::npos);
  CHECK(Clock::now() - start >= std::chrono::milliseconds(900));
  CHECK(holder.exec("commit"));
  Conn later(s.conninfo());
  CHECK(later.scalar("select 2") == "2");
}

TEST_CASE("statement mode refuses transaction blocks; session mode resets state between clients") {
  SluiceProcess s("[[pools]]\ndatabase = \"app\"\ncluster = \"pg\"\npool_mode = \"statement\"\npool_size = 2\n\n"
                  "[[pools]]\ndatabase = \"*\"\ncluster = \"pg\"\npool_mode = \"session\"\npool_size = 1\n");
  {
    Conn c(s.conninfo());
    CHECK(c.scalar("select 5") == "5");
    PGresult* r = PQexec(c.c, "begin");
    PQclear(r);
    r = PQexec(c.c, "select 1");
    CHECK(PQresultStatus(r) != PGRES_TUPLES_OK);
    PQclear(r);
  }
  {
    Conn c(s.conninfo("app", "app", "app2"));
    REQUIRE(c.ok());
    CHECK(c.scalar("select current_database()") == "app2");
    REQUIRE(c.exec("set work_mem = '7MB'"));
  }
  Conn c(s.conninfo("app", "app", "app2"));
  REQUIRE(c.ok());
  CHECK(c.scalar("show work_mem") == "4MB");
}

TEST_CASE("a backend restart is survived: idle clients and new clients carry on") {
  SluiceProcess s(tx_pool(2));
  Conn idle(s.conninfo());
  REQUIRE(idle.scalar("select 1") == "1");
  std::string script = env_or("SLUICE_SANDBOX_SCRIPT", "");
  if (script.empty()) {
    MESSAGE("SLUICE_SANDBOX_SCRIPT not set: skipping the restart step");
    return;
  }
  REQUIRE(std::system((script + " restart-primary >/dev/null").c_str()) == 0);
  CHECK(idle.scalar("select 'after restart'") == "after restart");
  Conn fresh(s.conninfo());
  REQUIRE(fresh.ok());
  CHECK(fresh.scalar("select 3") == "3");
}

TEST_CASE("max_client_conn refuses the excess client; client_idle_timeout closes idle clients") {
  SluiceProcess s(tx_pool(2), "max_client_conn = 2\nclient_idle_timeout = \"1s\"");
  Conn a(s.conninfo()), b(s.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  Conn c(s.conninfo());
  CHECK_FALSE(c.ok());
  CHECK(c.error().find("too many clients") != std::string::npos);
  CHECK(a.scalar("select 1") == "1");
  // a now stays idle: Sluice must close it after about a second, not before. libpq hands an
  // ErrorResponse that arrives while idle to the notice receiver.
  static std::string idle_error;
  PQsetNoticeReceiver(a.c, [](void*, const PGresult* r) { idle_error += PQresultErrorMessage(r); }, nullptr);
  auto idle_since = Clock::now();
  bool closed = false;
  for (int i = 0; i < 100 && !closed; ++i) {  // up to 5 s
    bool read_ok = PQconsumeInput(a.c) == 1;
    PQisBusy(a.c);  // parses what was read, handing an idle-time error to the notice receiver
    closed = !read_ok || PQstatus(a.c) == CONNECTION_BAD;
    if (!closed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(closed);
  CHECK(Clock::now() - idle_since >= std::chrono::milliseconds(900));
  CHECK_MESSAGE(idle_error.find("client_idle_timeout") != std::string::npos, idle_error, " / ", PQerrorMessage(a.c));
  CHECK(b.ok());
}

TEST_CASE("min_pool_size keeps server connections open once the pool exists") {
  SluiceProcess s(tx_pool(2) + "\n[[pools]]\ndatabase = \"app2\"\ncluster = \"pg\"\npool_mode = \"transaction\"\npool_size = 4\nmin_pool_size = 3\n");
  {
    Conn c(s.conninfo("app", "app", "app2"));
    REQUIRE(c.scalar("select 1") == "1");
  }
  Conn direct(direct_conninfo());
  std::string count;
  for (int i = 0; i < 50; ++i) {  // the janitor runs every second: allow up to 5 s
    count = direct.scalar("select count(*) from pg_stat_activity where datname = 'app2' and usename = 'app'");
    if (count == "3") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(count == "3");
}

TEST_CASE("SIGTERM: open transactions finish, new clients are refused, then Sluice exits") {
  SluiceProcess s(tx_pool(2), "shutdown_timeout = \"10s\"");
  Conn setup(s.conninfo());
  REQUIRE(setup.exec("drop table if exists itest_shutdown; create table itest_shutdown (v int)"));
  Conn tx(s.conninfo());
  REQUIRE(tx.exec("begin"));
  REQUIRE(tx.exec("insert into itest_shutdown values (1)"));
  REQUIRE(::kill(s.pid(), SIGTERM) == 0);
  // The idle client is told Sluice is shutting down; the one in a transaction may finish it.
  CHECK(tx.exec("insert into itest_shutdown values (2)"));
  CHECK(tx.exec("commit"));
  bool refused = false;
  for (int i = 0; i < 50 && !refused; ++i) {  // the listener closes right after the signal
    Conn late(s.conninfo());
    refused = !late.ok();
    if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(refused);
  Conn direct(direct_conninfo());
  CHECK(direct.scalar("select count(*) from itest_shutdown") == "2");
  CHECK(direct.exec("drop table itest_shutdown"));
  // With its clients gone, Sluice exits by itself, cleanly (a crash during shutdown shows here).
  PQfinish(setup.c);
  setup.c = nullptr;
  PQfinish(tx.c);
  tx.c = nullptr;
  int status = s.wait_exit(10000);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("server_idle_timeout closes idle server connections") {
  SluiceProcess s("[[pools]]\ndatabase = \"app2\"\ncluster = \"pg\"\npool_mode = \"transaction\"\npool_size = 3\n",
                  "server_idle_timeout = \"1s\"");
  Conn direct(direct_conninfo());
  auto servers = [&] { return direct.scalar("select count(*) from pg_stat_activity where datname = 'app2' and usename = 'app'"); };
  {
    Conn c(s.conninfo("app", "app", "app2"));
    REQUIRE(c.scalar("select 1") == "1");
    CHECK(servers() == "1");
  }
  std::string n;
  for (int i = 0; i < 50; ++i) {  // idle for 1 s, then the once-a-second janitor: up to 5 s
    n = servers();
    if (n == "0") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(n == "0");
}

TEST_CASE("SIGHUP reloads users and pools for new clients; a broken file keeps the old config") {
  SluiceProcess s(tx_pool(2));
  Conn before(s.conninfo("md5user", "md5pass"));
  REQUIRE(before.ok());
  // Add a pool for app2 to the file and reload: new clients can use it.
  s.reload(tx_pool(2) + "\n[[pools]]\ndatabase = \"app2\"\ncluster = \"pg\"\npool_mode = \"session\"\npool_size = 1\n");
  bool reloaded = false;
  for (int i = 0; i < 50 && !reloaded; ++i) {  // the signal is handled asynchronously
    Conn c(s.conninfo("app", "app", "app2"));
    reloaded = c.ok() && c.scalar("select current_database()") == "app2";
    if (!reloaded) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(reloaded);
  // An invalid file is rejected; the running config (with app2) stays.
  s.reload(tx_pool(2) + "\n[[pools]]\ndatabase = \"app2\"\ncluster = \"nope\"\n");
  REQUIRE(s.wait_for_log("reload rejected", 5000));
  CHECK(s.wait_for_log("pools[1].cluster: no [clusters.nope] is defined", 0));
  Conn c(s.conninfo("app", "app", "app2"));
  CHECK(c.ok());
  CHECK(before.scalar("select current_user") == "md5user");  // existing clients untouched
}

TEST_CASE("half-sent startup packets cost little memory before authentication") {
  SluiceProcess s(tx_pool(1));
  auto rss_kb = [&] { return s.rss_kb(); };
  Conn warm(s.conninfo());
  REQUIRE(warm.scalar("select 1") == "1");
  long before = rss_kb();
  // A valid 10000-byte startup packet, of which only 8 bytes arrive: bytes 1-4 read as a typed
  // message length would be ~2.6 MB.
  const unsigned char head[8] = {0x00, 0x00, 0x27, 0x10, 0x00, 0x03, 0x00, 0x00};
  std::vector<int> fds;
  for (int i = 0; i < 50; ++i) {
    int fd = raw_connect(s.port());
    REQUIRE(::send(fd, head, sizeof head, 0) == 8);
    fds.push_back(fd);
  }
  // Every connection has been accepted and read once Sluice still answers a normal client.
  Conn probe(s.conninfo());
  REQUIRE(probe.scalar("select 2") == "2");
  long after = rss_kb();
  CHECK_MESSAGE(after - before < 20 * 1024, "RSS grew by ", after - before, " kB");
  for (int fd : fds) ::close(fd);
}

TEST_CASE("CREATE DATABASE from a template and DROP DATABASE work while Sluice pools connections to them") {
  // PostgreSQL refuses both (55006 "being accessed by other users") while other sessions are in
  // those databases: Sluice's idle pooled connections must not count as such.
  SluiceProcess s(tx_pool(2) + "[[pools]]\ndatabase = \"*\"\ncluster = \"pg\"\npool_mode = \"transaction\"\npool_size = 2\n");
  Conn su(direct_conninfo());
  REQUIRE_MESSAGE(su.ok(), su.error());
  su.exec("DROP DATABASE IF EXISTS sl_made WITH (FORCE)");
  su.exec("DROP DATABASE IF EXISTS sl_tmpl WITH (FORCE)");
  REQUIRE(su.exec("ALTER ROLE app CREATEDB"));
  REQUIRE(su.exec("CREATE DATABASE sl_tmpl OWNER app"));
  {
    Conn t(s.conninfo("app", "app", "sl_tmpl"));
    REQUIRE_MESSAGE(t.ok(), t.error());
    CHECK(t.scalar("SELECT 1") == "1");
  }  // Sluice keeps an idle connection to sl_tmpl
  // A client busy in sl_tmpl for a moment: waited for, then its connection closed too.
  Conn busy(s.conninfo("app", "app", "sl_tmpl"));
  REQUIRE(busy.exec("BEGIN"));
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    busy.exec("COMMIT");
  });
  Conn c(s.conninfo());
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(c.scalar("CREATE DATABASE sl_made TEMPLATE sl_tmpl") == "");
  release.join();
  CHECK(su.scalar("SELECT count(*) FROM pg_database WHERE datname = 'sl_made'") == "1");
  {
    Conn m(s.conninfo("app", "app", "sl_made"));
    REQUIRE_MESSAGE(m.ok(), m.error());
    CHECK(m.scalar("SELECT current_database()") == "sl_made");
  }  // and one to sl_made
  CHECK(c.scalar("DROP DATABASE sl_made") == "");
  CHECK(c.scalar("DROP DATABASE IF EXISTS sl_tmpl") == "");
  CHECK(su.scalar("SELECT count(*) FROM pg_database WHERE datname LIKE 'sl_%'") == "0");
}

TEST_CASE("session parameters the server refuses are reported, the others applied, and the client stays") {
  // Sluice applies a client's startup parameters on each server connection it gets. One the
  // server refuses (here an unknown name) must not take the others down, nor the client.
  SluiceProcess s(tx_pool(2));
  Conn c(s.conninfo() + " options='-c statement_timeout=4321 -c nosuch_param=1 -c work_mem=1234kB'");
  REQUIRE_MESSAGE(c.ok(), c.error());
  std::vector<std::string> notices;
  PQsetNoticeReceiver(
      c.c, [](void* arg, const PGresult* r) { static_cast<std::vector<std::string>*>(arg)->push_back(PQresultErrorMessage(r)); },
      &notices);
  CHECK(c.scalar("SHOW statement_timeout") == "4321ms");
  CHECK(c.scalar("SHOW work_mem") == "1234kB");
  CHECK(PQstatus(c.c) == CONNECTION_OK);
  REQUIRE(notices.size() == 1);
  CHECK(notices[0].find("nosuch_param") != std::string::npos);
  // Reported once: the next transaction (maybe on another server connection) says nothing more.
  CHECK(c.scalar("SELECT 2") == "2");
  CHECK(notices.size() == 1);
}

TEST_CASE("session mode: the client's BackendKeyData names its server's real process; cancel still works") {
  SluiceProcess s("[[pools]]\ndatabase = \"app\"\ncluster = \"pg\"\npool_mode = \"session\"\npool_size = 3\n");
  Conn c(s.conninfo());
  REQUIRE_MESSAGE(c.ok(), c.error());
  const std::string pid = std::to_string(PQbackendPID(c.c));
  CHECK(c.scalar("SELECT pg_backend_pid()") == pid);
  Conn su(direct_conninfo());
  CHECK(su.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid + " AND usename = 'app'") == "1");
  // Cancel with the key Sluice gave: reaches this client's statement.
  REQUIRE(PQsendQuery(c.c, "SELECT pg_sleep(10)") == 1);
  REQUIRE(eventually([&] {
    return su.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid + " AND state = 'active'") == "1";
  }));
  PGcancel* cancel = PQgetCancel(c.c);
  char err[256];
  CHECK(PQcancel(cancel, err, sizeof err) == 1);
  PQfreeCancel(cancel);
  PGresult* r = PQgetResult(c.c);
  CHECK(std::string(PQresultErrorField(r, PG_DIAG_SQLSTATE) ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : "") == "57014");
  PQclear(r);
  while ((r = PQgetResult(c.c))) PQclear(r);
  // pg_terminate_backend(pid), as a test suite would: the client learns at once (FATAL, closed).
  CHECK(su.scalar("SELECT pg_terminate_backend(" + pid + ")") == "t");
  CHECK(eventually([&] {
    PQconsumeInput(c.c);
    return PQstatus(c.c) == CONNECTION_BAD || c.scalar("SELECT 1") != "1";
  }, 3000));
  // Another client gets another server (and its pid).
  Conn d(s.conninfo());
  REQUIRE_MESSAGE(d.ok(), d.error());
  CHECK(d.scalar("SELECT pg_backend_pid()") == std::to_string(PQbackendPID(d.c)));
  CHECK(std::to_string(PQbackendPID(d.c)) != pid);
}
