// Opening a MySQL / MariaDB server connection: TCP, the login (mysql_login.hpp, driven by
// login_driver.hpp), with a retry without TLS for server_tls = "prefer"; and reading one row
// of a result set for Sluice's own queries.
#include <fmt/format.h>

#include <algorithm>

#include "protocols/mysql/codec.hpp"
#include "src/observe/log.hpp"
#include "src/pool/mysql_greeting.hpp"
#include "src/pool/mysql_io.hpp"
#include "src/pool/mysql_login.hpp"
#include "src/pool/server_conn.hpp"

namespace sluice::pool {

asio::awaitable<std::optional<std::vector<std::string>>> read_one_row(MysqlIo& io, bool deprecate_eof) {
  std::optional<std::vector<std::string>> none;
  if (auto awaited = co_await io.read(); !awaited) co_return none;
  my::Reader head(io.bytes());
  std::uint64_t columns = head.lenenc();
  if (!head.ok() || io.payload()[0] == '\xff' || columns == 0 || columns > 64) co_return none;
  for (std::uint64_t i = 0; i < columns + (deprecate_eof ? 0 : 1); ++i)
    if (auto awaited = co_await io.read(); !awaited) co_return none;
  if (auto awaited = co_await io.read(); !awaited) co_return none;
  std::vector<std::string> row;
  my::Reader r(io.bytes());
  for (std::uint64_t i = 0; i < columns; ++i) {
    bool is_null = false;
    auto len = r.lenenc_nullable(is_null);
    row.emplace_back(is_null ? std::string_view() : r.str(static_cast<std::size_t>(len.value_or(0))));
  }
  if (!r.ok()) co_return none;
  if (auto awaited = co_await io.read(); !awaited) co_return none;  // EOF / OK terminator
  co_return row;
}

namespace {
asio::awaitable<ConnectResult> connect_mysql_once(asio::any_io_executor ex, config::Endpoint endpoint,
                                                  std::shared_ptr<const Credentials> creds, std::string database,
                                                  config::Duration timeout, std::size_t max_prepared,
                                                  std::uint32_t caps, std::uint8_t charset, ServerTls tls,
                                                  std::uint32_t mariadb_caps);
}  // namespace

asio::awaitable<ConnectResult> connect_mysql(asio::any_io_executor ex, config::Endpoint endpoint,
                                             std::shared_ptr<const Credentials> creds, std::string database,
                                             config::Duration timeout, std::size_t max_prepared, std::uint32_t caps,
                                             std::uint8_t charset, ServerTls tls, std::uint32_t mariadb_caps) {
  auto r = co_await connect_mysql_once(ex, endpoint, creds, database, timeout, max_prepared, caps, charset, tls,
                                       mariadb_caps);
  if (r.conn || !r.tls_handshake_failed || tls.mode != config::ServerTlsMode::Prefer) co_return r;
  log::info("{}; server_tls = \"prefer\": connecting again without TLS", r.error.fields.message);
  const ServerTls plain{};
  co_return co_await connect_mysql_once(ex, endpoint, creds, database, timeout, max_prepared, caps, charset, plain,
                                        mariadb_caps);
}

namespace {
asio::awaitable<ConnectResult> connect_mysql_once(asio::any_io_executor ex, config::Endpoint endpoint,
                                                  std::shared_ptr<const Credentials> creds, std::string database,
                                                  config::Duration timeout, std::size_t max_prepared,
                                                  std::uint32_t caps, std::uint8_t charset, ServerTls tls,
                                                  std::uint32_t mariadb_caps) {
  auto conn = std::make_shared<ServerConn>(tcp::socket(ex));
  tcp::socket& sock = conn->sock;
  Deadline deadline(sock, timeout);
  auto where = fmt::format("server {} (user '{}')", endpoint.text(), creds->user);
  std::string err = co_await open_tcp(sock, endpoint, deadline);
  if (!err.empty())
    co_return my_local_error(fmt::format("cannot connect to {}: {}", where, err));
  MysqlLogin login(creds, database, tls, where, caps, mariadb_caps, charset);
  ConnTransport transport(*conn, deadline, tls, endpoint);
  auto failed = co_await drive_login(login, transport);
  if (login.greeting) MysqlGreetings::global().remember(endpoint, *login.greeting);
  if (failed) co_return std::move(*failed);
  // The server's limit is for all its connections together: the pool divides it among its
  // connections (Pool::connect). A prepare refused for it anyway makes the session close its
  // connection's cached statements and retry.
  std::size_t server_limit = login.max_prepared.value_or(max_prepared);
  conn->server_prepared_limit = server_limit;
  // The character set variables as the handshake left them: what "reset to this pool's
  // defaults" means for them (SET ... = DEFAULT would give the server's global values).
  static const char* names[] = {"character_set_client", "character_set_connection", "character_set_results",
                                "collation_connection"};
  for (int i = 0; i < 4; ++i) conn->initial.set(names[i], login.character_set[static_cast<std::size_t>(i)]);
  conn->proto = config::Protocol::Mysql;
  conn->endpoint = endpoint;
  conn->protocol = sock.local_endpoint().protocol();
  conn->prepared.set_capacity(std::max<std::size_t>(1, std::min(max_prepared, server_limit)));
  conn->backend_pid = login.greeting->connection_id;
  conn->capabilities = login.capabilities;
  conn->schema = database;
  conn->initial.set("version", login.greeting->server_version);  // params: only what clients changed
  boost::system::error_code ec;
  sock.non_blocking(true, ec);
  ConnectResult res;
  res.conn = std::move(conn);
  co_return res;
}

}  // namespace

}  // namespace sluice::pool
