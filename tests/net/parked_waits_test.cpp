// The worker's epoll set for parked sockets (net/parked_waits.hpp), over loopback TCP.
#include "src/net/parked_waits.hpp"
#include "tests/net/loopback_pair.hpp"

#include <doctest/doctest.h>
#include <poll.h>

#include <boost/asio.hpp>

#include <memory>
#include <optional>
#include <string_view>

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using sluice::net::ParkedWaits;

// client: the peer; server: the socket parked (non-blocking, as a session's).
struct Pair : sluice::testing::LoopbackPair {
  tcp::socket& a = client;
  tcp::socket& b = server;
  Pair() { server.non_blocking(true); }
};

struct Probe final : ParkedWaits::Waiter {
  std::optional<boost::system::error_code>* got;
  int* alive;
  Probe(std::optional<boost::system::error_code>* g, int* live) : got(g), alive(live) { ++*alive; }
  ~Probe() override { --*alive; }
  void fire(boost::system::error_code ec) override { *got = ec; }
  bool farewell(const unsigned char* b, std::size_t n) const override {
    return n == 3 && std::string_view(reinterpret_cast<const char*>(b), n) == "bye";
  }
};

void run_until(Pair& p, const std::optional<boost::system::error_code>& got) {
  p.io.restart();
  for (int i = 0; i < 100 && !got; ++i) p.io.run_one_for(std::chrono::milliseconds(20));
}

}  // namespace

TEST_CASE("ParkedWaits: a parked socket fires when bytes come, and is back in Asio's hands") {
  Pair p;
  auto& waits = ParkedWaits::of(p.io.get_executor());
  std::optional<boost::system::error_code> got;
  int alive = 0;
  std::unique_ptr<ParkedWaits::Waiter> w = std::make_unique<Probe>(&got, &alive);
  REQUIRE(waits.park(p.b, w) != nullptr);
  CHECK(!w);  // taken
  CHECK(!p.b.is_open());
  CHECK(waits.parked() == 1);
  p.io.poll();
  CHECK(!got);  // nothing to read yet
  asio::write(p.a, asio::buffer(std::string("hello")));
  for (int i = 0; i < 100 && !got; ++i) p.io.run_one_for(std::chrono::milliseconds(20));
  REQUIRE(got);
  CHECK(!*got);
  CHECK(alive == 0);  // the waiter went after firing
  CHECK(waits.parked() == 0);
  REQUIRE(p.b.is_open());
  CHECK(p.b.non_blocking());
  char buf[16];
  boost::system::error_code ec;
  std::size_t n = p.b.read_some(asio::buffer(buf), ec);
  CHECK(!ec);
  CHECK(std::string(buf, n) == "hello");
}

TEST_CASE("ParkedWaits: unpark gives the socket back at once and posts operation_aborted") {
  Pair p;
  auto& waits = ParkedWaits::of(p.io.get_executor());
  std::optional<boost::system::error_code> got;
  int alive = 0;
  std::unique_ptr<ParkedWaits::Waiter> w = std::make_unique<Probe>(&got, &alive);
  auto* h = waits.park(p.b, w);
  REQUIRE(h);
  waits.unpark(h);
  CHECK(p.b.is_open());  // at once
  CHECK(!got);           // the end comes as a posted handler, never inside unpark()
  waits.unpark(h);       // a second unpark before it fires: nothing
  p.io.poll();
  REQUIRE(got);
  CHECK(*got == asio::error::operation_aborted);
  CHECK(alive == 0);
  // The socket works as before: a write and a read.
  asio::write(p.b, asio::buffer(std::string("x")));
  char c = 0;
  asio::read(p.a, asio::buffer(&c, 1));
  CHECK(c == 'x');
}

TEST_CASE("ParkedWaits: waiters still parked when the io_context goes are destroyed, never fired") {
  std::optional<boost::system::error_code> got;
  int alive = 0;
  {
    Pair p;
    auto& waits = ParkedWaits::of(p.io.get_executor());
    for (int i = 0; i < 3; ++i) {
      std::unique_ptr<ParkedWaits::Waiter> w = std::make_unique<Probe>(&got, &alive);
      if (i == 0) REQUIRE(waits.park(p.b, w));
    }
    CHECK(alive == 1);
  }
  CHECK(alive == 0);
  CHECK(!got);
}

TEST_CASE("ParkedWaits: a client that leaves while parked is closed there, never back in the reactor") {
  int alive = 0;
  {
    Pair p;  // doctest runs this once per subcase
    std::optional<boost::system::error_code> got;
    std::unique_ptr<ParkedWaits::Waiter> w = std::make_unique<Probe>(&got, &alive);
    REQUIRE(ParkedWaits::of(p.io.get_executor()).park(p.b, w));
    SUBCASE("its end of the connection") {
      p.a.close();
      run_until(p, got);
      REQUIRE(got);
      CHECK(*got == asio::error::eof);
      CHECK(!p.b.is_open());
    }
    SUBCASE("a farewell and nothing more") {
      asio::write(p.a, asio::buffer(std::string("bye")));
      run_until(p, got);
      REQUIRE(got);
      CHECK(*got == asio::error::eof);
      CHECK(!p.b.is_open());
      char c;
      boost::system::error_code ec;
      pollfd pf{p.a.native_handle(), POLLIN, 0};
      REQUIRE(::poll(&pf, 1, 2000) == 1);                  // bounded: a socket left open fails here
      CHECK(p.a.read_some(asio::buffer(&c, 1), ec) == 0);  // closed by the parked side
      CHECK(ec == asio::error::eof);
    }
    SUBCASE("a farewell followed by more bytes is a request like any other") {
      asio::write(p.a, asio::buffer(std::string("bye, and more")));
      run_until(p, got);
      REQUIRE(got);
      CHECK(!*got);
      CHECK(p.b.is_open());
    }
  }
  CHECK(alive == 0);
}
