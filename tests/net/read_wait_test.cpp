// Reads that wait first (net/read_wait.hpp), over loopback TCP: after wait_first() the next read
// does not try the socket until it becomes readable again, and the next arrival wakes it.
#include "src/net/read_wait.hpp"
#include "tests/net/loopback_pair.hpp"

#include <doctest/doctest.h>

#include <boost/asio.hpp>

#include <array>
#include <optional>
#include <string>

namespace {

namespace asio = boost::asio;

struct Reader : sluice::testing::LoopbackPair {
  std::array<char, 64> buf{};
  std::optional<std::string> got;
  Reader() { server.non_blocking(true); }
  void start() {
    got.reset();
    server.async_read_some(asio::buffer(buf), [this](boost::system::error_code ec, std::size_t n) {
      got = ec ? std::string("error") : std::string(buf.data(), n);
    });
  }
  // Runs the io_context for about `ms` or until the read completed.
  void run(int ms) {
    io.restart();
    for (int i = 0; i < ms / 5 && !got; ++i) io.run_one_for(std::chrono::milliseconds(5));
  }
  void send(const char* s) { asio::write(client, asio::buffer(std::string(s))); }
};

// A read that went through the reactor (so the socket woke it), then bytes that arrive with no
// read waiting: the reactor saw them come, so Asio's next read tries first.
void leave_unread_bytes(Reader& r) {
  r.start();
  r.run(20);
  REQUIRE(!r.got);  // nothing to read yet: the read waits
  r.send("a");
  r.run(500);
  REQUIRE(r.got == std::string("a"));
  r.send("b");
  // The reactor takes the wake-up while no read waits (a timer keeps the io_context running).
  asio::steady_timer t(r.io, std::chrono::milliseconds(30));
  bool fired = false;
  t.async_wait([&](boost::system::error_code) { fired = true; });
  r.io.restart();
  while (!fired) r.io.run_one();
}

}  // namespace

TEST_CASE("read_wait: Asio's next read tries the socket at once") {
  Reader r;
  leave_unread_bytes(r);
  r.start();
  r.run(500);
  CHECK(r.got == std::string("b"));
}

TEST_CASE("read_wait: after wait_first the read waits for the next arrival, which it reads with the rest") {
  REQUIRE(sluice::net::kWaitFirstWorks);  // this build's reactor is the one it knows
  Reader r;
  leave_unread_bytes(r);
  sluice::net::wait_first(r.server);
  r.start();
  r.run(60);
  CHECK(!r.got);  // "b" is there, but the read waits for the socket to wake it
  r.send("c");
  r.run(500);
  CHECK(r.got == std::string("bc"));
}

TEST_CASE("read_wait: a peer that resets the connection wakes a read that waits first") {
  REQUIRE(sluice::net::kWaitFirstWorks);
  Reader r;
  leave_unread_bytes(r);
  sluice::net::wait_first(r.server);
  r.start();
  r.run(20);
  REQUIRE(!r.got);
  r.client.set_option(asio::socket_base::linger(true, 0));  // close with a reset
  r.client.close();
  r.run(500);
  CHECK(r.got.has_value());
}
