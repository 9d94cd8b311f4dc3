// What each MySQL / MariaDB server announces in its greeting (HandshakeV10): version string,
// capabilities, MariaDB's extended capabilities and default collation. Sluice greets its own
// clients with the primary's values, so drivers that branch on the server (MariaDB vs MySQL,
// version checks, extended column metadata) see the server they would see directly, from the
// very first client: an endpoint not yet known is probed (connect, read the greeting, close).
#pragma once

#include <boost/asio.hpp>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "protocols/mysql/codec.hpp"
#include "src/config/config.hpp"

namespace sluice::pool {

struct MysqlGreeting {
  std::string version;
  std::uint32_t capabilities = 0;
  std::uint32_t mariadb_capabilities = 0;
  std::uint8_t charset = 0;
};

// Process-wide, keyed by endpoint (bounded by the configured servers); updated by every login.
class MysqlGreetings {
 public:
  static MysqlGreetings& global();
  std::optional<MysqlGreeting> find(const config::Endpoint& endpoint) const;
  void remember(const config::Endpoint& endpoint, const my::Handshake& hs);
  // A probe that failed: the next ones wait a few seconds (logins meanwhile get the default
  // greeting at once instead of each trying an unreachable server first).
  void probe_failed(const config::Endpoint& endpoint);
  bool probe_allowed(const config::Endpoint& endpoint) const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, MysqlGreeting> by_endpoint_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> failed_at_;
};

// The endpoint's greeting, probing it when unknown (bounded by `timeout`); nullopt when the
// server cannot be reached.
boost::asio::awaitable<std::optional<MysqlGreeting>> mysql_greeting(boost::asio::any_io_executor ex,
                                                                    config::Endpoint endpoint,
                                                                    config::Duration timeout);

}  // namespace sluice::pool
