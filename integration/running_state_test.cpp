// Replacing the running state (the console's SET for every key it accepts,
// RELOAD, SIGHUP) keeps what it does not change: with tls = "require" on both
// listeners, plaintext logins stay refused, TLS logins (SCRAM-SHA-256-PLUS with
// channel_binding=require on PostgreSQL) keep working, and the pooled server
// connections under server_tls = "require" stay TLS and are not replaced. (A
// SET once built a snapshot without the TLS contexts: TLS turned off on both
// sides.)
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>

#include <string>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "tls_support.hpp"

using namespace sluice::itest;

namespace {

// One server connection per pool, so "not replaced" is one backend pid / thread
// id throughout.
std::string config() {
  return std::string(R"(
[[users]]
name = "admin"
password = "adminpw"
)") + tls_cluster("pgtls", true, server_tls("require", "") + "routing = \"primary_only\"\n") +
         tls_cluster("mytls", false, server_tls("require", "") + "routing = \"primary_only\"\n") +
         pool_for("app", "pgtls") + "pool_size = 1\n" + pool_for("app", "mytls") + "pool_size = 1\n";
}

const char *kGeneral = "admin_users = [\"admin\"]\n";

std::string pg_tls_conninfo(const SluiceProcess &s, const std::string &user, const std::string &password,
                            const std::string &db, const std::string &extra) {
  return "host=localhost port=" + std::to_string(s.port()) + " user=" + user + " password=" + password +
         " dbname=" + db + " connect_timeout=10 " + extra;
}

// The server connection a PostgreSQL client is served by: backend pid and
// whether it is TLS.
const char *kPgServer =
    "SELECT pg_backend_pid()::text || '|' || ssl::text "
    "FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
// The same for MySQL: the server's thread id and its TLS cipher ("" =
// plaintext).
const char *kMyServer =
    "SELECT CONCAT(CONNECTION_ID(), '|', (SELECT "
    "VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
    "WHERE VARIABLE_NAME = 'Ssl_cipher'))";

// What must hold after each replacement of the running state.
void check_still_tls(const SluiceProcess &s, const std::string &what, Conn &pg_kept, MyTls &my_kept,
                     const std::string &pg_server, const std::string &my_server) {
  INFO("after " << what);
  const std::string ca = cert_dir() + "/ca.pem";
  Conn plain(pg_tls_conninfo(s, "app", "app", "app", "sslmode=disable"));
  CHECK_MESSAGE(!plain.ok(), "a plaintext PostgreSQL login was accepted");
  CHECK(plain.error().find("requires TLS") != std::string::npos);
  Conn tls(
      pg_tls_conninfo(s, "app", "app", "app", "sslmode=verify-full sslrootcert=" + ca + " channel_binding=require"));
  REQUIRE_MESSAGE(tls.ok(), tls.error());
  CHECK(PQsslInUse(tls.c) == 1);
  CHECK(tls.scalar(kPgServer) == pg_server);  // the one pooled connection, still TLS
  CHECK(pg_kept.scalar(kPgServer) == pg_server);

  MyTls my_plain(s.my_port(), "", false);
  CHECK_MESSAGE(!my_plain.ok, "a plaintext MySQL login was accepted");
  CHECK(mysql_errno(my_plain.m) == 3159);
  MyTls my_tls(s.my_port(), ca, true);
  REQUIRE_MESSAGE(my_tls.ok, std::string(mysql_error(my_tls.m)));
  CHECK(mysql_get_ssl_cipher(my_tls.m) != nullptr);
  CHECK(my_tls.scalar(kMyServer) == my_server);
  CHECK(my_kept.scalar(kMyServer) == my_server);
}

// Every key SHOW CONFIG marks changeable, with its current value (so the run is
// not disturbed).
std::vector<std::pair<std::string, std::string>> settable_keys(Conn &adm) {
  std::vector<std::pair<std::string, std::string>> keys;
  PGresult *r = PQexec(adm.c, "SHOW CONFIG");
  REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
  int k = PQfnumber(r, "key"), v = PQfnumber(r, "value"), ch = PQfnumber(r, "changeable");
  for (int i = 0; i < PQntuples(r); ++i)
    if (std::string(PQgetvalue(r, i, ch)) == "t") keys.emplace_back(PQgetvalue(r, i, k), PQgetvalue(r, i, v));
  PQclear(r);
  return keys;
}

}  // namespace

TEST_CASE(
    "SET (every changeable key), RELOAD and SIGHUP keep TLS on both "
    "listeners and to the servers") {
  MyGuard mg;
  Guard g;
  SluiceProcess::postgres_extra = tls_keys("require");
  SluiceProcess::mysql_extra = tls_keys("require");
  SluiceProcess s(config(), kGeneral);
  const std::string ca = cert_dir() + "/ca.pem";

  Conn pg_kept(
      pg_tls_conninfo(s, "app", "app", "app", "sslmode=verify-full sslrootcert=" + ca + " channel_binding=require"));
  REQUIRE_MESSAGE(pg_kept.ok(), pg_kept.error());
  const std::string pg_server = pg_kept.scalar(kPgServer);
  REQUIRE(pg_server.size() > 5);
  REQUIRE(pg_server.substr(pg_server.find('|')) == "|true");
  MyTls my_kept(s.my_port(), ca, true);
  REQUIRE_MESSAGE(my_kept.ok, std::string(mysql_error(my_kept.m)));
  const std::string my_server = my_kept.scalar(kMyServer);
  REQUIRE(my_server.find('|') != std::string::npos);
  REQUIRE(my_server.substr(my_server.find('|') + 1) != "");  // a cipher: the server link is TLS

  Conn adm(pg_tls_conninfo(s, "admin", "adminpw", "sluice", "sslmode=require"));
  REQUIRE_MESSAGE(adm.ok(), adm.error());
  auto keys = settable_keys(adm);
  REQUIRE(keys.size() >= 13);
  for (auto &[key, value] : keys) {
    std::string sql = "SET " + key + " = '" + value + "'";
    PGresult *r = PQexec(adm.c, sql.c_str());
    CHECK_MESSAGE(PQresultStatus(r) == PGRES_COMMAND_OK, sql << ": " << PQresultErrorMessage(r));
    PQclear(r);
    check_still_tls(s, sql, pg_kept, my_kept, pg_server, my_server);
  }
  // The MySQL console's SET goes the same way.
  {
    MyTls my_adm(s.my_port(), ca, true, "admin", "adminpw", "sluice");
    REQUIRE_MESSAGE(my_adm.ok, std::string(mysql_error(my_adm.m)));
    CHECK_MESSAGE(mysql_query(my_adm.m, "SET log_level = 'warn'") == 0, std::string(mysql_error(my_adm.m)));
  }
  check_still_tls(s, "SET on the MySQL console", pg_kept, my_kept, pg_server, my_server);

  PGresult *r = PQexec(adm.c, "RELOAD");
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  check_still_tls(s, "RELOAD", pg_kept, my_kept, pg_server, my_server);

  // SIGHUP, with one visible change so the test knows it was applied.
  s.reload(config(), std::string(kGeneral) + "query_wait_timeout = \"119s\"\n");
  CHECK(eventually([&] {
    PGresult *c = PQexec(adm.c, "SHOW CONFIG LIKE 'query_wait_timeout'");
    bool in = PQresultStatus(c) == PGRES_TUPLES_OK && PQntuples(c) == 1 && std::string(PQgetvalue(c, 0, 1)) == "119s";
    PQclear(c);
    return in;
  }));
  check_still_tls(s, "SIGHUP", pg_kept, my_kept, pg_server, my_server);
}
