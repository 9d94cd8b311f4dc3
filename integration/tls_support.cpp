// TLS test helpers (see header).
#include "tls_support.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>

namespace sluice::itest {

namespace {
struct RemoveAtExit {
  std::string dir;
  ~RemoveAtExit() {
    if (!dir.empty()) std::system(("rm -rf '" + dir + "'").c_str());
  }
};
}  // namespace

std::string cert_dir() {
  static RemoveAtExit cleanup;
  static std::string dir = [] {
    std::string d = env_or("TMPDIR", "/tmp") + "/sluice-itest-certs-" + std::to_string(::getpid());
    std::string script = env_or("SLUICE_CERTS_SCRIPT", "");
    REQUIRE(!script.empty());
    REQUIRE(std::system((script + " " + d).c_str()) == 0);
    cleanup.dir = d;
    return d;
  }();
  return dir;
}

std::string tls_keys(const std::string &mode, const std::string &name) {
  return "tls = \"" + mode + "\"\ntls_cert = \"" + cert_dir() + "/" + name + ".pem\"\ntls_key = \"" + cert_dir() + "/" +
         name + ".key\"\n";
}

// The sandbox's directory: SLUICE_SANDBOX (dev.sh test sets .sandbox-test),
// else the default the build passes in.
std::string sandbox_certs() {
  std::string d = env_or("SLUICE_SANDBOX", env_or("SLUICE_SANDBOX_DEFAULT", ""));
  REQUIRE(!d.empty());
  return d + "/certs";
}

int pg_replica_port() { return std::stoi(env_or("SLUICE_PG_REPLICA_PORT", "15433")); }
int my_replica_port() { return std::stoi(env_or("SLUICE_MY_REPLICA_PORT", "13307")); }

std::string tls_cluster(const std::string &name, bool pg, const std::string &keys) {
  int primary = pg ? pg_port() : my_port(), replica = pg ? pg_replica_port() : my_replica_port();
  return "\n[clusters." + name + "]\nprotocol = \"" + (pg ? "postgres" : "mysql") +
         "\"\nprimary = \"127.0.0.1:" + std::to_string(primary) +
         "\"\nreplicas = [\"127.0.0.1:" + std::to_string(replica) + "\"]\n" + "health_check_period = \"100ms\"\n" +
         keys + "\n";
}

std::string pool_for(const std::string &db, const std::string &cluster, const std::string &server_db) {
  return "\n[[pools]]\ndatabase = \"" + db + "\"\ncluster = \"" + cluster + "\"\n" +
         (server_db.empty() ? "" : "server_database = \"" + server_db + "\"\n");
}

std::string server_tls(const std::string &mode, const std::string &ca, const std::string &cert) {
  std::string s = "server_tls = \"" + mode + "\"\n";
  if (!ca.empty()) s += "server_tls_ca = \"" + ca + "\"\n";
  if (!cert.empty()) s += "server_tls_cert = \"" + cert + ".pem\"\nserver_tls_key = \"" + cert + ".key\"\n";
  return s;
}

MyTls::MyTls(int port, const std::string &ca, bool tls, const char *user, const char *pw, const char *db) {
  unsigned timeout = 5;
  mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  if (tls) {
    mysql_options(m, MYSQL_OPT_SSL_CA, ca.c_str());
    my_bool verify = 1;
    mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
    my_bool enforce = 1;
    mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &enforce);
  } else {
    my_bool off = 0;
    mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &off);
  }
  ok = mysql_real_connect(m, "127.0.0.1", user, pw, db, static_cast<unsigned>(port), nullptr, 0) != nullptr;
}

std::string MyTls::scalar(const char *sql) {
  if (mysql_query(m, sql)) return std::string("ERROR:") + mysql_error(m);
  MYSQL_RES *r = mysql_store_result(m);
  MYSQL_ROW row = r ? mysql_fetch_row(r) : nullptr;
  std::string v = row && row[0] ? row[0] : "";
  if (r) mysql_free_result(r);
  return v;
}

}  // namespace sluice::itest
