// Helpers for the tests that run Sluice with TLS: throwaway certificates
// (integration/certs.sh), listener and server_tls config snippets, and a
// Connector/C client with or without TLS.
#pragma once

#include <mysql.h>

#include <string>

#include "harness.hpp"

namespace sluice::itest {

// A directory of certificates made by integration/certs.sh for this test
// process (removed at exit): ca.pem, server.pem/.key (localhost, 127.0.0.1),
// client.pem/.key (CN=app), other-ca.pem...
std::string cert_dir();
// [postgres] / [mysql] keys for a TLS listener with `mode` and the certificate
// `name`.
std::string tls_keys(const std::string &mode, const std::string &name = "server");
// The sandbox servers' certificates (they run with TLS on).
std::string sandbox_certs();
int pg_replica_port();
int my_replica_port();
// A cluster over the sandbox primary and replica with the given server_tls
// keys.
std::string tls_cluster(const std::string &name, bool pg, const std::string &keys);
std::string pool_for(const std::string &db, const std::string &cluster, const std::string &server_db = "");
std::string server_tls(const std::string &mode, const std::string &ca, const std::string &cert = "");

// A Connector/C connection to 127.0.0.1:port (database `db`): with TLS (server
// certificate verified against `ca`, TLS enforced) or plaintext.
struct MyTls {
  MYSQL *m = mysql_init(nullptr);
  bool ok = false;
  MyTls(int port, const std::string &ca, bool tls, const char *user = "app", const char *pw = "app",
        const char *db = "app");
  ~MyTls() { mysql_close(m); }
  MyTls(const MyTls &) = delete;
  MyTls &operator=(const MyTls &) = delete;
  // The first column of the first row ("" for none), or "ERROR:<message>".
  std::string scalar(const char *sql);
};

// SluiceProcess::postgres_extra / mysql_extra apply to every process of a case:
// cleared after it.
struct Guard {
  ~Guard() { SluiceProcess::postgres_extra.clear(); }
};
struct MyGuard {
  ~MyGuard() { SluiceProcess::mysql_extra.clear(); }
};

}  // namespace sluice::itest
