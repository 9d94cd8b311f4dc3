// net::RedisClient against a scripted server on loopback: pipelined replies matched in order,
// AUTH, and failing fast: a server that does not answer, one that answers garbage, one that is
// gone. After a failure, commands fail at once until the retry time.
#include <doctest/doctest.h>

#include <boost/asio.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "src/net/redis_client.hpp"

namespace asio = boost::asio;
using sluice::net::RedisClient;
using sluice::net::RedisOptions;
using sluice::resp::Reply;

namespace {

// Commands as arrays: GCC 12 cannot compile a braced list inside a co_await.
const std::array<std::string_view, 2> kGetK{"GET", "k"};
const std::array<std::string_view, 2> kGetX{"GET", "x"};

// Accepts one connection and answers each chunk it reads with `answer(bytes read so far)`.
struct Server {
  asio::ip::tcp::acceptor acceptor;
  std::string received;
  std::function<std::string(const std::string&)> answer;
  explicit Server(asio::io_context& io) : acceptor(io, {asio::ip::make_address("127.0.0.1"), 0}) {}
  std::uint16_t port() const { return acceptor.local_endpoint().port(); }
  asio::awaitable<void> run() {
    auto sock = co_await acceptor.async_accept(asio::use_awaitable);
    char buf[4096];
    for (;;) {
      boost::system::error_code ec;
      auto n = co_await sock.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      received.append(buf, n);
      std::string out = answer(received);
      if (!out.empty()) co_await asio::async_write(sock, asio::buffer(out), asio::use_awaitable);
    }
  }
};

// Commands answered so far: one reply per complete command (counted by "*" headers, which is
// enough for these tests' arguments).
std::size_t commands_in(const std::string& s) {
  std::size_t n = 0;
  for (std::size_t at = s.find("\r\n*"); at != std::string::npos; at = s.find("\r\n*", at + 1)) ++n;
  return s.empty() ? 0 : n + 1;
}

template <typename F>
void run_for(asio::io_context& io, F&& body, std::chrono::milliseconds limit = std::chrono::milliseconds(3000)) {
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await body();
        done = true;
      },
      asio::detached);
  auto until = std::chrono::steady_clock::now() + limit;
  while (!done && std::chrono::steady_clock::now() < until) {
    io.restart();  // run out of work earlier
    io.run_for(std::chrono::milliseconds(10));
  }
  REQUIRE(done);
}

}  // namespace

TEST_CASE("redis client: pipelined commands get their own replies, in order; AUTH first") {
  asio::io_context io;
  Server srv(io);
  std::size_t answered = 0;
  srv.answer = [&](const std::string& got) {
    std::string out;
    for (std::size_t n = commands_in(got); answered < n; ++answered)
      out += answered == 0
                 ? "+OK\r\n"
                 : "$" + std::to_string(std::to_string(answered).size()) + "\r\n" + std::to_string(answered) + "\r\n";
    return out;
  };
  asio::co_spawn(io, srv.run(), asio::detached);
  RedisOptions o;
  o.port = srv.port();
  o.password = "secret";
  o.timeout = std::chrono::milliseconds(500);
  auto c = std::make_shared<RedisClient>(io.get_executor(), o);
  std::vector<std::string> got(3);
  int finished = 0;
  for (int i = 0; i < 3; ++i)
    asio::co_spawn(
        io,
        [&, i]() -> asio::awaitable<void> {
          auto key = "k" + std::to_string(i);
          const std::array<std::string_view, 2> get{"GET", key};
          auto r = co_await c->command(get);
          got[i] = r ? r->text : "(failed)";
          ++finished;
        },
        asio::detached);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (finished < 3 && std::chrono::steady_clock::now() < until) io.run_for(std::chrono::milliseconds(10));
  REQUIRE(finished == 3);
  // The first command connected (and sent AUTH); the other two waited for it... or failed at once
  // while it was connecting. Whichever: what got an answer got its own.
  CHECK(srv.received.rfind("*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n", 0) == 0);
  int answered_ok = 0;
  for (auto& g : got)
    if (g != "(failed)") ++answered_ok;
  CHECK(answered_ok >= 1);
  CHECK(c->up());
  // Now connected: three at once are pipelined and matched in order.
  std::vector<std::string> more;
  run_for(io, [&]() -> asio::awaitable<void> {
    for (int i = 0; i < 3; ++i) {
      auto r = co_await c->command(kGetX);
      more.push_back(r ? r->text : "(failed)");
    }
  });
  REQUIRE(more.size() == 3);
  CHECK(std::stoi(more[0]) + 1 == std::stoi(more[1]));
  CHECK(std::stoi(more[1]) + 1 == std::stoi(more[2]));
}

TEST_CASE("redis client: a server that does not answer costs one timeout, then commands fail at once") {
  asio::io_context io;
  Server srv(io);
  srv.answer = [](const std::string&) { return std::string(); };
  asio::co_spawn(io, srv.run(), asio::detached);
  RedisOptions o;
  o.port = srv.port();
  o.timeout = std::chrono::milliseconds(50);
  auto c = std::make_shared<RedisClient>(io.get_executor(), o);
  std::chrono::steady_clock::duration first{};
  bool failed1 = false, failed2 = false;
  std::string why2;
  run_for(io, [&]() -> asio::awaitable<void> {
    auto t0 = std::chrono::steady_clock::now();
    failed1 = !(co_await c->command(kGetK));
    first = std::chrono::steady_clock::now() - t0;
    failed2 = !(co_await c->command(kGetK, &why2));
  });
  CHECK(failed1);
  CHECK(failed2);
  CHECK(first >= std::chrono::milliseconds(45));  // it waited its timeout
  // Down: not tried again before its back-off (no connect, no timeout), it says why.
  CHECK(why2.rfind("down: no reply within 50 ms", 0) == 0);
  CHECK_FALSE(c->up());
  CHECK(c->last_error().find("no reply within 50 ms") != std::string::npos);
}

TEST_CASE("redis client: a malformed reply, and a server that is not there") {
  asio::io_context io;
  Server srv(io);
  srv.answer = [](const std::string&) { return std::string("?what\r\n"); };
  asio::co_spawn(io, srv.run(), asio::detached);
  RedisOptions o;
  o.port = srv.port();
  auto c = std::make_shared<RedisClient>(io.get_executor(), o);
  bool failed = false;
  run_for(io, [&]() -> asio::awaitable<void> { failed = !(co_await c->command(kGetK)); });
  CHECK(failed);
  CHECK(c->last_error().find("a malformed reply") != std::string::npos);

  asio::ip::tcp::acceptor closed(io, {asio::ip::make_address("127.0.0.1"), 0});
  o.port = closed.local_endpoint().port();
  closed.close();
  auto gone = std::make_shared<RedisClient>(io.get_executor(), o);
  std::string why;
  failed = false;
  run_for(io, [&]() -> asio::awaitable<void> { failed = !(co_await gone->command(kGetK, &why)); });
  CHECK(failed);
  CHECK(why.find("cannot connect") != std::string::npos);
}
