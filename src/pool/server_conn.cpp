// Server connection start-up and authentication (docs 55.2.1 "Start-up", 55.3 "SASL").
#include "src/pool/server_conn.hpp"

#include <atomic>

#include <fmt/format.h>
#include <sys/socket.h>

#include "protocols/common/crypto.hpp"
#include "protocols/postgres/scram.hpp"
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

void ServerConn::rebind(const asio::any_io_executor& ex) {
  if (sock.get_executor() == ex) return;
  int fd = sock.release();
  sock = tcp::socket(ex, protocol, fd);
  boost::system::error_code ec;
  sock.non_blocking(true, ec);
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
  sock.close(ec);
}

Deadline::Deadline(tcp::socket& sock, config::Duration d)
    : timer_(sock.get_executor(), d), expired_(std::make_shared<bool>(false)), done_(std::make_shared<bool>(false)) {
  timer_.async_wait([&sock, expired = expired_, done = done_](boost::system::error_code ec) {
    if (ec || *done) return;
    *expired = true;
    boost::system::error_code ignored;
    sock.close(ignored);
  });
}

Deadline::~Deadline() {
  *done_ = true;
  timer_.cancel();
}

asio::awaitable<std::string> open_tcp(tcp::socket& sock, const config::Endpoint& endpoint, const Deadline& deadline) {
  using asio::use_awaitable;
  boost::system::error_code ec;
  tcp::resolver resolver(sock.get_executor());
  auto results = co_await resolver.async_resolve(endpoint.host, std::to_string(endpoint.port),
                                                 asio::redirect_error(use_awaitable, ec));
  if (ec) co_return "cannot resolve: " + ec.message();
  co_await asio::async_connect(sock, results, asio::redirect_error(use_awaitable, ec));
  if (ec || deadline.expired()) co_return deadline.expired() ? std::string("timed out") : ec.message();
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

ConnectResult local_error(std::string message, std::string code = "08006") {
  ConnectResult r;
  r.error.fields.severity = "FATAL";
  r.error.fields.code = std::move(code);
  r.error.fields.message = std::move(message);
  return r;
}

}  // namespace

namespace {
asio::awaitable<ConnectResult> connect_server_once(asio::any_io_executor ex, config::Endpoint endpoint,
                                                   std::shared_ptr<const Credentials> creds, std::string database,
                                                   config::Duration timeout, std::size_t max_prepared, ServerTls tls);
}  // namespace

asio::awaitable<ConnectResult> connect_server(asio::any_io_executor ex, config::Endpoint endpoint,
                                              std::shared_ptr<const Credentials> creds,
                                              std::string database, config::Duration timeout,
                                              std::size_t max_prepared, ServerTls tls) {
  auto r = co_await connect_server_once(ex, endpoint, creds, database, timeout, max_prepared, tls);
  if (r.conn || !r.tls_handshake_failed || tls.mode != config::ServerTlsMode::Prefer) co_return r;
  log::info("{}; server_tls = \"prefer\": connecting again without TLS", r.error.fields.message);
  co_return co_await connect_server_once(ex, endpoint, creds, database, timeout, max_prepared, ServerTls{});
}

namespace {
asio::awaitable<ConnectResult> connect_server_once(asio::any_io_executor ex, config::Endpoint endpoint,
                                                   std::shared_ptr<const Credentials> creds, std::string database,
                                                   config::Duration timeout, std::size_t max_prepared, ServerTls tls) {
  using asio::use_awaitable;
  using boost::system::error_code;
  auto conn = std::make_shared<ServerConn>(tcp::socket(ex));
  tcp::socket& sock = conn->sock;
  Deadline deadline(sock, timeout);
  auto where = fmt::format("server {} (user \"{}\", database \"{}\")", endpoint.text(), creds->user, database);
  error_code ec;
  std::string err = co_await open_tcp(sock, endpoint, deadline);
  if (!err.empty())
    co_return local_error(fmt::format("cannot connect to {}: {}", where, err));

  if (tls.on()) {  // SSLRequest; 'S' = TLS handshake next, 'N' = the server has no TLS
    std::string req;
    pg::ssl_request(req);
    co_await asio::async_write(sock, asio::buffer(req), asio::redirect_error(use_awaitable, ec));
    char answer = 0;
    if (!ec) co_await asio::async_read(sock, asio::buffer(&answer, 1), asio::redirect_error(use_awaitable, ec));
    if (ec || deadline.expired())
      co_return local_error(fmt::format("{} closed the connection after SSLRequest: {}", where,
                                        deadline.expired() ? "timed out" : ec.message()));
    if (answer == 'S') {
      err = co_await start_tls(*conn, tls, endpoint);
      if (!err.empty()) {
        auto r = local_error(fmt::format("TLS with {} failed: {}", where, err));
        r.tls_handshake_failed = true;
        co_return r;
      }
    } else if (answer != 'N') {
      co_return local_error(fmt::format("{} answered SSLRequest with an unexpected byte", where), "08P01");
    } else if (tls.required()) {
      co_return local_error(fmt::format("{} does not accept TLS, and server_tls = \"{}\" requires it", where,
                                        config::to_string(tls.mode)));
    }
  }
  auto io = conn->channel();

  std::string out;
  pg::startup_message(out, {{"user", creds->user}, {"database", database}});
  co_await io.write(asio::buffer(out), ec);
  if (ec) co_return local_error(fmt::format("cannot write to {}: {}", where, ec.message()));

  conn->endpoint = endpoint;
  conn->protocol = sock.local_endpoint().protocol();
  conn->prepared.set_capacity(max_prepared);
  std::optional<pg::ScramClient> scram;
  std::vector<std::uint8_t> in;
  in.reserve(4096);
  std::array<std::uint8_t, 4096> chunk;
  for (;;) {
    std::size_t n = co_await io.read_some(asio::buffer(chunk), ec);
    if (ec || deadline.expired())
      co_return local_error(fmt::format("{} closed the connection during login: {}", where,
                                        deadline.expired() ? "timed out" : ec.message()));
    in.insert(in.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
    std::size_t pos = 0;
    for (;;) {
      pg::Frame f;
      auto d = pg::next_frame(pg::Bytes(in).subspan(pos), 1 << 20, f);
      if (d == pg::Decode::NeedMore) break;
      if (d == pg::Decode::Malformed) co_return local_error(fmt::format("{} sent a malformed message during login", where), "08P01");
      pos += f.size();
      out.clear();
      pg::Reader r(f.body);
      switch (f.type) {
        case pg::be::Authentication: {
          int32_t code = r.i32();
          if (code == 0) break;
          if (code == 3) {
            if (creds->plaintext.empty())
              co_return local_error(fmt::format("{} asks for a cleartext password, but only a stored secret is configured for user \"{}\"", where, creds->user), "28P01");
            pg::password_message(out, creds->plaintext);
          } else if (code == 5) {
            auto salt = r.bytes(4);
            if (!r.ok()) co_return local_error(fmt::format("{} sent a malformed md5 request", where), "08P01");
            if (creds->md5_secret.empty())
              co_return local_error(fmt::format("{} asks for md5, but the config has no plaintext or md5 secret for user \"{}\"", where, creds->user), "28P01");
            pg::password_message(out, crypto::pg_md5_response(std::string_view(creds->md5_secret).substr(3), pg::as_sv(salt)));
          } else if (code == 10) {
            bool offered = false;
            for (;;) {
              auto mech = r.cstr();
              if (!r.ok() || mech.empty()) break;
              if (mech == "SCRAM-SHA-256") offered = true;
            }
            if (!offered) co_return local_error(fmt::format("{} offers no SASL mechanism Sluice supports", where), "28000");
            if (!creds->plaintext.empty()) {
              scram = pg::ScramClient::from_password(creds->plaintext);
            } else if (auto key = creds->client_key(); key && creds->scram) {
              scram = pg::ScramClient::from_keys(*creds->scram, *key);
            } else {
              co_return local_error(fmt::format("cannot log in to {} with SCRAM yet: the config holds only a verifier for user \"{}\"; a client must authenticate with SCRAM first", where, creds->user), "28P01");
            }
            pg::sasl_initial_response(out, "SCRAM-SHA-256", scram->client_first());
          } else if (code == 11) {
            if (!scram) co_return local_error(fmt::format("{} sent SASLContinue out of order", where), "08P01");
            std::string err;
            auto final_msg = scram->server_first(pg::as_sv(r.rest()), err);
            if (!final_msg) co_return local_error(fmt::format("SCRAM login to {} failed: {}", where, err), "28P01");
            pg::sasl_response(out, *final_msg);
          } else if (code == 12) {
            std::string err;
            if (!scram || !scram->server_final(pg::as_sv(r.rest()), err))
              co_return local_error(fmt::format("SCRAM login to {} failed: {}", where, err), "28P01");
          } else {
            co_return local_error(fmt::format("{} requested authentication method {}, which Sluice does not support", where, code), "28000");
          }
          break;
        }
        case pg::be::ErrorResponse: {
          ConnectResult res;
          res.error.from_server = true;
          pg::parse_error_fields(f.body, res.error.fields);
          co_return res;
        }
        case pg::be::ParameterStatus: {
          std::string_view name, value;
          if (pg::parse_parameter_status(f.body, name, value)) conn->params.set(name, value);
          break;
        }
        case pg::be::BackendKeyData:
          conn->backend_pid = static_cast<std::uint32_t>(r.i32());
          conn->backend_key = static_cast<std::uint32_t>(r.i32());
          break;
        case pg::be::ReadyForQuery: {
          conn->initial = conn->params;
          sock.non_blocking(true, ec);  // the relay writes with write_some and must never block
          ConnectResult res;
          res.conn = std::move(conn);
          co_return res;
        }
        default:  // NoticeResponse, NegotiateProtocolVersion: nothing to do at login
          break;
      }
      if (!out.empty()) {
        co_await io.write(asio::buffer(out), ec);
        if (ec) co_return local_error(fmt::format("cannot write to {}: {}", where, ec.message()));
      }
    }
    in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(pos));
  }
}
}  // namespace

}  // namespace sluice::pool
