// Shadow traffic ([[rules]] mirror) on both protocols: reads copied to a mirror cluster (the
// sandbox replica) and their answers compared (matched, and mismatched while the replica's replay
// is paused), writes not copied unless asked, a dead mirror and a mirror stopped mid-run (a
// forwarder the test closes): the client's answers never change and copies are failed or dropped.
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "front_door_support.hpp"
#include "harness.hpp"

using namespace sluice::itest;

namespace {

int pg_replica_port() { return std::stoi(env_or("SLUICE_PG_REPLICA_PORT", "15433")); }
int my_replica_port() { return std::stoi(env_or("SLUICE_MY_REPLICA_PORT", "13307")); }

// A TCP forwarder from a loopback port to `target`, closed (listener and connections) by stop().
class Forwarder {
 public:
  explicit Forwarder(int target) : target_(target) {
    lfd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(lfd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~Forwarder() { stop(); }
  int port() const { return port_; }
  void stop() {
    if (stopped_.exchange(true)) return;
    thread_.join();
    ::close(lfd_);
  }

 private:
  void run() {
    std::vector<std::pair<int, int>> pairs;
    while (!stopped_) {
      std::vector<pollfd> fds{{lfd_, POLLIN, 0}};
      for (auto& [a, b] : pairs) fds.push_back({a, POLLIN, 0}), fds.push_back({b, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
      const std::size_t polled = pairs.size();  // a pair accepted below was not polled yet
      if (fds[0].revents & POLLIN) {
        int c = ::accept(lfd_, nullptr, nullptr);
        int s = loopback_connect(target_);
        if (c >= 0 && s >= 0) pairs.emplace_back(c, s);
      }
      for (std::size_t i = 0; i < polled; ++i) {
        for (int side = 0; side < 2; ++side) {
          if (!(fds[1 + 2 * i + side].revents & (POLLIN | POLLHUP))) continue;
          int from = side ? pairs[i].second : pairs[i].first, to = side ? pairs[i].first : pairs[i].second;
          char buf[16384];
          ssize_t n = ::read(from, buf, sizeof buf);
          if (n > 0) (void)!::write(to, buf, static_cast<std::size_t>(n));
        }
      }
    }
    for (auto& [a, b] : pairs) ::close(a), ::close(b);
  }
  int target_, lfd_ = -1, port_ = 0;
  std::atomic<bool> stopped_{false};
  std::thread thread_;
};

// SHOW MIRRORS: (cluster, fingerprint) -> column -> value.
std::map<std::string, std::map<std::string, long>> mirrors(const SluiceProcess& s) {
  std::map<std::string, std::map<std::string, long>> out;
  Conn admin(s.conninfo("app", "app", "sluice"));
  PGresult* r = PQexec(admin.c, "SHOW MIRRORS");
  for (int i = 0; i < PQntuples(r); ++i)
    for (int c = 2; c < PQnfields(r); ++c)
      out[std::string(PQgetvalue(r, i, 0)) + " " + PQgetvalue(r, i, 1)][PQfname(r, c)] = std::stol(PQgetvalue(r, i, c));
  PQclear(r);
  return out;
}
long total(const SluiceProcess& s, const std::string& cluster, const std::string& column) {
  long n = 0;
  for (auto& [k, v] : mirrors(s))
    if (k.rfind(cluster + " ", 0) == 0) n += v[column];
  return n;
}

std::string config(int forward_port) {
  auto cl = [](const char* name, const char* protocol, int port) {
    return std::string("[clusters.") + name + "]\nprotocol = \"" + protocol +
           "\"\nprimary = \"127.0.0.1:" + std::to_string(port) + "\"\nhealth_check_period = \"200ms\"\n";
  };
  return std::string(kDoorPools) + cl("pgshadow", "postgres", pg_replica_port()) + cl("pgdead", "postgres", 1) +
         cl("pgforward", "postgres", forward_port) + cl("myshadow", "mysql", my_replica_port()) +
         cl("mydead", "mysql", 1) + R"(
[mirror]
timeout = "2s"
queue = 4
[[rules]]
protocol = "postgres"
tables = ["mirror_t"]
mirror = "pgshadow"
[[rules]]
protocol = "postgres"
tables = ["mirror_dead"]
mirror = "pgdead"
[[rules]]
protocol = "postgres"
tables = ["mirror_fwd"]
mirror = "pgforward"
[[rules]]
protocol = "mysql"
tables = ["mirror_t"]
mirror = "myshadow"
[[rules]]
protocol = "mysql"
tables = ["mirror_dead"]
mirror = "mydead"
)";
}

}  // namespace

TEST_CASE("mirror, PostgreSQL: reads compared on the replica, a paused replica mismatches, writes stay home") {
  Forwarder fwd(pg_replica_port());
  SluiceProcess s(config(fwd.port()), kDoorAdmin);
  Conn direct("host=127.0.0.1 port=" + std::to_string(pg_port()) + " user=postgres dbname=app sslmode=disable");
  Conn replica("host=127.0.0.1 port=" + std::to_string(pg_replica_port()) +
               " user=postgres dbname=app sslmode=disable");
  REQUIRE(direct.ok());
  REQUIRE(replica.ok());
  for (const char* t : {"mirror_t", "mirror_dead", "mirror_fwd"}) {
    REQUIRE(direct.exec(std::string("DROP TABLE IF EXISTS ") + t));
    REQUIRE(direct.exec(std::string("CREATE TABLE ") + t + " (id int primary key, v int)"));
    REQUIRE(direct.exec(std::string("INSERT INTO ") + t + " SELECT g, g FROM generate_series(1, 5) g"));
    REQUIRE(direct.exec(std::string("GRANT ALL ON ") + t + " TO app"));
  }
  REQUIRE(eventually([&] { return replica.scalar("SELECT count(*) FROM mirror_fwd") == "5"; }));
  Conn c(s.conninfo());
  REQUIRE(c.ok());
  for (int i = 0; i < 3; ++i) CHECK(c.scalar("SELECT sum(v) FROM mirror_t") == "15");
  CHECK(c.scalar("SELECT v FROM mirror_t WHERE id > 3 ORDER BY id") == "4");
  REQUIRE(eventually([&] { return total(s, "pgshadow", "matched") == 4; }, 15000));
  CHECK(mirrors(s)["pgshadow select sum(v) from mirror_t"]["sent"] == 3);
  CHECK(total(s, "pgshadow", "mismatched") == 0);
  // Writes are not copied (no mirror_writes).
  CHECK(c.exec("UPDATE mirror_t SET v = v WHERE id = 1"));
  // The replica stops replaying: a change on the primary makes the answers differ.
  REQUIRE(replica.exec("SELECT pg_wal_replay_pause()"));
  REQUIRE(direct.exec("UPDATE mirror_t SET v = v + 100 WHERE id = 1"));
  CHECK(c.scalar("SELECT sum(v) FROM mirror_t") == "115");
  REQUIRE(eventually([&] { return total(s, "pgshadow", "mismatched") == 1; }, 15000));
  REQUIRE(replica.exec("SELECT pg_wal_replay_resume()"));
  CHECK(total(s, "pgshadow", "sent") == 5);  // 4 + 1 reads; the UPDATE was not sent

  // A dead mirror: every answer as usual, the copies fail or are dropped (a queue of 4).
  for (int i = 0; i < 20; ++i) CHECK(c.scalar("SELECT count(*) FROM mirror_dead") == "5");
  REQUIRE(eventually([&] { return total(s, "pgdead", "failed") + total(s, "pgdead", "dropped") == 20; }, 15000));

  // A mirror that goes away mid-run.
  for (int i = 0; i < 3; ++i) CHECK(c.scalar("SELECT count(*) FROM mirror_fwd") == "5");
  REQUIRE(eventually([&] { return total(s, "pgforward", "matched") == 3; }, 15000));
  fwd.stop();
  for (int i = 0; i < 10; ++i) CHECK(c.scalar("SELECT count(*) FROM mirror_fwd") == "5");
  REQUIRE(eventually([&] { return total(s, "pgforward", "failed") + total(s, "pgforward", "dropped") == 10; }, 30000));
  CHECK(total(s, "pgforward", "matched") == 3);
}

TEST_CASE("mirror, MySQL: reads compared on the replica; a dead mirror fails its copies, the client sees nothing") {
  SluiceProcess s(config(1), kDoorAdmin);
  MyConn direct(my_port());
  MyConn replica(my_replica_port());
  REQUIRE(direct.ok);
  REQUIRE(replica.ok);
  for (const char* t : {"mirror_t", "mirror_dead"}) {
    CHECK(direct.scalar(std::string("DROP TABLE IF EXISTS ") + t) == "");
    CHECK(direct.scalar(std::string("CREATE TABLE ") + t + " (id int primary key, v int)") == "");
    CHECK(direct.scalar(std::string("INSERT INTO ") + t + " VALUES (1, 1), (2, 2), (3, 3)") == "");
  }
  REQUIRE(eventually([&] { return replica.scalar("SELECT count(*) FROM mirror_dead") == "3"; }));
  MyConn m(s.my_port());
  REQUIRE(m.ok);
  for (int i = 0; i < 3; ++i) CHECK(m.scalar("SELECT sum(v) FROM mirror_t") == "6");
  CHECK(m.scalar("SELECT id, v FROM mirror_t ORDER BY id") == "1");
  CHECK(m.scalar("UPDATE mirror_t SET v = v WHERE id = 1") == "");  // not copied
  bool matched = eventually([&] { return total(s, "myshadow", "matched") == 4; });
  REQUIRE(matched);
  CHECK(total(s, "myshadow", "sent") == 4);
  CHECK(total(s, "myshadow", "mismatched") == 0);
  for (int i = 0; i < 12; ++i) CHECK(m.scalar("SELECT count(*) FROM mirror_dead") == "3");
  REQUIRE(eventually([&] { return total(s, "mydead", "failed") + total(s, "mydead", "dropped") == 12; }, 15000));
}
