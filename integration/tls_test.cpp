// TLS on the PostgreSQL listener: libpq with sslmode=verify-full and channel_binding=require,
// a wrong CA refused, "require" refusing plaintext, "allow" taking both, certificates re-read on
// RELOAD while connected clients continue. Certificates come from integration/certs.sh.
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <openssl/ssl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <poll.h>
#include <sys/time.h>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "tls_support.hpp"

using namespace sluice::itest;

namespace {

const char* kPools = R"(
[[users]]
name = "admin"
password = "adminpw"

[[pools]]
database = "app"
cluster = "pg"
pool_size = 4
)";
const char* kGeneral = "admin_users = [\"admin\"]\n";

std::string tls_conninfo(const SluiceProcess& s, const std::string& extra, const std::string& host = "localhost") {
  return "host=" + host + " port=" + std::to_string(s.port()) + " user=app password=app dbname=app " + extra;
}

}  // namespace

TEST_CASE("verify-full with channel binding (SCRAM-SHA-256-PLUS) succeeds; a wrong CA fails; require refuses plaintext") {
  Guard g;
  SluiceProcess::postgres_extra = tls_keys("require");
  SluiceProcess s(kPools, kGeneral);
  std::string ca = cert_dir() + "/ca.pem";

  Conn c(tls_conninfo(s, "sslmode=verify-full sslrootcert=" + ca + " channel_binding=require"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(PQsslInUse(c.c) == 1);
  CHECK(std::string(PQsslAttribute(c.c, "protocol")).rfind("TLSv1.", 0) == 0);
  CHECK(c.scalar("SELECT 'over tls'") == "over tls");
  // Large results and COPY stream through TLS records.
  CHECK(c.scalar("SELECT length(string_agg(repeat('x', 1000), '')) FROM generate_series(1, 5000)") == "5000000");
  // The IP address SAN verifies too.
  Conn ip(tls_conninfo(s, "sslmode=verify-full sslrootcert=" + ca, "127.0.0.1"));
  CHECK(ip.ok());

  Conn wrong(tls_conninfo(s, "sslmode=verify-full sslrootcert=" + cert_dir() + "/other-ca.pem"));
  CHECK(!wrong.ok());
  CHECK(wrong.error().find("certificate verify failed") != std::string::npos);

  Conn plain(tls_conninfo(s, "sslmode=disable"));
  CHECK(!plain.ok());
  CHECK(plain.error().find("requires TLS") != std::string::npos);

  // The admin console over TLS shows which clients use it.
  Conn adm("host=localhost port=" + std::to_string(s.port()) + " user=admin password=adminpw dbname=sluice sslmode=require");
  REQUIRE(adm.ok());
  PGresult* r = PQexec(adm.c, "SHOW CLIENTS LIKE 'app'");
  REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
  REQUIRE(PQntuples(r) >= 1);
  CHECK(std::string(PQgetvalue(r, 0, PQfnumber(r, "tls"))) == "t");
  PQclear(r);
}

TEST_CASE("TLS clients that vanish while Sluice writes a large result do not take Sluice down (SIGPIPE)") {
  Guard g;
  SluiceProcess::postgres_extra = tls_keys("require");
  SluiceProcess s(kPools, kGeneral);
  for (int i = 0; i < 3; ++i) {
    Conn c(tls_conninfo(s, "sslmode=require"));
    REQUIRE(c.ok());
    REQUIRE(PQsendQuery(c.c, "SELECT repeat('x', 1000) FROM generate_series(1, 100000)") == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ::shutdown(PQsocket(c.c), SHUT_RDWR);  // gone without reading: Sluice's next TLS write fails
  }
  CHECK(eventually([&] {
    Conn after(tls_conninfo(s, "sslmode=require"));
    return after.ok() && after.scalar("SELECT 1") == "1";
  }, 3000));
  CHECK(s.wait_exit(0) == -1);  // still running
}

TEST_CASE("allow: TLS and plaintext clients side by side; without TLS no channel binding is offered") {
  Guard g;
  SluiceProcess::postgres_extra = tls_keys("allow");
  SluiceProcess s(kPools, kGeneral);
  Conn t(tls_conninfo(s, "sslmode=require"));
  REQUIRE(t.ok());
  CHECK(PQsslInUse(t.c) == 1);
  Conn p(tls_conninfo(s, "sslmode=disable"));
  REQUIRE(p.ok());
  CHECK(PQsslInUse(p.c) == 0);
  CHECK(t.scalar("SELECT 1") == "1");
  CHECK(p.scalar("SELECT 2") == "2");
  Conn bind_plain(tls_conninfo(s, "sslmode=disable channel_binding=require"));
  CHECK(!bind_plain.ok());
}

TEST_CASE("RELOAD with new certificates: new connections get them, connected clients continue") {
  Guard g;
  SluiceProcess::postgres_extra = tls_keys("require");
  SluiceProcess s(kPools, kGeneral);
  std::string ca = cert_dir() + "/ca.pem", other = cert_dir() + "/other-ca.pem";
  Conn before(tls_conninfo(s, "sslmode=verify-full sslrootcert=" + ca));
  REQUIRE(before.ok());
  Conn adm("host=localhost port=" + std::to_string(s.port()) + " user=admin password=adminpw dbname=sluice sslmode=require");
  REQUIRE(adm.ok());

  SluiceProcess::postgres_extra = tls_keys("require", "other-server");
  s.rewrite(kPools, kGeneral);
  PGresult* r = PQexec(adm.c, "RELOAD");
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  Conn old_ca(tls_conninfo(s, "sslmode=verify-full sslrootcert=" + ca));
  CHECK(!old_ca.ok());
  Conn new_ca(tls_conninfo(s, "sslmode=verify-full sslrootcert=" + other));
  CHECK(new_ca.ok());
  CHECK(before.scalar("SELECT 'still here'") == "still here");
  CHECK(adm.scalar("SHOW VERSION").rfind("Sluice", 0) == 0);

  // A certificate that does not load: RELOAD refused, the running certificates stay.
  SluiceProcess::postgres_extra = "tls = \"require\"\ntls_cert = \"/nonexistent.pem\"\ntls_key = \"/nonexistent.key\"\n";
  s.rewrite(kPools, kGeneral);
  r = PQexec(adm.c, "RELOAD");
  CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
  CHECK(std::string(PQresultErrorMessage(r)).find("postgres.tls_cert") != std::string::npos);
  PQclear(r);
  Conn still(tls_conninfo(s, "sslmode=verify-full sslrootcert=" + other));
  CHECK(still.ok());

  // KILL of a TLS client: the goodbye FATAL goes out as a TLS record before the close.
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(PQsocket(before.c), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  std::string port = std::to_string(ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port));
  r = PQexec(adm.c, "SHOW CLIENTS");
  REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
  int port_col = PQfnumber(r, "port"), id_col = PQfnumber(r, "id"), tls_col = PQfnumber(r, "tls");
  std::string id;
  for (int i = 0; i < PQntuples(r); ++i)
    if (PQgetvalue(r, i, port_col) == port) {
      id = PQgetvalue(r, i, id_col);
      CHECK(std::string(PQgetvalue(r, i, tls_col)) == "t");
    }
  PQclear(r);
  REQUIRE(!id.empty());
  r = PQexec(adm.c, ("KILL " + id).c_str());
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  CHECK(eventually([&] { return before.scalar("SELECT 1") != "1"; }));
  CHECK(PQstatus(before.c) == CONNECTION_BAD);
  CHECK_MESSAGE(std::string(PQerrorMessage(before.c)).find("terminating connection due to administrator command") !=
                    std::string::npos,
                PQerrorMessage(before.c));
}


TEST_CASE("MySQL: TLS with a verified server certificate; require refuses plaintext; a wrong CA fails") {
  MyGuard g;
  SluiceProcess::mysql_extra = tls_keys("require");
  SluiceProcess s(kPools + std::string("\n[[pools]]\ndatabase = \"app\"\ncluster = \"my\"\n"), kGeneral);
  MyTls c(s.my_port(), cert_dir() + "/ca.pem", true);
  REQUIRE_MESSAGE(c.ok, std::string(mysql_error(c.m)));
  CHECK(mysql_get_ssl_cipher(c.m) != nullptr);
  CHECK(c.scalar("SELECT 'over tls'") == "over tls");
  CHECK(c.scalar("SELECT LENGTH(REPEAT('x', 3000000))") == "3000000");
  MyTls plain(s.my_port(), "", false);
  CHECK(!plain.ok);
  CHECK(mysql_errno(plain.m) == 3159);
  MyTls wrong(s.my_port(), cert_dir() + "/other-ca.pem", true);
  CHECK(!wrong.ok);

  // KILL from the console: the TLS client's next command reads the goodbye error (1927), sent
  // inside TLS, rather than a lost connection (2013).
  Conn adm("host=127.0.0.1 port=" + std::to_string(s.port()) + " user=admin password=adminpw dbname=sluice sslmode=disable");
  REQUIRE(adm.ok());
  PGresult* r = PQexec(adm.c, ("KILL " + std::to_string(mysql_thread_id(c.m))).c_str());
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  CHECK(eventually([&] { return c.scalar("SELECT 1") != "1"; }));
  CHECK_MESSAGE(mysql_errno(c.m) == 1927, mysql_error(c.m));
}

TEST_CASE("MySQL: caching_sha2_password full authentication over TLS sends the password inside TLS, then the fast path") {
  MyGuard g;
  SluiceProcess::mysql_extra = tls_keys("allow") + "default_auth_plugin = \"caching_sha2_password\"\n";
  SluiceProcess s(kPools + std::string("\n[[pools]]\ndatabase = \"app\"\ncluster = \"my\"\n"), kGeneral);
  {
    MyTls first(s.my_port(), cert_dir() + "/ca.pem", true);  // nothing cached yet: full authentication
    REQUIRE_MESSAGE(first.ok, std::string(mysql_error(first.m)));
    CHECK(first.scalar("SELECT 1") == "1");
  }
  MyTls wrong_pw(s.my_port(), cert_dir() + "/ca.pem", true, "app", "nope");
  CHECK(!wrong_pw.ok);
  CHECK(mysql_errno(wrong_pw.m) == 1045);
  MyTls again(s.my_port(), cert_dir() + "/ca.pem", true);  // fast path now
  CHECK(again.ok);
  MyTls plain(s.my_port(), "", false);  // allow: plaintext works too (fast path, scramble only)
  CHECK(plain.ok);
}

TEST_CASE("client certificates: verify-full checks the CN against the user; auth = \"cert\" needs no password") {
  Guard g;
  SluiceProcess::postgres_extra = tls_keys("require") + "tls_ca = \"" + cert_dir() + "/ca.pem\"\ntls_client_cert = \"verify-full\"\n";
  const std::string pools = std::string(R"(
[[users]]
name = "admin"
auth = "cert"

[[pools]]
database = "app"
cluster = "pg"
pool_size = 4
)");
  SluiceProcess s(pools, kGeneral);
  std::string ca = cert_dir() + "/ca.pem";
  auto with_cert = [&](const std::string& name) {
    return " sslcert=" + cert_dir() + "/" + name + ".pem sslkey=" + cert_dir() + "/" + name + ".key";
  };
  Conn ok(tls_conninfo(s, "sslmode=verify-full sslrootcert=" + ca + with_cert("client")));
  REQUIRE_MESSAGE(ok.ok(), ok.error());
  CHECK(ok.scalar("SELECT 'cert ok'") == "cert ok");
  Conn none(tls_conninfo(s, "sslmode=verify-full sslrootcert=" + ca));
  CHECK(!none.ok());
  CHECK(none.error().find("requires a valid client certificate") != std::string::npos);
  // The admin user authenticates by certificate alone (no password), and app's certificate is
  // not admin's.
  std::string adm_base = "host=localhost port=" + std::to_string(s.port()) + " user=admin dbname=sluice sslmode=verify-full sslrootcert=" + ca;
  Conn adm(adm_base + with_cert("admin-client"));
  REQUIRE_MESSAGE(adm.ok(), adm.error());
  CHECK(adm.scalar("SHOW VERSION").rfind("Sluice", 0) == 0);
  Conn adm_wrong(adm_base + with_cert("client"));
  CHECK(!adm_wrong.ok());
  CHECK(adm_wrong.error().find("certificate authentication failed for user \"admin\"") != std::string::npos);
}

TEST_CASE("MySQL: tls_client_cert = verify-ca refuses a client without a certificate") {
  MyGuard g;
  SluiceProcess::mysql_extra = tls_keys("require") + "tls_ca = \"" + cert_dir() + "/ca.pem\"\ntls_client_cert = \"verify-ca\"\n";
  SluiceProcess s(kPools + std::string("\n[[pools]]\ndatabase = \"app\"\ncluster = \"my\"\n"), kGeneral);
  MyTls none(s.my_port(), cert_dir() + "/ca.pem", true);
  CHECK(!none.ok);
  CHECK(mysql_errno(none.m) == 1045);
  CHECK(std::string(mysql_error(none.m)).find("client certificate") != std::string::npos);
  MYSQL* m = mysql_init(nullptr);
  std::string ca = cert_dir() + "/ca.pem", cert = cert_dir() + "/client.pem", key = cert_dir() + "/client.key";
  mysql_options(m, MYSQL_OPT_SSL_CA, ca.c_str());
  mysql_options(m, MYSQL_OPT_SSL_CERT, cert.c_str());
  mysql_options(m, MYSQL_OPT_SSL_KEY, key.c_str());
  my_bool verify = 1;
  mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
  bool connected = mysql_real_connect(m, "127.0.0.1", "app", "app", "app", static_cast<unsigned>(s.my_port()), nullptr, 0) != nullptr;
  CHECK_MESSAGE(connected, std::string(mysql_error(m)));
  mysql_close(m);
}

TEST_CASE("MySQL: a client that sends its TLS ClientHello in the same write as the SSLRequest") {
  // MySQL clients do not wait for an answer to SSLRequest; the ClientHello can arrive in the same
  // read. Reproduced here with OpenSSL memory BIOs and one write() of both.
  MyGuard g;
  SluiceProcess::mysql_extra = tls_keys("require");
  SluiceProcess s(kPools + std::string("\n[[pools]]\ndatabase = \"app\"\ncluster = \"my\"\n"), kGeneral);
  int fd = loopback_connect(s.my_port());
  REQUIRE(fd >= 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  unsigned char hdr[4];
  REQUIRE(::recv(fd, hdr, 4, MSG_WAITALL) == 4);
  std::string greeting(hdr[0] | hdr[1] << 8 | hdr[2] << 16, '\0');
  REQUIRE(::recv(fd, greeting.data(), greeting.size(), MSG_WAITALL) == static_cast<ssize_t>(greeting.size()));

  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rbio, wbio);
  SSL_set_connect_state(ssl);
  CHECK(SSL_do_handshake(ssl) <= 0);  // ClientHello written to wbio, waiting for the server
  auto drain = [&] {
    std::string out;
    char buf[16384];
    int n;
    while ((n = BIO_read(wbio, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    return out;
  };
  // SSLRequest: CLIENT_SSL | PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH, max packet, charset.
  std::uint32_t caps = 2048 | 512 | 32768 | (1u << 19);
  std::string req = {32, 0, 0, 1};
  for (int i = 0; i < 4; ++i) req.push_back(static_cast<char>((caps >> (8 * i)) & 0xFF));
  req += std::string("\x00\x00\x00\x01", 4);
  req.push_back(45);
  req += std::string(23, '\0');
  std::string first = req + drain();
  REQUIRE(::write(fd, first.data(), first.size()) == static_cast<ssize_t>(first.size()));
  bool done = false;
  for (int i = 0; i < 50 && !done; ++i) {
    char buf[16384];
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    BIO_write(rbio, buf, static_cast<int>(n));
    done = SSL_do_handshake(ssl) == 1;
    auto out = drain();
    if (!out.empty() && ::write(fd, out.data(), out.size()) != static_cast<ssize_t>(out.size())) break;
  }
  CHECK(done);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
}

// ---- TLS from Sluice to the servers (server_tls) --------------------------------------------
// The sandbox servers run with TLS on, with certificates from integration/certs.sh in
// the sandbox's certs/ directory; PostgreSQL verifies client certificates against the
// same CA when one is sent.
namespace {

const char* kPgTlsRow = "SELECT ssl::text || '|' || coalesce(client_dn, '') || '|' || pg_is_in_recovery()::text "
                        "FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

}  // namespace

TEST_CASE("server_tls verify-full: PostgreSQL primary and replica over TLS with Sluice's client certificate; a wrong CA fails") {
  std::string certs = sandbox_certs();
  const std::string cfg = std::string(R"(
[[users]]
name = "admin"
password = "adminpw"
)") + tls_cluster("pgtls", true, server_tls("verify-full", certs + "/ca.pem", certs + "/client")) +
                          tls_cluster("pgwrong", true, server_tls("verify-full", cert_dir() + "/other-ca.pem")) +
                          tls_cluster("pgplain", true, server_tls("disable", "")) +
                          tls_cluster("pgprefer", true, server_tls("prefer", "")) +
                          pool_for("app", "pgtls") + pool_for("wrongca", "pgwrong", "app") +
                          pool_for("plain", "pgplain", "app") + pool_for("prefer", "pgprefer", "app");
  SluiceProcess s(cfg, kGeneral);

  Conn c(s.conninfo());
  REQUIRE_MESSAGE(c.ok(), c.error());
  // A write goes to the primary: TLS, with Sluice's certificate (CN=app) verified by the server.
  REQUIRE(c.exec("BEGIN"));
  CHECK(c.scalar(kPgTlsRow) == "true|/CN=app|false");
  REQUIRE(c.exec("COMMIT"));
  // Reads go to the replica once its health checks (over TLS too) pass.
  CHECK(eventually([&] { return c.scalar(kPgTlsRow) == "true|/CN=app|true"; }, 10000));

  // The primary ends Sluice's idle TLS connections (as a restart or an idle timeout would): the
  // next write finds them dead before using one (probe of an idle connection) and opens a new one.
  Conn su(direct_conninfo());
  REQUIRE(su.ok());
  CHECK(su.scalar("SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) "
                  "WHERE ssl AND usename = 'app' AND state = 'idle'") == "t");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // past the 100 ms probe threshold
  REQUIRE(c.exec("BEGIN"));
  CHECK(c.scalar(kPgTlsRow) == "true|/CN=app|false");
  REQUIRE(c.exec("COMMIT"));

  Conn plain(s.conninfo("app", "app", "plain"));
  REQUIRE_MESSAGE(plain.ok(), plain.error());
  CHECK(plain.scalar("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == "false");
  Conn prefer(s.conninfo("app", "app", "prefer"));
  REQUIRE_MESSAGE(prefer.ok(), prefer.error());
  CHECK(prefer.scalar("SELECT ssl::text || coalesce(client_dn, '-') FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == "true-");

  Conn wrong(s.conninfo("app", "app", "wrongca"));
  std::string err = wrong.ok() ? wrong.scalar("SELECT 1") + " " + wrong.error() : wrong.error();
  CHECK_MESSAGE(err.find("certificate verify failed") != std::string::npos, err);
  CHECK_MESSAGE(err.find("TLS with server") != std::string::npos, err);
  CHECK(s.wait_for_log("certificate verify failed", 3000));
}

TEST_CASE("server_tls: a RELOAD with the right CA is picked up by new server connections") {
  std::string certs = sandbox_certs();
  auto cfg = [&](const std::string& ca) {
    return std::string(R"(
[[users]]
name = "admin"
password = "adminpw"
)") + tls_cluster("pgtls", true, server_tls("verify-ca", ca)) + pool_for("app", "pgtls");
  };
  SluiceProcess s(cfg(cert_dir() + "/other-ca.pem"), kGeneral);
  {
    Conn before(s.conninfo());
    std::string err = before.ok() ? before.scalar("SELECT 1") + " " + before.error() : before.error();
    CHECK_MESSAGE(err.find("certificate verify failed") != std::string::npos, err);
  }
  s.reload(cfg(certs + "/ca.pem"), kGeneral);
  CHECK(eventually([&] {
    Conn after(s.conninfo());
    return after.ok() && after.scalar("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == "true";
  }, 5000));
}

TEST_CASE("server_tls: a RELOAD from disable to require replaces plaintext server connections, busy ones after their transaction") {
  auto cfg = [&](const std::string& mode) {
    return std::string(R"(
[[users]]
name = "admin"
password = "adminpw"
)") + tls_cluster("pgtls", true, server_tls(mode, "") + "routing = \"primary_only\"\n") + pool_for("app", "pgtls");
  };
  const char* kSsl = "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
  SluiceProcess s(cfg("disable"), kGeneral);
  Conn busy(s.conninfo()), other(s.conninfo());
  REQUIRE_MESSAGE(busy.ok(), busy.error());
  REQUIRE_MESSAGE(other.ok(), other.error());
  CHECK(other.scalar(kSsl) == "false");  // leaves an idle plaintext connection in the pool
  REQUIRE(busy.exec("BEGIN"));
  CHECK(busy.scalar(kSsl) == "false");
  s.reload(cfg("require"), kGeneral);
  // Once the reload is in (SIGHUP: asynchronous), the idle plaintext connection is gone and
  // the next transaction gets a TLS one.
  CHECK(eventually([&] { return other.scalar(kSsl) == "true"; }, 5000));
  // The open transaction keeps its connection to the end, then that connection is not reused.
  CHECK(busy.scalar(kSsl) == "false");
  REQUIRE(busy.exec("COMMIT"));
  CHECK(busy.scalar(kSsl) == "true");
  CHECK(other.scalar(kSsl) == "true");
}

namespace {
// A TCP relay in front of a sandbox server that breaks every TLS handshake: a PostgreSQL
// SSLRequest is answered 'S' and then with bytes that are no TLS; a MySQL SSLRequest (the
// client's first packet, 32 bytes) gets the same. Everything else is relayed as is.
class TlsBreakingRelay {
 public:
  explicit TlsBreakingRelay(int target_port) : target_(target_port) {
    lfd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    REQUIRE(::listen(lfd_, 64) == 0);
    accept_ = std::thread([this] { accept_loop(); });
  }
  ~TlsBreakingRelay() {
    stop_ = true;
    ::shutdown(lfd_, SHUT_RDWR);
    accept_.join();
    for (auto& t : conns_) t.join();
    ::close(lfd_);
  }
  int port() const { return port_; }
  int broken() const { return broken_; }

 private:
  static bool read_n(int fd, char* p, std::size_t n) {
    while (n > 0) {
      pollfd pf{fd, POLLIN, 0};
      if (::poll(&pf, 1, 5000) <= 0) return false;
      ssize_t k = ::recv(fd, p, n, 0);
      if (k <= 0) return false;
      p += k;
      n -= static_cast<std::size_t>(k);
    }
    return true;
  }
  void break_tls(int c) {
    ++broken_;
    const char junk[] = "this is not a TLS server\n";
    ::send(c, junk, sizeof junk - 1, MSG_NOSIGNAL);
  }
  void accept_loop() {
    while (!stop_) {
      int c = ::accept(lfd_, nullptr, nullptr);
      if (c < 0) return;
      conns_.emplace_back([this, c] { serve(c); });
    }
  }
  void serve(int c) {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(target_));
    bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    // The server may speak first (MySQL's handshake): pass that on, then look at what the
    // client sends first.
    pollfd first[2] = {{c, POLLIN, 0}, {s, POLLIN, 0}};
    if (ok && ::poll(first, 2, 5000) > 0 && (first[1].revents & POLLIN)) {
      char h[4];
      ok = read_n(s, h, 4);
      std::uint32_t len = ok ? (static_cast<unsigned char>(h[0]) | static_cast<unsigned char>(h[1]) << 8 |
                                static_cast<unsigned char>(h[2]) << 16)
                             : 0;
      std::string body(len, '\0');
      ok = ok && read_n(s, body.data(), len) && ::send(c, h, 4, MSG_NOSIGNAL) == 4 &&
           ::send(c, body.data(), len, MSG_NOSIGNAL) == static_cast<ssize_t>(len);
      char ch[4];
      ok = ok && read_n(c, ch, 4);
      std::uint32_t clen = ok ? (static_cast<unsigned char>(ch[0]) | static_cast<unsigned char>(ch[1]) << 8 |
                                 static_cast<unsigned char>(ch[2]) << 16)
                              : 0;
      if (ok && clen == 32) {  // SSLRequest
        break_tls(c);
        ok = false;
      } else if (ok) {
        std::string cbody(clen, '\0');
        ok = read_n(c, cbody.data(), clen) && ::send(s, ch, 4, MSG_NOSIGNAL) == 4 &&
             ::send(s, cbody.data(), clen, MSG_NOSIGNAL) == static_cast<ssize_t>(clen);
      }
    } else if (ok) {
      char first8[8];
      ok = read_n(c, first8, 8);
      const unsigned char ssl_request[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
      if (ok && std::memcmp(first8, ssl_request, 8) == 0) {
        ::send(c, "S", 1, MSG_NOSIGNAL);
        break_tls(c);
        ok = false;
      } else if (ok) {
        ok = ::send(s, first8, 8, MSG_NOSIGNAL) == 8;
      }
    }
    char buf[16384];
    while (ok && !stop_) {
      pollfd p[2] = {{c, POLLIN, 0}, {s, POLLIN, 0}};
      int n = ::poll(p, 2, 200);
      if (n < 0) break;
      for (int i = 0; i < 2 && ok; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t k = ::recv(p[i].fd, buf, sizeof buf, 0);
        if (k <= 0 || ::send(p[1 - i].fd, buf, static_cast<std::size_t>(k), MSG_NOSIGNAL) != k) ok = false;
      }
    }
    ::close(s);
    ::close(c);
  }
  int target_, lfd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> broken_{0};
  std::thread accept_;
  std::vector<std::thread> conns_;  // only the accept thread adds; joined after it
};
}  // namespace

TEST_CASE("server_tls prefer: after a failed TLS handshake Sluice connects again without TLS; require fails") {
  TlsBreakingRelay pg(pg_port()), my(my_port());
  auto cluster = [](const std::string& name, bool is_pg, int port, const std::string& mode) {
    return "\n[clusters." + name + "]\nprotocol = \"" + (is_pg ? "postgres" : "mysql") + "\"\nprimary = \"127.0.0.1:" +
           std::to_string(port) + "\"\nserver_tls = \"" + mode + "\"\n";
  };
  const std::string cfg = std::string(R"(
[[users]]
name = "admin"
password = "adminpw"
)") + cluster("pgprefer", true, pg.port(), "prefer") + cluster("pgrequire", true, pg.port(), "require") +
                          cluster("myprefer", false, my.port(), "prefer") + pool_for("app", "pgprefer") +
                          pool_for("strict", "pgrequire", "app") + pool_for("app", "myprefer");
  SluiceProcess s(cfg, kGeneral);

  Conn c(s.conninfo());
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(c.scalar("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == "false");
  int after_pg = pg.broken();
  CHECK(after_pg >= 1);

  Conn strict(s.conninfo("app", "app", "strict"));
  std::string err = strict.ok() ? strict.scalar("SELECT 1") + " " + strict.error() : strict.error();
  CHECK_MESSAGE(err.find("TLS with server") != std::string::npos, err);

  MYSQL* m = mysql_init(nullptr);
  REQUIRE_MESSAGE(mysql_real_connect(m, "127.0.0.1", "app", "app", "app", static_cast<unsigned>(s.my_port()), nullptr, 0),
                  std::string(mysql_error(m)));
  CHECK(mysql_query(m, "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_VERSION'") == 0);
  MYSQL_RES* r = mysql_store_result(m);
  MYSQL_ROW row = r ? mysql_fetch_row(r) : nullptr;
  CHECK(std::string(row && row[0] ? row[0] : "?") == "");  // no TLS between Sluice and MariaDB
  if (r) mysql_free_result(r);
  mysql_close(m);
  CHECK(my.broken() >= 1);
}

TEST_CASE("server_tls verify-full: MariaDB primary and replica over TLS; a wrong CA fails; require needs no CA") {
  std::string certs = sandbox_certs();
  const std::string cfg = std::string(kPools) +
                          tls_cluster("mytls", false, server_tls("verify-full", certs + "/ca.pem")) +
                          tls_cluster("mywrong", false, server_tls("verify-ca", cert_dir() + "/other-ca.pem")) +
                          tls_cluster("myreq", false, server_tls("require", "")) +
                          "\n[[pools]]\ndatabase = \"app\"\ncluster = \"mytls\"\n" +
                          "\n[[pools]]\ndatabase = \"app2\"\ncluster = \"mywrong\"\n" +
                          "\n[[pools]]\ndatabase = \"*\"\ncluster = \"myreq\"\n";
  SluiceProcess s(cfg, kGeneral);
  MYSQL* m = mysql_init(nullptr);
  REQUIRE_MESSAGE(mysql_real_connect(m, "127.0.0.1", "app", "app", "app", static_cast<unsigned>(s.my_port()), nullptr, 0),
                  std::string(mysql_error(m)));
  auto scalar = [&](MYSQL* h, const char* sql) {
    if (mysql_query(h, sql)) return std::string("ERROR:") + mysql_error(h);
    MYSQL_RES* r = mysql_store_result(h);
    MYSQL_ROW row = r ? mysql_fetch_row(r) : nullptr;
    std::string v = row && row[0] ? row[0] : "";
    if (r) mysql_free_result(r);
    return v;
  };
  // Inside a transaction: the primary; the session's TLS version as the server sees it.
  CHECK(scalar(m, "BEGIN") == "");
  CHECK(scalar(m, "SELECT CONCAT(@@read_only, '|', (SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                  "WHERE VARIABLE_NAME = 'SSL_VERSION'))") == "OFF|TLSv1.3");
  CHECK(scalar(m, "COMMIT") == "");
  // Reads reach the replica (its health checks run over TLS as well).
  CHECK(eventually([&] {
    return scalar(m, "SELECT CONCAT(@@read_only, '|', (SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                     "WHERE VARIABLE_NAME = 'SSL_VERSION'))") == "ON|TLSv1.3";
  }, 10000));
  mysql_close(m);

  MYSQL* w = mysql_init(nullptr);
  std::string err;
  if (mysql_real_connect(w, "127.0.0.1", "app", "app", "app2", static_cast<unsigned>(s.my_port()), nullptr, 0))
    err = scalar(w, "SELECT 1");
  else
    err = mysql_error(w);
  CHECK_MESSAGE(err.find("certificate verify failed") != std::string::npos, err);
  mysql_close(w);

  MYSQL* r = mysql_init(nullptr);  // the "*" pool: server_tls = "require" (encrypted, not verified)
  REQUIRE_MESSAGE(mysql_real_connect(r, "127.0.0.1", "app", "app", "information_schema", static_cast<unsigned>(s.my_port()),
                                     nullptr, 0),
                  std::string(mysql_error(r)));
  CHECK(scalar(r, "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_VERSION'") ==
        "TLSv1.3");
  mysql_close(r);
}
