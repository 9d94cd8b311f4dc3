// Server greetings by endpoint (see header).
#include "src/pool/mysql_greeting.hpp"

#include "src/pool/mysql_io.hpp"
#include "src/pool/server_conn.hpp"

namespace sluice::pool {

MysqlGreetings& MysqlGreetings::global() {
  static MysqlGreetings g;
  return g;
}

std::optional<MysqlGreeting> MysqlGreetings::find(const config::Endpoint& endpoint) const {
  std::lock_guard lock(mu_);
  auto it = by_endpoint_.find(endpoint.text());
  if (it == by_endpoint_.end()) return std::nullopt;
  return it->second;
}

void MysqlGreetings::remember(const config::Endpoint& endpoint, const my::Handshake& hs) {
  MysqlGreeting g{hs.server_version, hs.capabilities, hs.mariadb_capabilities, hs.charset};
  std::lock_guard lock(mu_);
  by_endpoint_[endpoint.text()] = std::move(g);
  failed_at_.erase(endpoint.text());
}

void MysqlGreetings::probe_failed(const config::Endpoint& endpoint) {
  std::lock_guard lock(mu_);
  if (failed_at_.size() < 1024) failed_at_[endpoint.text()] = std::chrono::steady_clock::now();
}

bool MysqlGreetings::probe_allowed(const config::Endpoint& endpoint) const {
  std::lock_guard lock(mu_);
  auto it = failed_at_.find(endpoint.text());
  return it == failed_at_.end() || std::chrono::steady_clock::now() - it->second > std::chrono::seconds(5);
}

boost::asio::awaitable<std::optional<MysqlGreeting>> mysql_greeting(boost::asio::any_io_executor ex,
                                                                    config::Endpoint endpoint,
                                                                    config::Duration timeout) {
  if (auto known = MysqlGreetings::global().find(endpoint)) co_return known;
  auto& greetings = MysqlGreetings::global();
  if (endpoint.host.empty() || !greetings.probe_allowed(endpoint)) co_return std::nullopt;
  tcp::socket sock(ex);
  Deadline deadline(sock, timeout);
  my::Handshake hs;
  std::string failure = co_await open_tcp(sock, endpoint, deadline);
  bool ok = failure.empty();
  if (ok) {
    MysqlIo io(sock, 64 * 1024);
    ok = co_await io.read();
    if (ok) ok = my::parse_handshake(io.bytes(), hs);
  }
  if (!ok) {
    greetings.probe_failed(endpoint);
    co_return std::nullopt;
  }
  boost::system::error_code ec;
  sock.close(ec);
  MysqlGreetings::global().remember(endpoint, hs);
  co_return MysqlGreetings::global().find(endpoint);
}

}  // namespace sluice::pool
