// Shared by the relay tests: a server connection with no socket behind it, and framed messages.
#pragma once

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

}  // namespace sluice::test
