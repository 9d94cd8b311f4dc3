// Sluice's own exchanges with a PostgreSQL server connection (state sync, resets, health checks,
// replication positions): whole messages read until the answers' ReadyForQuery, in one place.
#pragma once

#include <boost/asio.hpp>

#include <array>
#include <cstdint>
#include <vector>

#include "protocols/postgres/codec.hpp"
#include "src/net/tls.hpp"

namespace sluice::pool {

// Reads whole messages from `server`, handing each to `each` (false from it stops the read),
// until `readies` ReadyForQuery messages have come. False when the connection failed or sent
// something malformed (or larger than 1 MiB).
template <typename Each>
boost::asio::awaitable<bool> read_until_ready(net::Channel server, std::size_t readies, Each each) {
  std::vector<std::uint8_t> buf;
  std::array<std::uint8_t, 4096> chunk;
  boost::system::error_code ec;
  while (readies > 0) {
    std::size_t n = co_await server.read_some(boost::asio::buffer(chunk), ec);
    if (ec) co_return false;
    buf.insert(buf.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
    std::size_t pos = 0;
    while (readies > 0) {
      pg::Frame f;
      auto d = pg::next_frame(pg::Bytes(buf).subspan(pos), 1 << 20, f);
      if (d == pg::Decode::Malformed) co_return false;
      if (d == pg::Decode::NeedMore) break;
      pos += f.size();
      if (!each(f)) co_return false;
      if (f.type == pg::be::ReadyForQuery) --readies;
    }
    buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(pos));
  }
  co_return true;
}

}  // namespace sluice::pool
