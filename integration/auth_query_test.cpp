// PostgreSQL logins for users the file does not list ([postgres] auth_user / auth_query): SCRAM
// and md5 roles created on the server log in through Sluice with their own passwords (Sluice
// logs in to the server with the key the client's proof yields), wrong passwords, unknown and
// expired roles all get the same refusal, and hostile names are only ever a query parameter.
#include <doctest/doctest.h>
#include <libpq-fe.h>

#include <chrono>
#include <string>

#include "front_door_support.hpp"
#include "harness.hpp"

using namespace sluice::itest;

namespace {

void direct_exec(const std::string& sql) {
  Conn d(direct_conninfo());
  REQUIRE_MESSAGE(d.ok(), d.error());
  PGresult* r = PQexec(d.c, sql.c_str());
  INFO(sql);
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
}

// A conninfo value, quoted ('\'' and '\\' escaped, as libpq reads them).
std::string quoted(const std::string& v) {
  std::string o = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') o += '\\';
    o += c;
  }
  return o + "'";
}

std::string login_error(const SluiceProcess& s, const std::string& user, const std::string& pw,
                        const std::string& extra = "") {
  Conn c("host=127.0.0.1 port=" + std::to_string(s.port()) + " dbname=app sslmode=disable connect_timeout=10 user=" +
         quoted(user) + " password=" + quoted(pw) + " " + extra);
  return c.ok() ? "" : c.error();
}

}  // namespace

TEST_CASE("auth_query: roles the file does not list log in with their own passwords; others are refused alike") {
  const std::string super = env_or("SLUICE_PG_SUPERPASSWORD", "postgres");
  direct_exec("DROP ROLE IF EXISTS aq_scram");
  direct_exec("DROP ROLE IF EXISTS aq_md5");
  direct_exec("DROP ROLE IF EXISTS aq_expired");
  direct_exec("CREATE ROLE aq_scram LOGIN PASSWORD 'scram-pw'");
  direct_exec("SET password_encryption = 'md5'; CREATE ROLE aq_md5 LOGIN PASSWORD 'md5-pw'");
  direct_exec("CREATE ROLE aq_expired LOGIN PASSWORD 'old-pw' VALID UNTIL '2000-01-01'");
  struct Drop {
    ~Drop() {
      Conn d(direct_conninfo());
      for (const char* r : {"aq_scram", "aq_md5", "aq_expired"})
        PQclear(PQexec(d.c, (std::string("DROP ROLE IF EXISTS ") + r).c_str()));
      SluiceProcess::postgres_extra.clear();
    }
  } drop;
  SluiceProcess::postgres_extra = "auth_user = \"postgres\"\n";
  SluiceProcess s(std::string(kDoorPools) + "[[users]]\nname = \"postgres\"\npassword = \"" + super + "\"\n");

  // SCRAM: the client proves its password against the verifier read from pg_authid; Sluice logs
  // in to the server as that role with the ClientKey the proof gave it.
  for (int i = 0; i < 2; ++i) {
    Conn c("host=127.0.0.1 port=" + std::to_string(s.port()) +
           " dbname=app user=aq_scram password=scram-pw sslmode=disable");
    REQUIRE_MESSAGE(c.ok(), c.error());
    CHECK(c.scalar("SELECT current_user") == "aq_scram");
    CHECK(c.scalar("SELECT 1") == "1");
  }
  // md5: the hash read from pg_authid checks the client's password. (The sandbox's pg_hba.conf
  // asks SCRAM of every role but md5user, so the server then refuses an md5 login for this one,
  // directly as through Sluice: what is checked here is Sluice's own verdict.)
  CHECK(login_error(s, "aq_md5", "wrong").find("password authentication failed for user \"aq_md5\"") !=
        std::string::npos);
  CHECK(login_error(s, "aq_md5", "md5-pw").find("password authentication failed") == std::string::npos);
  // The client's startup options never reach the lookup: a hostile search_path changes nothing.
  CHECK(login_error(s, "aq_scram", "scram-pw", "options='-c search_path=pg_temp,evil'").empty());

  // Wrong password, unknown role, expired role: the same words (and a SCRAM exchange each).
  const std::string refusal = "password authentication failed for user";
  auto t0 = std::chrono::steady_clock::now();
  CHECK(login_error(s, "aq_scram", "wrong").find(refusal + " \"aq_scram\"") != std::string::npos);
  auto wrong = std::chrono::steady_clock::now() - t0;
  t0 = std::chrono::steady_clock::now();
  std::string unknown = login_error(s, "aq_nobody", "wrong");
  auto nobody = std::chrono::steady_clock::now() - t0;
  CHECK(unknown.find(refusal + " \"aq_nobody\"") != std::string::npos);
  CHECK(unknown.find("does not exist") == std::string::npos);
  CHECK(login_error(s, "aq_expired", "old-pw").find(refusal + " \"aq_expired\"") != std::string::npos);
  // (Both take one lookup and one SCRAM exchange: no telling them apart by a second's difference.)
  CHECK(std::chrono::abs(wrong - nobody) < std::chrono::seconds(1));

  // Hostile names are a parameter of the query, never its text.
  for (std::string name : {std::string("x'; DROP ROLE aq_scram; --"), std::string("a\"b\\\\c"), std::string(200, 'n'),
                           std::string("aq_scram' OR '1'='1")}) {
    INFO(name);
    std::string e = login_error(s, name, "pw");
    CHECK(e.find(refusal) != std::string::npos);
  }
  // A 10 kB name does not even fit a startup packet (PostgreSQL's limit, 10,000 bytes).
  CHECK_FALSE(login_error(s, std::string(10000, 'u'), "pw").empty());
  Conn again("host=127.0.0.1 port=" + std::to_string(s.port()) +
             " dbname=app user=aq_scram password=scram-pw sslmode=disable");
  CHECK_MESSAGE(again.ok(), again.error());  // still there
}
