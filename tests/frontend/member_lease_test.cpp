// The shared lease with replica fallback and token verification (frontend/common/member_lease),
// driven with a fake cluster and fake pools: what both protocols' sessions do when a replica is
// unreachable, busy, or behind the client's last write.
#include <doctest/doctest.h>

#include <boost/asio.hpp>

#include <deque>
#include <map>
#include <vector>

#include "src/frontend/common/member_lease.hpp"

using namespace sluice;
namespace asio = boost::asio;

namespace {

// Member 0 is the primary. Each lease takes the next scripted outcome of that member
// ("ok", "timeout", "down"); positions are scripted per call.
struct FakeCluster final : frontend::LeaseHooks {
  asio::io_context& io;
  std::map<int, std::deque<std::string>> outcomes;
  std::deque<std::optional<router::Position>> positions;
  std::vector<std::string> log;  // what was asked, in order
  int primary = 0;

  explicit FakeCluster(asio::io_context& i) : io(i) {}
  asio::awaitable<pool::LeaseResult> lease(int member) override {
    log.push_back("lease " + std::to_string(member));
    pool::LeaseResult r;
    auto& q = outcomes[member];
    std::string o = q.empty() ? "ok" : q.front();
    if (!q.empty()) q.pop_front();
    if (o == "ok") {
      r.conn = std::make_shared<pool::ServerConn>(asio::ip::tcp::socket(io));
      r.conn->id = static_cast<std::uint64_t>(member);
    } else if (o == "timeout") {
      r.timed_out = true;
    } else {
      auto e = std::make_shared<pool::ConnectError>();
      e->fields.message = "connection refused";
      r.error = e;
    }
    co_return r;
  }
  void release(int member, std::shared_ptr<pool::ServerConn>, bool reusable) override {
    log.push_back("release " + std::to_string(member) + (reusable ? " reusable" : " closed"));
  }
  void report_failure(int member) override { log.push_back("down " + std::to_string(member)); }
  int pick_write() override { return primary; }
  asio::awaitable<std::optional<router::Position>> position(pool::ServerConn& conn) override {
    log.push_back("position " + std::to_string(conn.id));
    auto p = positions.empty() ? std::nullopt : positions.front();
    if (!positions.empty()) positions.pop_front();
    co_return p;
  }
  void note_position(int member, const router::Position& p) override {
    log.push_back("note " + std::to_string(member) + " " + std::to_string(p.parts.at(0).second));
  }
};

router::Position at(std::uint64_t lsn) { return router::Position{{{0u, lsn}}}; }

struct Run {
  pool::LeaseResult result;
  frontend::LeaseRoute route;
  std::chrono::steady_clock::time_point verify_failed_at{};
};

Run run(FakeCluster& fake, frontend::LeaseRoute route, const router::Position& token, bool fast_path_conn = false) {
  Run out;
  out.route = route;
  std::shared_ptr<pool::ServerConn> conn;
  if (fast_path_conn) {
    conn = std::make_shared<pool::ServerConn>(asio::ip::tcp::socket(fake.io));
    conn->id = static_cast<std::uint64_t>(route.member);
  }
  asio::co_spawn(
      fake.io,
      [&]() -> asio::awaitable<void> {
        out.result = co_await frontend::lease_on_route(conn, out.route, token, fake, out.verify_failed_at);
      },
      asio::detached);
  fake.io.run();
  fake.io.restart();
  return out;
}

}  // namespace

TEST_CASE("a replica that cannot be reached is reported and the read goes to the primary") {
  asio::io_context io;
  FakeCluster fake(io);
  fake.outcomes[2] = {"down"};
  auto r = run(fake, {2, true, false}, {});
  REQUIRE(r.result.conn);
  CHECK(r.result.conn->id == 0);
  CHECK(r.route.member == 0);
  CHECK_FALSE(r.route.replica);
  CHECK(fake.log == std::vector<std::string>{"lease 2", "down 2", "lease 0"});
}

TEST_CASE("a busy replica (query_wait_timeout) is not reported: the read waits on it once more") {
  asio::io_context io;
  FakeCluster fake(io);
  fake.outcomes[1] = {"timeout", "ok"};
  auto r = run(fake, {1, true, false}, {});
  REQUIRE(r.result.conn);
  CHECK(r.route.member == 1);
  CHECK(r.route.replica);
  CHECK(fake.log == std::vector<std::string>{"lease 1", "lease 1"});
}

TEST_CASE("a primary that cannot be reached: the failure goes back to the session to report") {
  asio::io_context io;
  FakeCluster fake(io);
  fake.outcomes[0] = {"down"};
  auto r = run(fake, {0, false, false}, {});
  CHECK_FALSE(r.result.conn);
  REQUIRE(r.result.error);
  CHECK(r.result.error->fields.message == "connection refused");
  CHECK(fake.log == std::vector<std::string>{"lease 0"});
}

TEST_CASE("token verification: a replica that has the client's write keeps the read") {
  asio::io_context io;
  FakeCluster fake(io);
  fake.positions = {at(200)};
  auto r = run(fake, {1, true, true}, at(150), /*fast_path_conn=*/true);
  REQUIRE(r.result.conn);
  CHECK(r.result.conn->id == 1);
  CHECK(r.route.replica);
  CHECK_FALSE(r.route.verify);
  CHECK(r.verify_failed_at == std::chrono::steady_clock::time_point{});
  CHECK(fake.log == std::vector<std::string>{"position 1", "note 1 200"});
}

TEST_CASE(
    "token verification: a replica behind the client's write gives the connection back; the read goes to the "
    "primary") {
  asio::io_context io;
  FakeCluster fake(io);
  fake.positions = {at(100)};
  auto r = run(fake, {1, true, true}, at(150));
  REQUIRE(r.result.conn);
  CHECK(r.result.conn->id == 0);
  CHECK(r.route.member == 0);
  CHECK_FALSE(r.route.replica);
  CHECK(r.verify_failed_at != std::chrono::steady_clock::time_point{});
  CHECK(fake.log == std::vector<std::string>{"lease 1", "position 1", "note 1 100", "release 1 reusable", "lease 0"});
}

TEST_CASE("token verification: a replica that cannot say its position is closed, not pooled again") {
  asio::io_context io;
  FakeCluster fake(io);
  fake.positions = {std::nullopt};
  fake.outcomes[0] = {"timeout"};
  auto r = run(fake, {1, true, true}, at(150), /*fast_path_conn=*/true);
  CHECK_FALSE(r.result.conn);
  CHECK(r.result.timed_out);
  CHECK(r.route.member == 0);
  CHECK(fake.log == std::vector<std::string>{"position 1", "release 1 closed", "lease 0"});
}
