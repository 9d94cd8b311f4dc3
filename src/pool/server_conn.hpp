// One server connection: TCP socket, the server's parameters, its prepared statements, and the
// coroutine that connects and authenticates it (docs 55.2.1 "Start-up").
#pragma once

#include <boost/asio.hpp>

#include <atomic>
#include <chrono>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "protocols/postgres/codec.hpp"
#include "src/config/config.hpp"
#include "src/net/tls.hpp"
#include "src/pool/credentials.hpp"

namespace sluice::pool {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Ordered name -> value list; small (a dozen entries), so linear search wins. `fingerprint` is an
// order-independent 64-bit hash of all pairs, kept up to date, so two equal sets are recognized
// without comparing strings (the attach hot path).
// A Params value starting with this byte is SQL text to re-apply as written (SET name TO <text>):
// parameters the client set with SET or set_config, which the server does not report.
inline constexpr char kRawSqlValue = '\x01';

struct Params {
  std::vector<std::pair<std::string, std::string>> items;
  std::uint64_t fingerprint = 0;
  const std::string* find(std::string_view name) const;
  void set(std::string_view name, std::string_view value);
  void erase(std::string_view name);
  template <typename Pred>
  void erase_if(Pred pred) {
    for (auto it = items.begin(); it != items.end();)
      if (pred(*it)) {
        fingerprint ^= pair_hash(it->first, it->second);
        it = items.erase(it);
      } else {
        ++it;
      }
  }
  static std::uint64_t pair_hash(std::string_view name, std::string_view value);
};

// A process-wide increasing number: orders a client's Parse against server-side preparations.
std::uint64_t prepare_sequence();

// Bounded LRU set of statement ids prepared on one server connection.
class PreparedSet {
 public:
  explicit PreparedSet(std::size_t capacity = 256) : capacity_(capacity) {}
  bool contains(std::uint64_t id) const { return index_.count(id) != 0; }
  // Whether `id` is here, prepared at or after `since` (a prepare_sequence() value): a plan made
  // before a client's own Parse may predate a table change the client's Parse would have seen.
  bool fresh(std::uint64_t id, std::uint64_t since) const {
    auto it = index_.find(id);
    return it != index_.end() && it->second.seq >= since;
  }
  void touch(std::uint64_t id);
  // Inserts `id` (prepared now: its sequence is renewed); returns the id evicted to make room, or 0.
  std::uint64_t insert(std::uint64_t id);
  void erase(std::uint64_t id);
  void clear();
  std::size_t size() const { return index_.size(); }
  void set_capacity(std::size_t c) { capacity_ = c; }

 private:
  std::size_t capacity_;
  struct Slot {
    std::list<std::uint64_t>::iterator pos;
    std::uint64_t seq;  // prepare_sequence() when prepared
  };
  std::list<std::uint64_t> order_;  // front = most recent
  std::unordered_map<std::uint64_t, Slot> index_;
};

class Pool;

// How Sluice speaks TLS to one cluster's servers ([clusters.X] server_tls and its files).
struct ServerTls {
  config::ServerTlsMode mode = config::ServerTlsMode::Disable;
  std::shared_ptr<boost::asio::ssl::context> ctx;  // null when disabled
  // What is asked of servers (mode, CA, Sluice's certificate, as configured): when a reload
  // changes it, a pool replaces its connections (idle ones at once, busy ones when released).
  // Certificate files re-read under the same names do not count: connections keep going.
  std::string policy;
  bool on() const { return mode != config::ServerTlsMode::Disable && ctx; }
  bool required() const { return mode != config::ServerTlsMode::Disable && mode != config::ServerTlsMode::Prefer; }
  bool verify_host() const { return mode == config::ServerTlsMode::VerifyFull; }
};
using ServerTlsMap = std::map<std::string, ServerTls, std::less<>>;  // by cluster name

class ServerConn {
 public:
  explicit ServerConn(tcp::socket s) : sock(std::move(s)), home(home_of(sock.get_executor())) {}
  tcp::socket sock;
  // The io_context (worker) the socket is registered with: compared by address, cheaper than
  // comparing executors (rebind() keeps it).
  const void* home;
  static const void* home_of(const asio::any_io_executor& ex) { return &asio::query(ex, asio::execution::context); }
  std::unique_ptr<net::TlsStream> tls;  // set when the server accepted TLS (over `sock`)
  std::uint64_t tls_generation = 0;     // the pool's server_tls generation it was opened under
  // The byte stream to the server: TLS when on, else the socket.
  net::Channel channel() { return net::Channel{sock, tls.get()}; }
  config::Protocol proto = config::Protocol::Postgres;
  config::Endpoint endpoint;
  tcp protocol = tcp::v4();
  std::uint32_t backend_pid = 0, backend_key = 0;
  Params params;       // what this server session currently has (reported + tracked)
  Params initial;      // as reported at login (for resets); MySQL: the character set variables
  PreparedSet prepared;
  Clock::time_point created = Clock::now(), last_used = Clock::now();
  std::uint64_t id = 0;
  std::atomic<std::uint64_t> client_id{0};  // the client it works for (SHOW SERVERS), 0 = none
  std::string local_addr;                   // Sluice's end of the connection
  std::uint16_t local_port = 0;
  // PostgreSQL, pooled: a client's LISTEN ran here (UNLISTEN * before another client gets it).
  bool listening = false;

  // MySQL only. backend_pid holds the server's connection (thread) id.
  std::uint32_t capabilities = 0;  // negotiated with the server
  std::string schema;              // current default database
  bool dirty = false;              // holds state Sluice cannot describe: reset before reuse
  std::optional<bool> multi_statements;  // COM_SET_OPTION state, when changed from the default
  std::unordered_map<std::uint64_t, std::uint32_t> statement_ids;  // registry id -> server id
  std::size_t server_prepared_limit = 0;  // the server's max_prepared_stmt_count (all connections)

  // Moves the socket to ex's worker when it lives on another (epoll re-registration and an
  // ioctl); true when it moved.
  bool rebind(const asio::any_io_executor& ex);
  // The socket registered with its worker's reactor afresh. Asio keeps EPOLLOUT in a
  // descriptor's interest set once any write has waited (the connect did): every ACK of a
  // request then wakes the worker for nothing. A fresh registration watches reads only. False:
  // the socket is gone (closed), and the connection with it.
  bool reregister();
  // Non-blocking liveness probe for an idle connection: false if the server closed it or sent
  // something unexpected (e.g. a FATAL after a restart).
  bool idle_alive();
  // Best-effort Terminate and close, never blocking.
  void close_quietly();
};

struct ConnectError {
  bool from_server = false;  // an ErrorResponse from the server (forward it as is)
  pg::ErrorFields fields;    // when from_server, else a synthesized message in fields.message
  std::uint16_t mysql_code = 0;  // MySQL: the server's errno (fields.code holds the SQLSTATE)
};

struct ConnectResult {
  std::shared_ptr<ServerConn> conn;
  ConnectError error;
  bool tls_handshake_failed = false;  // the server offered TLS and the handshake failed
};

// Closes the socket when the login takes longer than `d` (connect and authentication alike).
class Deadline {
 public:
  Deadline(tcp::socket& sock, config::Duration d);
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  bool expired() const { return *expired_; }

 private:
  asio::steady_timer timer_;
  std::shared_ptr<bool> expired_, done_;
};

// Resolves and connects; sets TCP_NODELAY and keepalive. Returns "" or what went wrong.
asio::awaitable<std::string> open_tcp(tcp::socket& sock, const config::Endpoint& endpoint, const Deadline& deadline);

// TLS handshake as a client over conn.sock (after the protocol's own TLS request); "" or why not.
asio::awaitable<std::string> start_tls(ServerConn& conn, ServerTls tls, config::Endpoint endpoint);

// With server_tls = "prefer", a TLS handshake that fails is followed by a second connection
// without TLS (as libpq's sslmode=prefer); the other modes fail the connection.
// `replication`: a logical replication connection (replication=database).
asio::awaitable<ConnectResult> connect_server(asio::any_io_executor ex, config::Endpoint endpoint,
                                              std::shared_ptr<const Credentials> creds, std::string database,
                                              config::Duration timeout, std::size_t max_prepared, ServerTls tls = {},
                                              bool replication = false);

// MySQL / MariaDB login (src/pool/mysql_conn.cpp). `caps` are the format-affecting capability
// flags the clients of this pool negotiated with Sluice, `mariadb_caps` MariaDB's extended ones
// (extended column metadata); the server must support them. "prefer"
// falls back to plaintext after a failed TLS handshake, as connect_server does.
asio::awaitable<ConnectResult> connect_mysql(asio::any_io_executor ex, config::Endpoint endpoint,
                                             std::shared_ptr<const Credentials> creds, std::string database,
                                             config::Duration timeout, std::size_t max_prepared, std::uint32_t caps,
                                             std::uint8_t charset = 0, ServerTls tls = {},
                                             std::uint32_t mariadb_caps = 0);

}  // namespace sluice::pool
