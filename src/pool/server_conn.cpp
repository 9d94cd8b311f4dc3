// Server connections: parameters, prepared-statement bookkeeping, liveness, and opening one
// (TCP, then the PostgreSQL login: pg_login.hpp, driven by login_driver.hpp).
#include "src/pool/server_conn.hpp"

#include <unistd.h>

#include <atomic>

#include <fmt/format.h>
#include <sys/socket.h>

#include "src/pool/login_driver.hpp"
#include "src/pool/pg_login.hpp"
#include "src/net/connect.hpp"
#include "src/net/fast_reads.hpp"
#include "src/net/socket_flags.hpp"
#include "src/observe/log.hpp"

namespace sluice::pool {

const std::string* Params::find(std::string_view name) const {
  for (auto& [k, v] : items)
    if (k == name) return &v;
  return nullptr;
}
std::uint64_t Params::pair_hash(std::string_view name, std::string_view value) {
  std::uint64_t h = std::hash<std::string_view>{}(name) * 0x9E3779B97F4A7C15ull;
  h ^= std::hash<std::string_view>{}(value) + 0x632BE59BD9B4E019ull + (h << 6) + (h >> 2);
  return h * 0xBF58476D1CE4E5B9ull;
}
void Params::set(std::string_view name, std::string_view value) {
  for (auto& [k, v] : items)
    if (k == name) {
      if (v == value) return;
      fingerprint ^= pair_hash(k, v);
      v = value;
      fingerprint ^= pair_hash(k, v);
      return;
    }
  items.emplace_back(std::string(name), std::string(value));
  fingerprint ^= pair_hash(name, value);
}
void Params::erase(std::string_view name) {
  erase_if([&](auto& kv) { return kv.first == name; });
}

std::uint64_t prepare_sequence() {
  static std::atomic<std::uint64_t> seq{1};
  return seq.fetch_add(1, std::memory_order_relaxed);
}

void PreparedSet::touch(std::uint64_t id) {
  auto it = index_.find(id);
  if (it != index_.end()) order_.splice(order_.begin(), order_, it->second.pos);
}
std::uint64_t PreparedSet::insert(std::uint64_t id) {
  if (auto it = index_.find(id); it != index_.end()) {
    it->second.seq = prepare_sequence();
    touch(id);
    return 0;
  }
  std::uint64_t evicted = 0;
  if (index_.size() >= capacity_ && !order_.empty()) {
    evicted = order_.back();
    index_.erase(evicted);
    order_.pop_back();
  }
  order_.push_front(id);
  index_[id] = Slot{order_.begin(), prepare_sequence()};
  return evicted;
}
void PreparedSet::erase(std::uint64_t id) {
  auto it = index_.find(id);
  if (it == index_.end()) return;
  order_.erase(it->second.pos);
  index_.erase(it);
}
void PreparedSet::clear() {
  order_.clear();
  index_.clear();
}

bool ServerConn::rebind(const asio::any_io_executor& ex) {
  if (home == home_of(ex)) return false;
  const bool non_blocking = sock.non_blocking();
  int fd = sock.release();
  sock = tcp::socket(ex, protocol, fd);
  home = home_of(ex);
  boost::system::error_code ec;
  net::set_non_blocking(sock, non_blocking, ec);  // no ioctl: the descriptor is non-blocking already
  return true;
}

bool ServerConn::reregister() {
  auto ex = sock.get_executor();
  boost::system::error_code ec;
  int fd = sock.release(ec);
  if (ec) return false;
  sock = tcp::socket(ex);
  sock.assign(protocol, fd, ec);  // no exception: a failed registration is a failed connect
  if (ec) {
    ::close(fd);
    return false;
  }
  sock.non_blocking(true, ec);
  return !ec;
}

bool ServerConn::idle_alive() {
  if (!sock.is_open()) return false;
  // Over TLS the server's bytes may already sit in OpenSSL's read-ahead buffer.
  if (tls && SSL_has_pending(tls->native_handle())) return false;
  char c;
  ssize_t n = ::recv(sock.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;  // an idle server must not speak: likely a FATAL before closing
  if (n == 0) return false;  // EOF
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

void ServerConn::close_quietly() {
  if (!sock.is_open()) return;
  static const char terminate[5] = {'X', 0, 0, 0, 4};
  static const char com_quit[5] = {1, 0, 0, 0, 1};
  boost::system::error_code ec;
  std::string_view bye = proto == config::Protocol::Mysql ? std::string_view(com_quit, 5) : std::string_view(terminate, 5);
  if (tls) {
    if (!tls->write_pending()) tls->write_now(asio::buffer(bye), ec);
    tls->shutdown_quietly();
  } else {
    ::send(sock.native_handle(), bye.data(), bye.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  net::close_socket(sock, ec);
}

Deadline::Deadline(tcp::socket& sock, config::Duration d)
    : timer_(sock.get_executor(), d), expired_(std::make_shared<bool>(false)), done_(std::make_shared<bool>(false)) {
  timer_.async_wait([&sock, expired = expired_, done = done_](boost::system::error_code ec) {
    if (ec || *done) return;
    *expired = true;
    boost::system::error_code ignored;
    net::close_socket(sock, ignored);
  });
}

Deadline::~Deadline() {
  *done_ = true;
  timer_.cancel();
}

asio::awaitable<std::string> open_tcp(tcp::socket& sock, const config::Endpoint& endpoint, const Deadline& deadline) {
  using asio::use_awaitable;
  boost::system::error_code ec;
  std::string failed = co_await net::connect_stream(sock, endpoint);
  if (deadline.expired()) co_return std::string("timed out");
  if (!failed.empty()) co_return failed;
  if (endpoint.unix_socket()) co_return std::string();  // no TCP options there
  sock.set_option(tcp::no_delay(true), ec);
  sock.set_option(asio::socket_base::keep_alive(true), ec);
  co_return std::string();
}

asio::awaitable<std::string> start_tls(ServerConn& conn, ServerTls tls, config::Endpoint endpoint) {
  conn.tls = std::make_unique<net::TlsStream>(conn.sock, tls.ctx, net::TlsStream::Role::Client, endpoint.host,
                                              tls.verify_host());
  boost::system::error_code ec;
  co_await conn.tls->handshake(ec);
  if (!ec) co_return std::string();
  auto detail = conn.tls->verify_error();
  co_return detail.empty() ? ec.message() : fmt::format("{}: {}", ec.message(), detail);
}

namespace {
asio::awaitable<ConnectResult> connect_server_once(asio::any_io_executor ex, config::Endpoint endpoint,
                                                   std::shared_ptr<const Credentials> creds, std::string database,
                                                   config::Duration timeout, std::size_t max_prepared, ServerTls tls,
                                                   bool replication);
}  // namespace

asio::awaitable<ConnectResult> connect_server(asio::any_io_executor ex, config::Endpoint endpoint,
                                              std::shared_ptr<const Credentials> creds, std::string database,
                                              config::Duration timeout, std::size_t max_prepared, ServerTls tls,
                                              bool replication) {
  auto r = co_await connect_server_once(ex, endpoint, creds, database, timeout, max_prepared, tls, replication);
  if (r.conn || !r.tls_handshake_failed || tls.mode != config::ServerTlsMode::Prefer) co_return r;
  log::info("{}; server_tls = \"prefer\": connecting again without TLS", r.error.fields.message);
  const ServerTls plain{};
  co_return co_await connect_server_once(ex, endpoint, creds, database, timeout, max_prepared, plain, replication);
}

namespace {
asio::awaitable<ConnectResult> connect_server_once(asio::any_io_executor ex, config::Endpoint endpoint,
                                                   std::shared_ptr<const Credentials> creds, std::string database,
                                                   config::Duration timeout, std::size_t max_prepared, ServerTls tls,
                                                   bool replication) {
  auto conn = std::make_shared<ServerConn>(tcp::socket(ex));
  tcp::socket& sock = conn->sock;
  Deadline deadline(sock, timeout);
  auto where = fmt::format("server {} (user \"{}\", database \"{}\")", endpoint.text(), creds->user, database);
  std::string err = co_await open_tcp(sock, endpoint, deadline);
  if (!err.empty()) co_return pg_local_error(fmt::format("cannot connect to {}: {}", where, err));
  conn->endpoint = endpoint;
  conn->protocol = sock.local_endpoint().protocol();
  conn->prepared.set_capacity(max_prepared);
  PgLogin login(creds, database, tls, where);
  login.replication = replication;
  ConnTransport transport(*conn, deadline, tls, endpoint);
  if (auto failed = co_await drive_login(login, transport)) co_return std::move(*failed);
  conn->params = login.params;
  conn->backend_pid = login.backend_pid;
  conn->backend_key = login.backend_key;
  conn->initial = conn->params;
  boost::system::error_code ec;
  sock.non_blocking(true, ec);  // the relay writes with write_some and must never block
  ConnectResult res;
  res.conn = std::move(conn);
  co_return res;
}
}  // namespace

}  // namespace sluice::pool
