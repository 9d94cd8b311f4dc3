// MySQL / MariaDB server login: HandshakeV10, HandshakeResponse41, AuthSwitchRequest, and the
// mysql_native_password, caching_sha2_password and (MariaDB) client_ed25519 plugins (fast path, and the full path with
// the server's RSA public key when there is no TLS). Then Sluice turns on session tracking so every OK packet reports
// the session variables and schema the client changed.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "protocols/mysql/codec.hpp"
#include "protocols/mysql/ed25519.hpp"
#include "protocols/common/crypto.hpp"
#include "src/observe/log.hpp"
#include "src/pool/mysql_greeting.hpp"
#include "src/pool/mysql_io.hpp"
#include "src/pool/server_conn.hpp"

namespace sluice::pool {

namespace {

ConnectResult my_local_error(std::string message, std::uint16_t code = my::er::UPSTREAM_UNREACHABLE,
                             std::string sqlstate = "08S01") {
  ConnectResult r;
  r.error.fields.severity = "FATAL";
  r.error.fields.code = std::move(sqlstate);
  r.error.fields.message = std::move(message);
  r.error.mysql_code = code;
  return r;
}

ConnectResult my_server_error(my::Bytes payload) {
  ConnectResult r;
  my::Err e;
  my::parse_err(payload, e);
  r.error.from_server = true;
  r.error.mysql_code = e.code;
  r.error.fields.severity = "FATAL";
  r.error.fields.code = e.sqlstate;
  r.error.fields.message = e.message;
  return r;
}

// The scramble for `plugin`, or nullopt when the configured secret cannot produce it.
std::optional<std::string> scramble_for(const std::string& plugin, const Credentials& creds, std::string_view nonce) {
  if (plugin == "mysql_native_password") {
    if (!creds.plaintext.empty()) return my::native_scramble(creds.plaintext, nonce);
    auto stage1 = creds.mysql_stage1();
    if (!stage1) return std::nullopt;
    auto mix = crypto::sha1_raw(std::string(nonce.substr(0, 20)) + crypto::sha1_raw(*stage1));
    std::string out(20, '\0');
    for (int i = 0; i < 20; ++i) out[i] = static_cast<char>((*stage1)[i] ^ mix[i]);
    return out;
  }
  if (plugin == "caching_sha2_password") {
    if (creds.plaintext.empty()) return std::nullopt;
    return my::sha2_scramble(creds.plaintext, nonce);
  }
  if (plugin == "client_ed25519") {  // MariaDB: a signature of the 32-byte scramble
    if (creds.plaintext.empty() || nonce.size() < 32) return std::nullopt;
    return my::ed25519_sign(creds.plaintext, nonce.substr(0, 32));
  }
  return std::nullopt;
}

}  // namespace

asio::awaitable<std::optional<std::vector<std::string>>> read_one_row(MysqlIo& io, bool deprecate_eof) {
  std::optional<std::vector<std::string>> none;
  if (!co_await io.read()) co_return none;
  my::Reader head(io.bytes());
  std::uint64_t columns = head.lenenc();
  if (!head.ok() || io.payload()[0] == '\xff' || columns == 0 || columns > 64) co_return none;
  for (std::uint64_t i = 0; i < columns + (deprecate_eof ? 0 : 1); ++i)
    if (!co_await io.read()) co_return none;
  if (!co_await io.read()) co_return none;
  std::vector<std::string> row;
  my::Reader r(io.bytes());
  for (std::uint64_t i = 0; i < columns; ++i) {
    bool is_null = false;
    auto len = r.lenenc_nullable(is_null);
    row.emplace_back(is_null ? std::string_view() : r.str(static_cast<std::size_t>(len.value_or(0))));
  }
  if (!r.ok()) co_return none;
  if (!co_await io.read()) co_return none;  // EOF / OK terminator
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
  co_return co_await connect_mysql_once(ex, endpoint, creds, database, timeout, max_prepared, caps, charset,
                                        ServerTls{}, mariadb_caps);
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
  MysqlIo io(sock, 1u << 20);
  auto lost = [&](std::string_view when) {
    return my_local_error(fmt::format("{} closed the connection {}: {}", where, when,
                                      deadline.expired() ? "timed out" : io.error()));
  };

  if (!co_await io.read()) co_return lost("before its handshake");
  if (!io.payload().empty() && static_cast<std::uint8_t>(io.payload()[0]) == 0xFF) co_return my_server_error(io.bytes());
  my::Handshake hs;
  if (!my::parse_handshake(io.bytes(), hs))
    co_return my_local_error(fmt::format("{} sent a handshake Sluice cannot read", where), my::er::HANDSHAKE, "08S01");
  MysqlGreetings::global().remember(endpoint, hs);

  constexpr std::uint32_t base = my::cap::PROTOCOL_41 | my::cap::SECURE_CONNECTION | my::cap::PLUGIN_AUTH |
                                 my::cap::PLUGIN_AUTH_LENENC_CLIENT_DATA | my::cap::TRANSACTIONS |
                                 my::cap::LONG_FLAG | my::cap::SESSION_TRACK | my::cap::CONNECT_ATTRS;
  std::uint32_t want = base | caps | (database.empty() ? 0 : my::cap::CONNECT_WITH_DB);
  // MariaDB clears LONG_PASSWORD ("CLIENT_MYSQL") to announce its own extensions: those the
  // pool's clients negotiated (extended column metadata) are asked for in the same bytes.
  if ((want & hs.capabilities) != want) {
    std::uint32_t missing = want & ~hs.capabilities;
    co_return my_local_error(fmt::format("{} lacks capabilities Sluice needs (0x{:x})", where, missing),
                             my::er::NOT_SUPPORTED, "08004");
  }
  my::HandshakeResponse resp;
  resp.capabilities = want | (hs.capabilities & my::cap::LONG_PASSWORD);
  resp.mariadb_capabilities = mariadb_caps & hs.mariadb_capabilities;
  if ((mariadb_caps & ~hs.mariadb_capabilities) != 0)
    co_return my_local_error(fmt::format("{} lacks MariaDB capabilities Sluice's clients use (0x{:x})", where,
                                         mariadb_caps & ~hs.mariadb_capabilities),
                             my::er::NOT_SUPPORTED, "08004");
  resp.max_packet = 1u << 30;
  resp.charset = charset ? charset : (hs.charset ? hs.charset : 45);
  resp.user = creds->user;
  resp.database = database;
  std::string plugin = hs.auth_plugin.empty() ? "mysql_native_password" : hs.auth_plugin;
  std::string nonce = hs.nonce;
  auto first = scramble_for(plugin, *creds, nonce);
  resp.auth_plugin = plugin;
  resp.auth_response = first.value_or("");
  resp.attributes = {{"_client_name", "sluice"}, {"program_name", "sluice"}};
  std::string out;
  std::uint8_t seq = io.seq() + 1;
  if (tls.on() && (hs.capabilities & my::cap::SSL)) {  // SSLRequest, TLS, then the response
    resp.capabilities |= my::cap::SSL;
    my::build_ssl_request(out, resp);
    if (!co_await io.write(out, seq++)) co_return lost("after SSLRequest");
    err = co_await start_tls(*conn, tls, endpoint);
    if (!err.empty()) {
      auto r = my_local_error(fmt::format("TLS with {} failed: {}", where, err), my::er::HANDSHAKE, "08S01");
      r.tls_handshake_failed = true;
      co_return r;
    }
    io.set_tls(conn->tls.get());
    out.clear();
  } else if (tls.required()) {
    co_return my_local_error(fmt::format("{} does not offer TLS, and server_tls = \"{}\" requires it", where,
                                         config::to_string(tls.mode)),
                             my::er::HANDSHAKE, "08S01");
  }
  my::build_handshake_response(out, resp);
  if (!co_await io.write(out, seq)) co_return lost("during login");

  for (;;) {
    if (!co_await io.read()) co_return lost("during login");
    auto p = io.bytes();
    if (p.empty()) co_return my_local_error(fmt::format("{} sent an empty packet during login", where), my::er::HANDSHAKE, "08S01");
    std::uint8_t head = p[0];
    if (head == 0x00) break;
    if (head == 0xFF) co_return my_server_error(p);
    out.clear();
    if (head == 0xFE) {
      my::AuthSwitch sw;
      if (!my::parse_auth_switch(p, sw))
        co_return my_local_error(fmt::format("{} sent a malformed auth switch", where), my::er::HANDSHAKE, "08S01");
      plugin = sw.plugin;
      nonce = sw.data;
      auto s = scramble_for(plugin, *creds, nonce);
      if (!s) {
        if (plugin == "mysql_native_password" || plugin == "caching_sha2_password" || plugin == "client_ed25519")
          co_return my_local_error(fmt::format("cannot log in to {} with {}: the config holds only a stored hash for user '{}'; "
                                               "a client must log in with mysql_native_password first",
                                               where, plugin, creds->user),
                                   my::er::ACCESS_DENIED, "28000");
        co_return my_local_error(fmt::format("{} asks for authentication plugin '{}', which Sluice does not support", where, plugin),
                                 my::er::NOT_SUPPORTED, "28000");
      }
      out = *s;
    } else if (head == 0x01 && plugin == "caching_sha2_password") {
      auto data = my::as_sv(p.subspan(1));
      if (data == "\x03") continue;  // fast authentication succeeded: OK follows
      if (data == "\x04" && io.tls()) {  // full authentication over TLS: the password itself
        out = creds->plaintext;
        out.push_back('\0');
      } else if (data == "\x04") {  // full authentication: ask for the public key
        out = "\x02";
      } else if (data.rfind("-----BEGIN", 0) == 0) {
        std::string pw = creds->plaintext;
        pw.push_back('\0');
        auto enc = crypto::rsa_encrypt_oaep(data, my::xor_with_nonce(pw, nonce));
        if (!enc) co_return my_local_error(fmt::format("{} sent an RSA public key Sluice cannot use", where), my::er::HANDSHAKE, "08S01");
        out = *enc;
      } else {
        co_return my_local_error(fmt::format("{} sent unexpected caching_sha2_password data", where), my::er::HANDSHAKE, "08S01");
      }
    } else {
      co_return my_local_error(fmt::format("{} sent an unexpected packet (0x{:02x}) during login", where, head), my::er::HANDSHAKE, "08S01");
    }
    if (!co_await io.reply(out)) co_return lost("during login");
  }

  // Session tracking: every OK reports changed variables and schema, and a generic flag for
  // state Sluice cannot move (user variables, temporary tables, prepared statements).
  std::string q;
  my::build_command(q, my::com::QUERY,
                    "SET SESSION session_track_system_variables = '*', session_track_schema = ON, "
                    "session_track_state_change = ON");
  bool io_ok = co_await io.write(q, 0);
  if (io_ok) io_ok = co_await io.read();
  if (!io_ok) co_return lost("while Sluice set up session tracking");
  if (!io.payload().empty() && static_cast<std::uint8_t>(io.payload()[0]) == 0xFF) co_return my_server_error(io.bytes());

  // The character set variables as the handshake left them: what "reset to this pool's
  // defaults" means for them (SET ... = DEFAULT would give the server's global values).
  q.clear();
  my::build_command(q, my::com::QUERY,
                    "SELECT @@character_set_client, @@character_set_connection, @@character_set_results, "
                    "@@collation_connection, @@max_prepared_stmt_count");
  if (!co_await io.write(q, 0)) co_return lost("while Sluice read the session character set");
  auto baseline = co_await read_one_row(io, (want & my::cap::DEPRECATE_EOF) != 0);
  if (!baseline || baseline->size() != 5) co_return lost("while Sluice read the session character set");
  // The server's limit is for all its connections together: the pool divides it among its
  // connections (Pool::connect). A prepare refused for it anyway makes the session close its
  // connection's cached statements and retry.
  std::size_t server_limit = max_prepared;
  std::from_chars((*baseline)[4].data(), (*baseline)[4].data() + (*baseline)[4].size(), server_limit);
  conn->server_prepared_limit = server_limit;

  static const char* names[] = {"character_set_client", "character_set_connection", "character_set_results",
                                "collation_connection"};
  for (int i = 0; i < 4; ++i) conn->initial.set(names[i], (*baseline)[i]);
  conn->proto = config::Protocol::Mysql;
  conn->endpoint = endpoint;
  conn->protocol = sock.local_endpoint().protocol();
  conn->prepared.set_capacity(std::max<std::size_t>(1, std::min(max_prepared, server_limit)));
  conn->backend_pid = hs.connection_id;
  conn->capabilities = want;
  conn->schema = database;
  conn->initial.set("version", hs.server_version);  // params: only what clients changed
  boost::system::error_code ec;
  sock.non_blocking(true, ec);
  ConnectResult res;
  res.conn = std::move(conn);
  co_return res;
}

}  // namespace

}  // namespace sluice::pool
