// Shared by the relay tests: a server connection with no socket behind it, and framed messages.
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <string_view>

#include "src/frontend/postgres/relay.hpp"

namespace sluice::test {

namespace wire = sluice::pg;

inline boost::asio::io_context& test_io() {
  static boost::asio::io_context io;
  return io;
}

// A server connection whose session parameters start at TimeZone = UTC.
inline std::unique_ptr<pool::ServerConn> make_server() {
  auto s = std::make_unique<pool::ServerConn>(boost::asio::ip::tcp::socket(test_io()));
  s->params.set("TimeZone", "UTC");
  s->initial = s->params;
  return s;
}

// One message: type byte, length, body.
inline std::string msg(char type, std::string_view body) {
  std::string out;
  wire::Builder(out).begin(type).raw(body).end();
  return out;
}

// Feeds every client message in `bytes` to the relay; what goes to the server lands in `server_out`.
inline void feed_client(frontend::pg::Relay& r, pool::ServerConn& s, const std::string& bytes, std::string& server_out) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    wire::Frame f;
    REQUIRE(wire::next_frame(wire::as_bytes(bytes).subspan(pos), 1 << 20, f) == wire::Decode::Ok);
    REQUIRE(r.client_message(f, s, server_out) == frontend::pg::Relay::Verdict::Ok);
    pos += f.size();
  }
}
inline void feed_client(frontend::pg::Relay& r, pool::ServerConn& s, const std::string& bytes) {
  std::string server_out;
  feed_client(r, s, bytes, server_out);
}

}  // namespace sluice::test
