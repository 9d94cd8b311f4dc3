// The front door through real clients: [[access]] rules on both protocols (address, IPv6 on
// [::1], user, group, database, TLS, the auth a rule asks for, COM_CHANGE_USER), their counters
// on the console and /metrics across a reload, and the PROXY protocol (v1, v2, LOCAL, IPv6)
// from a balancer written here, from trusted and untrusted peers.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "front_door_support.hpp"
#include "harness.hpp"
#include "tls_support.hpp"

using namespace sluice::itest;

namespace {

std::string http(int port) { return "[http]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n"; }

int connect_to(const char* host, int port) {
  bool v6 = std::string(host).find(':') != std::string::npos;
  int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  sockaddr_storage ss{};
  socklen_t len;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET6, host, &a->sin6_addr);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, host, &a->sin_addr);
    len = sizeof *a;
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A load balancer in miniature: accepts on `host` (an ephemeral port), connects each client to
// Sluice at host:target, writes `header()` first (in pieces `split` bytes apart, 50 ms between),
// then relays both ways until either side closes. Bounded: everything stops with the object.
class Balancer {
 public:
  Balancer(const char* host, int target, std::function<std::string()> header, std::size_t split = 0)
      : host_(host), target_(target), header_(std::move(header)), split_(split) {
    bool v6 = host_.find(':') != std::string::npos;
    lfd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      inet_pton(AF_INET6, host, &a->sin6_addr);
      len = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      inet_pton(AF_INET, host, &a->sin_addr);
      len = sizeof *a;
    }
    REQUIRE(::bind(lfd_, reinterpret_cast<sockaddr*>(&ss), len) == 0);
    REQUIRE(::listen(lfd_, 16) == 0);
    ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&ss), &len);
    port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~Balancer() {
    stop_ = true;
    ::shutdown(lfd_, SHUT_RDWR);
    acceptor_.join();
    ::close(lfd_);
    std::lock_guard lock(mu_);
    for (auto& t : relays_) t.join();
  }
  int port() const { return port_; }

 private:
  void accept_loop() {
    for (;;) {
      pollfd p{lfd_, POLLIN, 0};
      if (::poll(&p, 1, 100) < 0 || stop_) return;
      if (!(p.revents & POLLIN)) continue;
      int c = ::accept(lfd_, nullptr, nullptr);
      if (c < 0) return;
      std::lock_guard lock(mu_);
      relays_.emplace_back([this, c] { relay(c); });
    }
  }
  void relay(int c) {
    int s = connect_to(host_.c_str(), target_);
    if (s < 0) {
      ::close(c);
      return;
    }
    std::string h = header_();
    if (split_ && split_ < h.size()) {
      for (std::size_t i = 0; i < h.size(); i += split_) {
        (void)!::send(s, h.data() + i, std::min(split_, h.size() - i), MSG_NOSIGNAL);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    } else if (!h.empty()) {
      (void)!::send(s, h.data(), h.size(), MSG_NOSIGNAL);
    }
    char buf[16384];
    for (int idle = 0; !stop_ && idle < 300;) {  // at most 30 s without traffic
      pollfd p[2] = {{c, POLLIN, 0}, {s, POLLIN, 0}};
      int n = ::poll(p, 2, 100);
      if (n == 0) {
        ++idle;
        continue;
      }
      idle = 0;
      bool done = false;
      for (int i = 0; i < 2 && !done; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t r = ::recv(p[i].fd, buf, sizeof buf, 0);
        if (r <= 0 || ::send(p[1 - i].fd, buf, static_cast<std::size_t>(r), MSG_NOSIGNAL) != r) done = true;
      }
      if (done) break;
    }
    ::close(c);
    ::close(s);
  }
  std::string host_;
  int target_;
  std::function<std::string()> header_;
  std::size_t split_;
  int lfd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> relays_;
};

std::string v1(const char* family, const char* src, const char* dst, int sport, int dport) {
  return std::string("PROXY ") + family + " " + src + " " + dst + " " + std::to_string(sport) + " " +
         std::to_string(dport) + "\r\n";
}

std::string v2_header(std::uint8_t cmd, std::uint8_t fam, const std::string& addrs) {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += static_cast<char>(cmd);
  h += static_cast<char>(fam);
  h += static_cast<char>(addrs.size() >> 8);
  h += static_cast<char>(addrs.size() & 0xff);
  return h + addrs;
}

// 198.51.100.23:40000 -> 127.0.0.1:6432, as a v2 PROXY/INET header.
std::string v2_inet() {
  return v2_header(0x21, 0x11, std::string("\xC6\x33\x64\x17\x7F\x00\x00\x01\x9C\x40\x19\x20", 12));
}

// SHOW CLIENTS' addresses and ports for user `user` as "addr:port" strings (console via libpq).
std::vector<std::string> client_addrs(const SluiceProcess& s, const std::string& user = "app") {
  Conn admin(s.conninfo("app", "app", "sluice"));
  REQUIRE_MESSAGE(admin.ok(), admin.error());
  PGresult* r = PQexec(admin.c, "SHOW CLIENTS");
  std::vector<std::string> out;
  int c_user = PQfnumber(r, "user"), c_addr = PQfnumber(r, "addr"), c_port = PQfnumber(r, "port"),
      c_db = PQfnumber(r, "database");
  for (int i = 0; i < PQntuples(r); ++i)
    if (PQgetvalue(r, i, c_user) == user && std::string(PQgetvalue(r, i, c_db)) != "sluice")
      out.push_back(std::string(PQgetvalue(r, i, c_addr)) + ":" + PQgetvalue(r, i, c_port));
  PQclear(r);
  return out;
}

// SHOW ACCESS: matches per rule number.
std::vector<long> access_matches(const SluiceProcess& s) {
  Conn admin(s.conninfo("app", "app", "sluice"));
  REQUIRE_MESSAGE(admin.ok(), admin.error());
  PGresult* r = PQexec(admin.c, "SHOW ACCESS");
  REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
  std::vector<long> out;
  int c = PQfnumber(r, "matches");
  for (int i = 0; i < PQntuples(r); ++i) out.push_back(std::stol(PQgetvalue(r, i, c)));
  PQclear(r);
  return out;
}

struct V6Guard {
  V6Guard() { SluiceProcess::listen_v6 = true; }
  ~V6Guard() {
    SluiceProcess::listen_v6 = false;
    SluiceProcess::postgres_extra.clear();
    SluiceProcess::mysql_extra.clear();
  }
};

}  // namespace

TEST_CASE("PostgreSQL: access rules by address (IPv4 and IPv6), user, group, database and TLS, with their auth") {
  V6Guard v6;
  SluiceProcess::postgres_extra = tls_keys("allow");
  SluiceProcess s(std::string(kDoorPools) + R"(
[[users]]
name = "intruder"
password = "x"
groups = ["blocked"]

[[access]]
name = "console from loopback"
database = "sluice"
address = ["127.0.0.1", "::1"]
action = "allow"
[[access]]
name = "blocked group"
user = "+blocked"
action = "reject"
[[access]]
name = "no md5user over IPv6"
user = "md5user"
address = "::1/128"
action = "reject"
[[access]]
name = "app over TLS, trusted"
user = "app"
database = "app"
tls = "required"
action = "allow"
auth = "trust"
[[access]]
name = "app in the clear, with its password"
user = ["app", "md5user"]
database = "app"
address = ["127.0.0.0/8", "::1"]
action = "allow"
)",
                  kDoorAdmin);
  auto info = [&](const char* host, const char* user, const char* pw, const char* db, const char* ssl) {
    return std::string("host=") + host + " port=" + std::to_string(s.port()) + " user=" + user + " password=" + pw +
           " dbname=" + db + " sslmode=" + ssl + " connect_timeout=5";
  };
  // Rule 5: plain TCP over IPv4 and IPv6 with the password.
  {
    Conn c(info("127.0.0.1", "app", "app", "app", "disable"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    CHECK(c.scalar("SELECT 1") == "1");
    Conn c6(info("::1", "app", "app", "app", "disable"));
    REQUIRE_MESSAGE(c6.ok(), c6.error());
    CHECK(c6.scalar("SELECT 1") == "1");
    auto addrs = client_addrs(s);
    bool saw_v6 = false;
    for (auto& a : addrs) saw_v6 = saw_v6 || a.rfind("::1:", 0) == 0;
    CHECK(saw_v6);  // SHOW CLIENTS has the IPv6 client's address
  }
  // Rule 5 again: a wrong password fails as usual (28P01), so the rule kept the password.
  CHECK(pg_error(info("127.0.0.1", "app", "wrong", "app", "disable")).find("password authentication failed") !=
        std::string::npos);
  // Rule 4: over TLS, `auth = "trust"`: no password needed.
  {
    Conn c(info("127.0.0.1", "app", "wrong", "app", "require"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    CHECK(c.scalar("SELECT 1") == "1");
  }
  // Rule 3: md5user over IPv6 is rejected, by rule number, before any password; over IPv4 rule 5.
  std::string e = pg_error(info("::1", "md5user", "md5pass", "app", "disable"));
  CHECK(e.find("access rule 3 rejects connection for host \"::1\", user \"md5user\", database \"app\", no "
               "encryption") != std::string::npos);
  {
    Conn c(info("127.0.0.1", "md5user", "md5pass", "app", "disable"));
    CHECK_MESSAGE(c.ok(), c.error());
  }
  // Rule 2: a group member gets the rule's refusal, not a password failure.
  e = pg_error(info("127.0.0.1", "intruder", "x", "app", "disable"));
  CHECK(e.find("access rule 2 rejects") != std::string::npos);
  // No rule for this database: refused with pg_hba's words (and SQLSTATE 28000), TLS named.
  e = pg_error(info("127.0.0.1", "app", "app", "postgres", "require"));
  CHECK(e.find("no access rule for host \"127.0.0.1\", user \"app\", database \"postgres\", SSL encryption") !=
        std::string::npos);
  // A user nobody configured is refused by the rules first: no hint that it does not exist.
  e = pg_error(info("127.0.0.1", "ghost", "x", "postgres", "disable"));
  CHECK(e.find("no access rule") != std::string::npos);
  CHECK(e.find("does not exist") == std::string::npos);

  // Counters: SHOW ACCESS (rule 0 last) and /metrics.
  auto m = access_matches(s);
  REQUIRE(m.size() == 6);
  CHECK(m[1] == 1);  // intruder
  CHECK(m[2] == 1);  // md5user over IPv6
  CHECK(m[3] == 1);  // TLS trust
  CHECK(m[4] == 4);  // app v4, app v6, wrong password, md5user v4
  CHECK(m[5] == 2);  // no rule: postgres database twice
  CHECK(m[0] == 2);  // the console's logins: SHOW CLIENTS above, SHOW ACCESS here
}

TEST_CASE("access rules: counters on /metrics, a reload applies new rules and keeps unchanged counts") {
  int http_port = 0;
  std::string rules = R"(
[[access]]
name = "console"
database = "sluice"
action = "allow"
[[access]]
name = "deny md5user"
user = "md5user"
action = "reject"
[[access]]
name = "the rest"
action = "allow"
)";
  SluiceProcess s(std::string(kDoorPools) + rules, kDoorAdmin);
  http_port = s.port() + 700;
  s.reload(std::string(kDoorPools) + rules + http(http_port), kDoorAdmin);
  REQUIRE(eventually([&] { return http_get(http_port, "/metrics").first == 200; }));
  CHECK(pg_error(s.conninfo("md5user", "md5pass")).find("access rule 2 rejects") != std::string::npos);
  {
    MyConn my(s.my_port(), "md5user", "md5pass");
    CHECK_FALSE(my.ok);
    CHECK(mysql_errno(my.m) == 1130);
    CHECK(std::string(mysql_error(my.m)).find("access rule 2 rejects") != std::string::npos);
  }
  auto page = http_get(http_port, "/metrics").second;
  CHECK(metric(page, "sluice_access_rule_matches_total{rule=\"2\",name=\"deny md5user\",action=\"reject\"}") == 2);

  // The new file lets md5user in: rule 2 goes, "the rest" keeps its count (same rule).
  long before = access_matches(s)[2];
  s.reload(std::string(kDoorPools) + R"(
[[access]]
name = "console"
database = "sluice"
action = "allow"
[[access]]
name = "the rest"
action = "allow"
)" + http(http_port),
           kDoorAdmin);
  REQUIRE(eventually([&] { return access_matches(s).size() == 3; }));
  {
    Conn c(s.conninfo("md5user", "md5pass"));
    CHECK_MESSAGE(c.ok(), c.error());
  }
  CHECK(access_matches(s)[1] == before + 1);
}

TEST_CASE("MySQL: refused by address before the greeting (1130), per user after it, trust, COM_CHANGE_USER") {
  V6Guard v6;
  SluiceProcess s(std::string(kDoorPools) + R"(
[[access]]
database = "sluice"
address = "127.0.0.1"
action = "allow"
[[access]]
name = "no MySQL over IPv6"
protocol = "mysql"
address = "::1"
action = "reject"
[[access]]
protocol = "mysql"
user = "md5user"
action = "reject"
[[access]]
protocol = "mysql"
user = "app"
address = "127.0.0.1"
action = "allow"
auth = "trust"
[[access]]
protocol = "postgres"
action = "allow"
)",
                  kDoorAdmin);
  // Over IPv6 the address decides before the greeting: the first packet is ERR 1130, as a MySQL
  // server sends for a host it does not know.
  {
    int fd = connect_to("::1", s.my_port());
    REQUIRE(fd >= 0);
    unsigned char buf[512];
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    REQUIRE(n > 7);
    CHECK(buf[3] == 0);     // sequence 0: no greeting came first
    CHECK(buf[4] == 0xff);  // ERR
    CHECK((buf[5] | (buf[6] << 8)) == 1130);
    std::string text(reinterpret_cast<char*>(buf) + 13, static_cast<std::size_t>(n) - 13);
    CHECK(text == "Host '::1' is not allowed to connect to this server");
    ::close(fd);
  }
  // Through Connector/C over IPv4: md5user refused after its handshake (1130, rule 3)...
  {
    MyConn my(s.my_port(), "md5user", "md5pass");
    CHECK_FALSE(my.ok);
    CHECK(mysql_errno(my.m) == 1130);
    CHECK(std::string(mysql_error(my.m))
              .find("access rule 3 rejects connection for host \"127.0.0.1\", user "
                    "\"md5user\"") != std::string::npos);
  }
  // ... app with a wrong password gets in (rule 4: trust) ...
  MyConn app(s.my_port(), "app", "not-the-password");
  REQUIRE_MESSAGE(app.ok, mysql_error(app.m));
  CHECK(app.scalar("SELECT 1") == "1");
  // ... and cannot become md5user with COM_CHANGE_USER: the rules apply to it too.
  CHECK(mysql_change_user(app.m, "md5user", "md5pass", "app") != 0);
  CHECK(mysql_errno(app.m) == 1130);
  // PostgreSQL has its own rule (5).
  Conn pg(s.conninfo("md5user", "md5pass"));
  CHECK_MESSAGE(pg.ok(), pg.error());
}

TEST_CASE("PROXY protocol: v1, v2, LOCAL, split headers and IPv6 from trusted balancers name the client") {
  V6Guard v6;
  SluiceProcess::postgres_extra = "proxy_protocol_trusted = [\"127.0.0.1\", \"::1\"]\n";
  SluiceProcess::mysql_extra = "proxy_protocol_trusted = [\"127.0.0.1\"]\n";
  SluiceProcess s(std::string(kDoorPools) + R"(
[[access]]
name = "a blocked network"
address = "203.0.113.0/24"
action = "reject"
[[access]]
action = "allow"
)",
                  std::string(kDoorAdmin) + "client_login_timeout = \"2s\"\n");
  auto through = [&](Balancer& b, const char* host = "127.0.0.1") {
    return std::string("host=") + host + " port=" + std::to_string(b.port()) +
           " user=app password=app dbname=app sslmode=disable connect_timeout=5";
  };
  // The console is reached through a balancer too (every connection from 127.0.0.1 must send a
  // header): LOCAL, the balancer's own connection, keeps its address.
  Balancer local("127.0.0.1", s.port(), [] { return v2_header(0x20, 0x00, ""); });
  auto console = [&] {
    return std::string("host=127.0.0.1 port=") + std::to_string(local.port()) +
           " user=app password=app dbname=sluice sslmode=disable";
  };
  {
    Conn admin(console());
    REQUIRE_MESSAGE(admin.ok(), admin.error());
  }
  auto addrs_via_console = [&] {
    Conn admin(console());
    REQUIRE_MESSAGE(admin.ok(), admin.error());
    PGresult* r = PQexec(admin.c, "SHOW CLIENTS");
    std::vector<std::string> out;
    for (int i = 0; i < PQntuples(r); ++i)
      if (std::string(PQgetvalue(r, i, PQfnumber(r, "database"))) == "app")
        out.push_back(std::string(PQgetvalue(r, i, PQfnumber(r, "addr"))) + ":" +
                      PQgetvalue(r, i, PQfnumber(r, "port")));
    PQclear(r);
    return out;
  };

  SUBCASE("v1 and v2 name the client; v2 split in pieces; SHOW CLIENTS and the rules see it") {
    Balancer b1("127.0.0.1", s.port(), [] { return v1("TCP4", "198.51.100.7", "127.0.0.1", 51000, 6432); });
    Balancer b2(
        "127.0.0.1", s.port(), [] { return v2_inet(); }, 5);
    Conn c1(through(b1));
    REQUIRE_MESSAGE(c1.ok(), c1.error());
    CHECK(c1.scalar("SELECT 1") == "1");
    Conn c2(through(b2));
    REQUIRE_MESSAGE(c2.ok(), c2.error());
    CHECK(c2.scalar("SELECT 2") == "2");
    auto addrs = addrs_via_console();
    CHECK(std::find(addrs.begin(), addrs.end(), "198.51.100.7:51000") != addrs.end());
    CHECK(std::find(addrs.begin(), addrs.end(), "198.51.100.23:40000") != addrs.end());
    // The rules use the real address: 203.0.113.x is refused through the balancer.
    Balancer bad("127.0.0.1", s.port(), [] { return v1("TCP4", "203.0.113.9", "127.0.0.1", 1234, 6432); });
    CHECK(pg_error(through(bad)).find("access rule 1 rejects connection for host \"203.0.113.9\"") !=
          std::string::npos);
  }
  SUBCASE("IPv6: a TCP6 header from a balancer on [::1]") {
    Balancer b6("::1", s.port(), [] { return v1("TCP6", "2001:db8::42", "::1", 40001, 6432); });
    Conn c(through(b6, "::1"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    auto addrs = addrs_via_console();
    CHECK(std::find(addrs.begin(), addrs.end(), "2001:db8::42:40001") != addrs.end());
  }
  SUBCASE("a trusted peer without a header, or with a bad one, is refused; others are not") {
    // libpq straight to Sluice from 127.0.0.1: its startup packet is no header.
    CHECK_FALSE(pg_error(s.conninfo()).empty());
    Balancer garbage("127.0.0.1", s.port(), [] { return std::string("PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n"); });
    CHECK_FALSE(pg_error(through(garbage)).empty());
    // A peer that sends nothing is dropped at client_login_timeout (2 s), not held.
    int fd = loopback_connect(s.port());
    REQUIRE(fd >= 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char c;
    auto t0 = std::chrono::steady_clock::now();
    CHECK(::recv(fd, &c, 1, 0) == 0);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(8));
    ::close(fd);
  }
  SUBCASE("MySQL through a v2 balancer; an untrusted peer's header never names the client") {
    Balancer my("127.0.0.1", s.my_port(), [] { return v2_inet(); });
    MYSQL* m = mysql_init(nullptr);
    my_bool no_tls = 0;
    mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &no_tls);
    REQUIRE_MESSAGE(mysql_real_connect(m, "127.0.0.1", "app", "app", "app", static_cast<unsigned>(my.port()), nullptr,
                                       0) != nullptr,
                    mysql_error(m));
    CHECK(mysql_query(m, "SELECT 1") == 0);
    mysql_free_result(mysql_store_result(m));
    auto addrs = addrs_via_console();
    CHECK(std::find(addrs.begin(), addrs.end(), "198.51.100.23:40000") != addrs.end());
    mysql_close(m);
    // From [::1] (not trusted on MySQL) a header is refused: refused outright when it is there
    // before Sluice looks, else read as a malformed handshake. Either way the connection ends
    // and nobody is logged in as 198.51.100.99.
    int fd = connect_to("::1", s.my_port());
    REQUIRE(fd >= 0);
    std::string h = v1("TCP4", "198.51.100.99", "127.0.0.1", 1, 2);
    REQUIRE(::send(fd, h.data(), h.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(h.size()));
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[512];
    ssize_t n = 0;
    int err = 0;
    for (int i = 0; i < 10 && (n = ::recv(fd, buf, sizeof buf, 0)) > 0; ++i) {
    }
    if (n < 0) err = errno;
    // Closed by Sluice (a reset when the refused header was still unread there), not timed out.
    CHECK_MESSAGE((n == 0 || err == ECONNRESET), "recv " << n << " errno " << err);
    ::close(fd);
    addrs = addrs_via_console();
    for (auto& a : addrs) CHECK(a.rfind("198.51.100.99", 0) != 0);
    // An untrusted MySQL client without a header logs in as itself.
    MYSQL* direct = mysql_init(nullptr);
    mysql_optionsv(direct, MYSQL_OPT_SSL_ENFORCE, &no_tls);
    CHECK(mysql_real_connect(direct, "::1", "app", "app", "app", static_cast<unsigned>(s.my_port()), nullptr, 0) !=
          nullptr);
    mysql_close(direct);
  }
}

TEST_CASE("PROXY protocol: the per-address connection rate counts the client a balancer names") {
  V6Guard v6;
  SluiceProcess::postgres_extra = "proxy_protocol_trusted = [\"127.0.0.1\"]\n";
  SluiceProcess s(std::string(kDoorPools) + R"(
[limits]
connections_per_second_per_address = 2
)",
                  kDoorAdmin);
  // Every connection reaches Sluice from the balancer's 127.0.0.1. The first are the balancer's
  // own (LOCAL, as health checks are), until 127.0.0.1's burst of 2 is used up. The next six
  // name six clients, the rest one client. The six get in at once: a rate is kept for the
  // address a header names, never for the balancer's (not even at accept, before the header).
  std::atomic<int> mode{0}, named{0};  // 0: LOCAL, 1: a new client each time, 2: one client
  Balancer b("127.0.0.1", s.port(), [&mode, &named] {
    if (mode == 0) return v2_header(0x20, 0x00, "");
    const std::string client = mode == 1 ? "198.51.100." + std::to_string(++named) : std::string("198.51.100.50");
    return v1("TCP4", client.c_str(), "127.0.0.1", 50000, 6432);
  });
  const std::string through =
      "host=127.0.0.1 port=" + std::to_string(b.port()) + " user=app password=app dbname=app sslmode=disable";
  int local_refused = 0;
  for (int i = 0; i < 20 && local_refused == 0; ++i) {
    Conn c(through);
    if (!c.ok()) ++local_refused;
  }
  mode = 1;
  REQUIRE(local_refused == 1);  // 127.0.0.1's bucket is empty now
  for (int i = 0; i < 6; ++i) {
    Conn c(through);
    CHECK_MESSAGE(c.ok(), c.error());
  }
  mode = 2;
  int refused = 0;
  std::string refusal;
  for (int i = 0; i < 6; ++i) {
    Conn c(through);
    if (!c.ok()) ++refused, refusal = c.error();
  }
  CHECK(refused >= 1);
  CHECK(refusal.find("too many new connections from host \"198.51.100.50\"") != std::string::npos);
}

TEST_CASE("PROXY protocol: proxy_protocol_only refuses every other peer") {
  V6Guard v6;
  SluiceProcess::postgres_extra = "proxy_protocol_trusted = [\"::1\"]\nproxy_protocol_only = true\n";
  SluiceProcess s(kDoorPools, kDoorAdmin);
  // 127.0.0.1 is not a balancer here: refused before a byte is read.
  CHECK_FALSE(pg_error(s.conninfo()).empty());
  Balancer b6("::1", s.port(), [] { return v1("TCP4", "192.0.2.1", "127.0.0.1", 1000, 6432); });
  Conn c("host=::1 port=" + std::to_string(b6.port()) + " user=app password=app dbname=app sslmode=disable");
  CHECK_MESSAGE(c.ok(), c.error());
  CHECK(c.scalar("SELECT 1") == "1");
}
