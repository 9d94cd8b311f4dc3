// What the front-door tests (access, limits, firewall, auth_query) share: one transaction-mode
// pool per protocol over the sandbox, "app" as the console's admin, and small libpq helpers.
#pragma once

#include <libpq-fe.h>

#include <string>

#include "harness.hpp"

namespace sluice::itest {

inline const char* kDoorPools = R"(
[[pools]]
database = "app"
cluster = "pg"
pool_mode = "transaction"
pool_size = 4
[[pools]]
database = "app"
cluster = "my"
pool_mode = "transaction"
pool_size = 4
)";
inline const char* kDoorAdmin = "admin_users = [\"app\"]\n";

// The error of a libpq login ("" when it connected).
inline std::string pg_error(const std::string& conninfo) {
  Conn c(conninfo);
  return c.ok() ? "" : c.error();
}

// A console statement as "app": "" or the error's message.
inline std::string console(const SluiceProcess& s, const std::string& sql) {
  Conn admin(s.conninfo("app", "app", "sluice"));
  if (!admin.ok()) return admin.error();
  PGresult* r = PQexec(admin.c, sql.c_str());
  std::string out = PQresultStatus(r) == PGRES_FATAL_ERROR ? PQresultErrorMessage(r) : "";
  PQclear(r);
  return out;
}

inline std::string sqlstate_of(PGresult* r) {
  const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  return s ? s : "";
}

}  // namespace sluice::itest
