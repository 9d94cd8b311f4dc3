// The front door against hostile or careless input, through real clients: secrets kept out of
// logs and SHOW CONFIG, an SSLRequest with plaintext behind it on a TLS listener, a second
// StartupMessage during SCRAM, and odd MySQL user names looked up on the server.
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "front_door_support.hpp"
#include "harness.hpp"
#include "tls_support.hpp"

using namespace sluice::itest;

TEST_CASE("secrets from password_file and password_env: logins work, and no log line or SHOW shows them") {
  const std::string file_secret = "Fi1e-Secret-93q", env_secret = "Env-Secret-71z";
  const std::string path = "/tmp/sluice-itest-secret-" + std::to_string(::getpid());
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f);
    std::fprintf(f, "%s\n", file_secret.c_str());
    std::fclose(f);
  }
  ::setenv("SLUICE_ITEST_SECRET", env_secret.c_str(), 1);
  ::setenv("SLUICE_TEST_LOG_LEVEL", "debug", 1);
  struct Unset {
    std::string path;
    ~Unset() {
      ::unsetenv("SLUICE_TEST_LOG_LEVEL");
      ::unsetenv("SLUICE_ITEST_SECRET");
      std::remove(path.c_str());
    }
  } unset{path};
  std::string users =
      "[[users]]\nname = \"fileuser\"\npassword_file = \"" + path +
      "\"\nauth = \"password\"\n[[users]]\nname = \"envuser\"\npassword_env = \"SLUICE_ITEST_SECRET\"\n";
  // Console users: a login there needs Sluice's check only (the servers know neither user).
  SluiceProcess s(std::string(kDoorPools) + users,
                  "admin_users = [\"app\", \"fileuser\"]\nstats_users = [\"envuser\"]\n");
  {
    Conn ok(s.conninfo("fileuser", file_secret, "sluice"));
    CHECK_MESSAGE(ok.ok(), ok.error());
  }
  CHECK(pg_error(s.conninfo("fileuser", "wrong", "sluice")).find("password authentication failed") !=
        std::string::npos);
  {
    MyConn ok(s.my_port(), "envuser", env_secret, "sluice");
    CHECK_MESSAGE(ok.ok, mysql_error(ok.m));
    MyConn bad(s.my_port(), "envuser", "wrong", "sluice");
    CHECK_FALSE(bad.ok);
    CHECK(mysql_errno(bad.m) == 1045);
  }
  // The console: SHOW CONFIG and friends, on both protocols, and a reload that re-reads them.
  std::string shown;
  {
    Conn admin(s.conninfo("app", "app", "sluice"));
    REQUIRE(admin.ok());
    for (const char* q : {"SHOW CONFIG", "SHOW CLIENTS", "SHOW ACCESS", "SHOW LIMITS", "SHOW DATABASES", "RELOAD"}) {
      PGresult* r = PQexec(admin.c, q);
      for (int i = 0; i < PQntuples(r); ++i)
        for (int j = 0; j < PQnfields(r); ++j) shown += std::string(PQgetvalue(r, i, j)) + "\n";
      PQclear(r);
    }
    MyConn my(s.my_port(), "app", "app", "sluice");
    REQUIRE(my.ok);
    if (mysql_query(my.m, "SHOW CONFIG") == 0) {
      MYSQL_RES* r = mysql_store_result(my.m);
      while (MYSQL_ROW row = mysql_fetch_row(r))
        for (unsigned j = 0; j < mysql_num_fields(r); ++j) shown += std::string(row[j] ? row[j] : "") + "\n";
      mysql_free_result(r);
    }
  }
  CHECK(shown.find("password_file") == std::string::npos);  // SHOW CONFIG lists settings, not users
  CHECK(shown.find(file_secret) == std::string::npos);
  CHECK(shown.find(env_secret) == std::string::npos);
  CHECK(s.wait_for_log("configuration reloaded", 5000));
  std::ifstream log(s.log_path());
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  // The log (at debug level) tells of both users' logins, right and wrong, without their secrets.
  CHECK(text.find("authentication failed for user \"fileuser\"") != std::string::npos);
  CHECK(text.find("user envuser") != std::string::npos);
  CHECK(text.find(file_secret) == std::string::npos);
  CHECK(text.find(env_secret) == std::string::npos);
}

TEST_CASE(
    "hostile clients at the door: SSLRequest with plaintext behind it, a second StartupMessage in SCRAM, "
    "odd MySQL user names") {
  SluiceProcess::postgres_extra = tls_keys("allow");
  SluiceProcess::mysql_extra = "auth_user = \"app\"\n";
  struct Clear {
    ~Clear() {
      SluiceProcess::postgres_extra.clear();
      SluiceProcess::mysql_extra.clear();
    }
  } clear;
  SluiceProcess s(kDoorPools, kDoorAdmin);
  auto be32 = [](std::uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                       static_cast<char>(v)};
  };
  std::string body = be32(196608) + std::string("user\0app\0database\0app\0\0", 23);
  std::string startup = be32(static_cast<std::uint32_t>(body.size() + 4)) + body;
  auto read_some = [](int fd, int timeout_s) {
    timeval tv{timeout_s, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string got;
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
  };
  // 1. SSLRequest and a plaintext StartupMessage in one write: never 'S', never read as TLS.
  {
    int fd = loopback_connect(s.port());
    REQUIRE(fd >= 0);
    std::string both = std::string("\0\0\0\x08\x04\xd2\x16\x2f", 8) + startup;
    REQUIRE(::send(fd, both.data(), both.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(both.size()));
    std::string got = read_some(fd, 5);
    ::close(fd);
    REQUIRE_FALSE(got.empty());
    CHECK(got[0] == 'E');
    CHECK(got.find("unexpected data after SSLRequest") != std::string::npos);
  }
  // 2. A second StartupMessage where the SCRAM answer belongs: FATAL at once, not after waiting
  // for the 7,680 bytes its first bytes would announce as a typed message.
  {
    int fd = loopback_connect(s.port());
    REQUIRE(fd >= 0);
    REQUIRE(::send(fd, startup.data(), startup.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(startup.size()));
    char r[64];
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n = ::recv(fd, r, sizeof r, 0);  // AuthenticationSASL
    REQUIRE(n > 0);
    CHECK(r[0] == 'R');
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(::send(fd, startup.data(), startup.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(startup.size()));
    std::string got = read_some(fd, 10);
    ::close(fd);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
    REQUIRE_FALSE(got.empty());
    CHECK(got[0] == 'E');
    CHECK(got.find("08P01") != std::string::npos);
  }
  // 3. MySQL users the file does not list are looked up on the server (auth_user): names with
  // quotes, a NUL, or 10 kB of text are refused like any unknown user, and Sluice stays up.
  for (std::string name : {std::string("x' OR '1'='1"), std::string("a\\\"b`c"), std::string(10000, 'u')}) {
    MyConn m(s.my_port(), name, "pw");
    CHECK_FALSE(m.ok);
    CHECK(mysql_errno(m.m) == 1045);
  }
  MyConn ok(s.my_port(), "app", "app");
  CHECK(ok.ok);
  Conn after(s.conninfo());
  CHECK_MESSAGE(after.ok(), after.error());
}

TEST_CASE(
    "silent clients at the door are closed at client_login_timeout: before the startup packet, mid-SCRAM, and "
    "mid-handshake on MySQL") {
  SluiceProcess s(kDoorPools, std::string(kDoorAdmin) + "client_login_timeout = \"2s\"\n");
  auto be32 = [](std::uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                       static_cast<char>(v)};
  };
  std::string body = be32(196608) + std::string("user\0app\0database\0app\0\0", 23);
  std::string startup = be32(static_cast<std::uint32_t>(body.size() + 4)) + body;
  // The bytes until the connection ends (recv 0 or an error), and how long that took.
  auto until_closed = [](int fd) {
    timeval tv{12, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    auto t0 = std::chrono::steady_clock::now();
    std::string got;
    char buf[512];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<std::size_t>(n));
    return std::make_pair(got, std::chrono::steady_clock::now() - t0);
  };
  SUBCASE("nothing at all") {
    int fd = loopback_connect(s.port());
    REQUIRE(fd >= 0);
    auto [got, took] = until_closed(fd);
    ::close(fd);
    CHECK(got.empty());
    CHECK(took < std::chrono::seconds(8));
  }
  SUBCASE("the startup packet, then silence where the SCRAM first message belongs") {
    int fd = loopback_connect(s.port());
    REQUIRE(fd >= 0);
    REQUIRE(::send(fd, startup.data(), startup.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(startup.size()));
    auto [got, took] = until_closed(fd);
    ::close(fd);
    REQUIRE_FALSE(got.empty());
    CHECK(got[0] == 'R');  // AuthenticationSASL, then nothing until the close
    CHECK(took < std::chrono::seconds(8));
  }
  SUBCASE("MySQL: silence where the handshake response belongs, and half of one") {
    for (int half : {0, 1}) {
      int fd = loopback_connect(s.my_port());
      REQUIRE(fd >= 0);
      if (half)
        REQUIRE(::send(fd, "\x40\x00\x00\x01\x0d\xa2", 6, MSG_NOSIGNAL) == 6);  // a 64-byte packet's first bytes
      auto [got, took] = until_closed(fd);
      ::close(fd);
      REQUIRE(got.size() > 4);
      CHECK(got[4] == '\x0a');  // the greeting (protocol 10), then nothing until the close
      CHECK(took < std::chrono::seconds(8));
    }
  }
  SUBCASE("half a startup packet") {
    int fd = loopback_connect(s.port());
    REQUIRE(fd >= 0);
    REQUIRE(::send(fd, startup.data(), 10, MSG_NOSIGNAL) == 10);
    auto [got, took] = until_closed(fd);
    ::close(fd);
    CHECK(got.empty());
    CHECK(took < std::chrono::seconds(8));
  }
  // None of them is left logging in.
  Conn admin(s.conninfo("app", "app", "sluice"));
  REQUIRE_MESSAGE(admin.ok(), admin.error());
  PGresult* r = PQexec(admin.c, "SHOW CLIENTS");
  REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
  int logging_in = 0;
  for (int i = 0; i < PQntuples(r); ++i) logging_in += std::string(PQgetvalue(r, i, PQfnumber(r, "state"))) == "login";
  PQclear(r);
  CHECK(logging_in == 0);
  MyConn m(s.my_port(), "app", "app");
  CHECK_MESSAGE(m.ok, mysql_error(m.m));
  Conn c(s.conninfo());
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(c.scalar("SELECT 1") == "1");
}
