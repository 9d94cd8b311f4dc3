// A descriptor wrapped again (net/socket_flags.hpp): non-blocking afterwards either way; when the
// caller knows it was non-blocking, no ioctl is made (its mode is not touched).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio.hpp>

#include "src/net/socket_flags.hpp"
#include "tests/net/loopback_pair.hpp"

namespace asio = boost::asio;
using namespace sluice;

namespace {
bool descriptor_non_blocking(int fd) { return (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }

// The server end of a loopback pair, released and wrapped on another io_context (a move between
// workers), its descriptor made blocking or not first.
struct Moved {
  testing::LoopbackPair pair;
  asio::io_context other{1};
  asio::ip::tcp::socket sock{other};
  explicit Moved(bool non_blocking) {
    boost::system::error_code ec;
    pair.server.non_blocking(non_blocking, ec);
    REQUIRE_FALSE(ec);
    int fd = pair.server.release(ec);
    REQUIRE_FALSE(ec);
    sock.assign(asio::ip::tcp::v4(), fd, ec);
    REQUIRE_FALSE(ec);
    CHECK_FALSE(sock.non_blocking());  // a new socket object knows nothing of the mode
  }
};

// set_non_blocking(m.sock, was): both Asio's flag and the descriptor's mode end up
// non-blocking, so a read with nothing sent says would_block.
void set_and_check_non_blocking(Moved& m, bool was) {
  boost::system::error_code ec;
  net::set_non_blocking(m.sock, was, ec);
  CHECK_FALSE(ec);
  CHECK(m.sock.non_blocking());
  CHECK(descriptor_non_blocking(m.sock.native_handle()));
  char buf[8];
  m.sock.read_some(asio::buffer(buf), ec);
  CHECK(ec == asio::error::would_block);
}
}  // namespace

TEST_CASE("socket flags: a descriptor known to be non-blocking gets Asio's flag alone, and reads do not block") {
  Moved m(true);
  set_and_check_non_blocking(m, true);
  boost::system::error_code ec;
  char buf[8];
  asio::write(m.pair.client, asio::buffer("abc", 3));
  for (int i = 0; i < 1000 && m.sock.available() < 3; ++i) ::usleep(1000);
  CHECK(m.sock.read_some(asio::buffer(buf), ec) == 3);
}

TEST_CASE("socket flags: a blocking descriptor is made non-blocking") {
  Moved m(false);
  REQUIRE_FALSE(descriptor_non_blocking(m.sock.native_handle()));
  set_and_check_non_blocking(m, false);
}

TEST_CASE("socket flags: 'known non-blocking' makes no system call (the descriptor's mode is left as it is)") {
  // The caller's word is taken: this is what saves the ioctl per move. (Callers pass what the
  // socket that held the descriptor said, so the mode is in fact non-blocking.)
  Moved m(false);
  boost::system::error_code ec;
  net::set_non_blocking(m.sock, true, ec);
  CHECK(m.sock.non_blocking());
  CHECK_FALSE(descriptor_non_blocking(m.sock.native_handle()));
  m.sock.non_blocking(false, ec);  // leave it consistent for the close
}
