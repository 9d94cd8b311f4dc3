// The MySQL / MariaDB client session. Stages, as in the PostgreSQL front end: handshake, auth,
// attach (lease + state sync), relay (one command, one response), detach.
#include "src/frontend/mysql/session.hpp"

#include <boost/asio/ssl.hpp>
#include <fmt/format.h>

#include <cctype>
#include <unordered_map>
#include <unordered_set>

#include "protocols/mysql/codec.hpp"
#include "protocols/common/crypto.hpp"
#include "sluice/version.hpp"
#include "src/admin/console.hpp"
#include "src/frontend/common/cache_lookup.hpp"
#include "src/frontend/common/lease_failure.hpp"
#include "src/frontend/common/pool_rules.hpp"
#include "src/frontend/mysql/admin.hpp"
#include "src/frontend/mysql/response.hpp"
#include "src/frontend/common/server_loss.hpp"
#include "src/net/tls.hpp"
#include "src/observe/log.hpp"
#include "src/pool/mysql_greeting.hpp"
#include "src/pool/mysql_io.hpp"
#include "src/pool/statements.hpp"
#include "src/sql/classify.hpp"
#include "src/sql/normalize.hpp"
#include "src/sql/mysql_sql.hpp"

namespace sluice::frontend::mysql {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

class Session;
thread_local std::unordered_set<Session*> t_sessions;

std::shared_ptr<const crypto::RsaKey> g_rsa;

// Capabilities Sluice offers clients. LOCAL_FILES only when [mysql] local_infile is on, SSL on
// a TLS listener; COMPRESS (zlib) and ZSTD_COMPRESSION between the client and Sluice only (zstd is
// offered whatever the server offers: MariaDB never does).
constexpr std::uint32_t kOffered =
    my::cap::LONG_PASSWORD | my::cap::FOUND_ROWS | my::cap::LONG_FLAG | my::cap::CONNECT_WITH_DB | my::cap::NO_SCHEMA |
    my::cap::COMPRESS | my::cap::ODBC | my::cap::IGNORE_SPACE | my::cap::PROTOCOL_41 | my::cap::INTERACTIVE |
    my::cap::IGNORE_SIGPIPE | my::cap::TRANSACTIONS | my::cap::RESERVED | my::cap::SECURE_CONNECTION |
    my::cap::MULTI_STATEMENTS | my::cap::MULTI_RESULTS | my::cap::PS_MULTI_RESULTS | my::cap::PLUGIN_AUTH |
    my::cap::CONNECT_ATTRS | my::cap::PLUGIN_AUTH_LENENC_CLIENT_DATA | my::cap::CAN_HANDLE_EXPIRED_PASSWORDS |
    my::cap::SESSION_TRACK | my::cap::DEPRECATE_EOF;
constexpr std::uint16_t kTooManyPrepared = 1461;  // ER_MAX_PREPARED_STMT_COUNT_REACHED
// Not Sluice's to offer but harmless to mirror from the server's greeting.
constexpr std::uint32_t kRememberOptions = 1u << 31;
// MariaDB extended capabilities relayed: extended column metadata passes as opaque bytes in
// column definitions. Not relayed: progress reports, bulk execution and metadata caching, which
// change the command and response shapes Sluice tracks.
constexpr std::uint32_t kRelayedMariadbCaps = my::mariadb_cap::EXTENDED_METADATA;
// Capabilities that change what the server sends or accepts: server connections are pooled
// separately per combination, so responses relay byte for byte. (SESSION_TRACK is not among them:
// Sluice always tracks and rewrites OK packets for clients that did not ask for it.)
constexpr std::uint32_t kFormatCaps = my::cap::DEPRECATE_EOF | my::cap::FOUND_ROWS | my::cap::MULTI_STATEMENTS |
                                      my::cap::MULTI_RESULTS | my::cap::PS_MULTI_RESULTS |
                                      my::cap::LOCAL_FILES | my::cap::IGNORE_SPACE;

// Session variables a server reports but nobody can SET, and Sluice's own tracking switches.
bool syncable(std::string_view name) {
  static const std::unordered_set<std::string_view> skip = {
      "last_gtid", "warning_count", "error_count", "in_transaction", "rand_seed1", "rand_seed2",
      "insert_id", "last_insert_id", "identity", "external_user", "proxy_user", "pseudo_thread_id",
      "timestamp", "gtid_seq_no"};
  if (name.empty() || name.rfind("session_track_", 0) == 0 || skip.count(name)) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

std::string sql_value(std::string_view v) {
  bool numeric = !v.empty();
  std::size_t i = (v.size() > 1 && v[0] == '-') ? 1 : 0;
  bool dot = false;
  for (; i < v.size() && numeric; ++i) {
    if (v[i] == '.' && !dot) dot = true;
    else if (!std::isdigit(static_cast<unsigned char>(v[i]))) numeric = false;
  }
  if (numeric) return std::string(v);
  std::string s = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') s.push_back('\\');
    s.push_back(c);
  }
  s.push_back('\'');
  return s;
}

std::string random_nonce() {
  // Printable, NUL-free bytes, as servers send.
  auto raw = crypto::random_bytes(20);
  for (auto& c : raw) c = static_cast<char>(33 + static_cast<unsigned char>(c) % 94);
  return raw;
}

// Process-wide: statements by (schema, text), and the PREPARE_OK response first seen for each,
// so that later prepares of the same text are answered without a server connection.
pool::StatementRegistry& statements() {
  static pool::StatementRegistry r;
  return r;
}
std::mutex g_prep_mu;  // guards Statement::prepare_response

std::shared_ptr<const std::string> cached_prepare(const pool::Statement& stmt) {
  std::lock_guard lock(g_prep_mu);
  return stmt.prepare_response;
}
void cache_prepare(const pool::Statement& stmt, std::string bytes) {
  std::lock_guard lock(g_prep_mu);
  if (!stmt.prepare_response) stmt.prepare_response = std::make_shared<const std::string>(std::move(bytes));
}

struct ClientStmt {
  std::shared_ptr<const pool::Statement> stmt;
  std::string query;
  std::uint16_t params = 0, columns = 0;
  std::string types;  // parameter types from the last execute that sent them
  bool read = false;  // classified once, at prepare: may run on a replica
  sql::StatementKind kind = sql::StatementKind::Write;
};

class Session {
 public:
  Session(tcp::socket sock, Context& ctx)
      : sock_(std::move(sock)), ctx_(ctx), snap_(ctx.snapshot()), cfg_(snap_->config.get()),
        io_(sock_, cfg_->general.max_packet_size), timer_(sock_.get_executor()) {
    t_sessions.insert(this);
    handle_ = std::make_shared<ClientHandle>();
    info_ = new_client_info(ctx_, "mysql", sock_);
    handle_->id = static_cast<std::uint32_t>(info_->id);  // the connection id is the console's client id
    auto ex = sock_.get_executor();
    std::weak_ptr<bool> alive = alive_;
    handle_->close = [ex, alive, this] {
      asio::post(ex, [alive, this] {
        if (alive.lock()) close_client();
      });
    };
    ctx_.mysql_clients.add(handle_);
    info_->kill = [ex, alive, this] {
      asio::post(ex, [alive, this] {
        if (!alive.lock()) return;
        end_reason_ = "killed by the administrator";
        std::string p, out;
        my::build_err(p, 1927, "70100", "Connection was killed by the administrator (KILL)");
        my::append_packets(out, p, 0);
        out = io_.framed(out);
        error_code e;
        if (!tls_) {
          sock_.non_blocking(true, e);
          sock_.write_some(asio::buffer(out), e);
        } else if (!tls_->write_pending()) {  // not in the middle of another record
          tls_->write_now(asio::buffer(out), e);
        }
        close_client();
      });
    };
    ctx_.client_table.add(info_);
  }
  ~Session() {
    t_sessions.erase(this);
    ctx_.mysql_clients.remove(handle_->id);
    ctx_.client_table.remove(info_->id);
    end_fill();
    if (connected_)
      log::info("client {} {}:{} disconnected: user {} database {}: {}", info_->id, info_->addr, info_->port, user_,
                schema_, end_reason_.empty() ? "client closed the connection" : end_reason_);
  }

  void kick() {
    if (idle_wait_) close_client();
  }

  // GCC 12 miscompiled this body as "if (!co_await login()) co_return; for (;;) { if (...)
  // co_return; if (!co_await ...) break; }" (the frame's `this` was garbage on first resume);
  // results are kept in a variable instead.
  awaitable<void> run() {
    bool ok = co_await login();
    if (ok && console_) {
      idle_wait_ = true;  // a shutdown closes console connections like idle clients
      co_await serve_admin(sock_, io_, ctx_, console_caller_, caps_, mariadb_caps_);
      co_return;
    }
    if (ok) {
      connected_ = true;
      log::info("client {} {}:{} connected: user {} database {}", info_->id, info_->addr, info_->port, user_, schema_);
    }
    while (ok) {
      if (ctx_.shutting_down && !server_) break;
      ok = co_await read_command();
      if (ok) {
        auto cmd = static_cast<std::uint8_t>(io_.payload()[0]);
        auto started = observe::Clock::now();
        if (!in_xact_) {
          in_xact_ = true;
          xact_start_ = started;
        }
        info_->request_time_us.store(observe::coarse_epoch_us(), std::memory_order_relaxed);
        ok = co_await dispatch();
        count_command(cmd, started);
      }
    }
    co_await leave();
  }

 private:
  // ---- small helpers ---------------------------------------------------------------------

  void count_command(std::uint8_t cmd, observe::Clock::time_point started) {
    if (!server_) info_->set_state(observe::ClientState::Idle);
    if (!stats_ || (cmd != my::com::QUERY && cmd != my::com::STMT_EXECUTE)) return;
    auto us = observe::micros_since(started);
    stats_->query(us);
    info_->queries.fetch_add(1, std::memory_order_relaxed);
    if (!(status_ & my::status::IN_TRANS)) {
      stats_->xact(observe::micros_since(xact_start_));
      in_xact_ = false;
    }
  }

  // No server connection for this client: said as on PostgreSQL (describe_lease_failure), with
  // MySQL's codes (1040 in line too long, the server's own errno, 2013-style unreachable).
  awaitable<void> report_lease_failure(const pool::LeaseResult& r) {
    auto f = describe_lease_failure(r, pool_->name(), cfg_->general.query_wait_timeout);
    if (f.timed_out) {
      co_await send_err(my::er::CON_COUNT, "08004", f.message + " (" + f.hint + ")");
    } else if (f.from_server) {
      co_await send_err(f.mysql_code, f.sqlstate, f.message);
    } else {
      co_await send_err(f.mysql_code ? f.mysql_code : my::er::UPSTREAM_UNREACHABLE,
                        f.sqlstate.empty() ? "08S01" : f.sqlstate, f.message);
    }
  }

  // PAUSE: hold this client's next command (no error) until RESUME.
  awaitable<void> wait_while_paused() { co_await ctx_.controls.wait_resumed(served_db_, sock_, *info_); }

  // A reload happened: take the new settings for this client's pool (between transactions).
  void refresh_config() {
    generation_ = ctx_.generation();
    auto next = ctx_.snapshot();
    const config::Pool* pc = next->config->find_pool(config::Protocol::Mysql, pool_cfg_.database);
    if (!pc || pc->cluster != pool_cfg_.cluster || pc->mode != mode_) return;
    snap_ = next;
    cfg_ = snap_->config.get();
    io_.set_limit(cfg_->general.max_packet_size);
    bind_pool(*pc);
  }

  // The pool, cluster and routing of this client's [[pools]] entry (login, and after a reload).
  void bind_pool(const config::Pool& pc) {
    const auto& cluster = cfg_->clusters.at(pc.cluster);
    auto settings = pool_settings(*snap_, pc);
    settings.protocol = config::Protocol::Mysql;
    settings.mysql_caps = caps_ & kFormatCaps;
    settings.mariadb_caps = mariadb_caps_;
    settings.mysql_charset = charset_;
    settings.max_prepared = cfg_->mysql.max_prepared_statements;
    settings_ = settings;
    pool_cfg_ = pc;
    pool_ = ctx_.pools.get(pc, cluster.primary, creds_, "", settings_);
    if (learned_) pool_->set_credentials(creds_);  // a changed password: new connections use it
    cluster_ = ctx_.router.find(pc.cluster);
    auto routing = cluster.routing;
    if (pc.routing) routing = *pc.routing;
    if (auto* u = cfg_->find_user(user_); u && u->routing) routing = *u->routing;
    split_ = cluster_ && routing == config::Routing::ReadWriteSplit && !cluster.replicas.empty() &&
             mode_ != config::PoolMode::Session;
    member_pools_.assign(cluster.replicas.size() + 1, nullptr);
    member_pools_[0] = pool_;
    member_ = 0;
  }

  void close_client() {
    error_code ec;
    sock_.close(ec);
  }

  awaitable<bool> send_err(std::uint16_t code, std::string_view sqlstate, std::string_view message) {
    if (my::er::client_range(code)) code = my::er::UPSTREAM_UNREACHABLE;  // see my::er
    if (!connected_)
      log::info("client {} {}:{} refused: user {}: {} ({})", info_->id, info_->addr, info_->port,
                user_.empty() ? "?" : user_, message, code);
    std::string p;
    my::build_err(p, code, sqlstate, message);
    co_return co_await io_.reply(p);
  }

  awaitable<bool> send_ok(std::uint64_t affected = 0, std::string_view info = {}) {
    std::string p;
    my::Ok ok;
    ok.affected_rows = affected;
    ok.status = status_;
    ok.info = info;
    my::build_ok(p, ok, (caps_ & my::cap::SESSION_TRACK) != 0);
    co_return co_await io_.reply(p);
  }

  std::string access_denied(bool with_password) const {
    error_code ec;
    auto peer = sock_.remote_endpoint(ec);
    return fmt::format("Access denied for user '{}'@'{}' (using password: {})", user_,
                       ec ? std::string("unknown") : peer.address().to_string(), with_password ? "YES" : "NO");
  }

  // ---- login -----------------------------------------------------------------------------

  awaitable<bool> login() {
    std::weak_ptr<bool> alive = alive_;
    timer_.expires_after(cfg_->general.client_login_timeout);
    timer_.async_wait([this, alive](error_code ec) {
      if (!ec && alive.lock() && !logged_in_) close_client();
    });
    bool ok = co_await handshake();
    logged_in_ = true;
    timer_.cancel();
    co_return ok;
  }

  // The greeting is the primary's (version, capabilities Sluice relays, MariaDB's extended
  // capabilities, default collation), probed before the very first client is greeted.
  awaitable<my::Handshake> greeting() {
    my::Handshake hs;
    hs.capabilities = kOffered;
    hs.charset = 45;  // utf8mb4_general_ci
    hs.server_version = "8.0.34-sluice-" SLUICE_VERSION;
    auto known = co_await pool::mysql_greeting(sock_.get_executor(), primary_for_default(),
                                               cfg_->general.server_connect_timeout);
    if (known) {
      hs.server_version = known->version;
      hs.capabilities = known->capabilities & (kOffered | kRememberOptions);
      hs.charset = known->charset ? known->charset : hs.charset;
      if (!(known->capabilities & my::cap::LONG_PASSWORD))
        hs.mariadb_capabilities = known->mariadb_capabilities & kRelayedMariadbCaps;
    }
    if (!cfg_->mysql.server_version.empty()) hs.server_version = cfg_->mysql.server_version;
    hs.capabilities |= (cfg_->mysql.local_infile ? my::cap::LOCAL_FILES : 0) | (snap_->my_tls ? my::cap::SSL : 0) |
                       my::cap::ZSTD_COMPRESSION;
    co_return hs;
  }

  config::Endpoint primary_for_default() const {
    for (auto& pc : cfg_->pools)
      if (pc.protocol == config::Protocol::Mysql) return cfg_->clusters.at(pc.cluster).primary;
    return {};
  }

  awaitable<bool> handshake() {
    nonce_ = random_nonce();
    my::Handshake hs = co_await greeting();
    hs.connection_id = handle_->id;
    hs.nonce = nonce_;
    hs.status = my::status::AUTOCOMMIT;
    hs.auth_plugin = cfg_->mysql.default_auth_plugin;
    std::string p;
    my::build_handshake(p, hs);
    if (!co_await io_.write(p, 0)) co_return false;

    io_.set_limit(64 * 1024);
    io_.set_exact(snap_->my_tls != nullptr);  // a TLS ClientHello may follow the SSLRequest at once
    if (!co_await io_.read()) co_return false;
    io_.set_exact(false);
    my::HandshakeResponse resp;
    if (!my::parse_handshake_response(io_.bytes(), resp)) {
      co_await send_err(my::er::HANDSHAKE, "08S01", "Bad handshake");
      co_return false;
    }
    if (resp.ssl_request_only) {
      if (!snap_->my_tls) {
        co_await send_err(my::er::HANDSHAKE, "08S01", "Sluice does not offer TLS on this listener");
        co_return false;
      }
      if (!io_.leftover().empty()) {  // bytes after SSLRequest before the handshake: refuse
        co_await send_err(my::er::HANDSHAKE, "08S01", "Bad handshake");
        co_return false;
      }
      tls_ = std::make_unique<net::TlsStream>(sock_, snap_->my_tls, net::TlsStream::Role::Server);
      error_code ec;
      co_await tls_->handshake(ec);
      if (ec) {
        log::info("client {} {}:{}: TLS handshake failed: {}", info_->id, info_->addr, info_->port, ec.message());
        co_return false;
      }
      io_.set_tls(tls_.get());
      info_->tls = true;
      if (!co_await io_.read()) co_return false;
      resp = my::HandshakeResponse{};
      if (!my::parse_handshake_response(io_.bytes(), resp) || resp.ssl_request_only) {
        co_await send_err(my::er::HANDSHAKE, "08S01", "Bad handshake");
        co_return false;
      }
    } else if (cfg_->mysql.tls.mode == config::TlsMode::Require) {
      co_await send_err(3159, "HY000",
                        "Connections using insecure transport are prohibited: Sluice requires TLS on this listener "
                        "(--ssl-mode=REQUIRED or stronger)");
      co_return false;
    }
    caps_ = resp.capabilities & hs.capabilities;
    mariadb_caps_ = resp.mariadb_capabilities & hs.mariadb_capabilities;
    charset_ = resp.charset;
    user_ = resp.user;
    multi_statements_ = (caps_ & my::cap::MULTI_STATEMENTS) != 0;

    if (!co_await authenticate(resp.auth_plugin, resp.auth_response)) co_return false;
    io_.set_limit(cfg_->general.max_packet_size);

    std::string db = (caps_ & my::cap::CONNECT_WITH_DB) ? resp.database : std::string();
    if (db == "sluice") {
      console_caller_.user = user_;
      console_caller_.admin = cfg_->is_admin(user_);
      console_caller_.client_id = info_->id;
      console_caller_.protocol = config::Protocol::Mysql;
      if (!console_caller_.admin && !cfg_->is_stats(user_)) {
        error_code ec;
        auto peer = sock_.remote_endpoint(ec);
        co_await send_err(1044, "42000", fmt::format("Access denied for user '{}'@'{}' to database 'sluice'", user_,
                                                     ec ? std::string("unknown") : peer.address().to_string()));
        co_return false;
      }
      console_ = true;
      info_->set_identity(user_, db);
      {
        std::lock_guard lock(info_->mu);
        info_->pool = "sluice";
      }
      log::info("client {} {}:{} connected to the admin console: user {}", info_->id, info_->addr, info_->port, user_);
      start_compression(resp);
      co_return true;  // serve_admin sends the OK
    }
    if (!co_await choose_pool(db)) co_return false;
    {
      std::lock_guard lock(handle_->mu);
      handle_->user = user_;
    }
    start_compression(resp);
    co_return co_await send_ok();
  }

  // The compressed protocol, when the client asked: from its first command on, whatever the
  // server connections do (they are not compressed). Both flags set: zlib (as servers do).
  void start_compression(const my::HandshakeResponse& resp) {
    if (caps_ & my::cap::COMPRESS) {
      caps_ &= ~my::cap::ZSTD_COMPRESSION;
      io_.compress_after_next_write(my::Codec::Zlib);
    } else if (caps_ & my::cap::ZSTD_COMPRESSION) {
      io_.compress_after_next_write(my::Codec::Zstd, resp.zstd_level ? resp.zstd_level : my::kDefaultZstdLevel);
    }
  }

  // Checks the client's proof for the configured user; switches plugin when needed.
  // A failed login, counted per client address; past the burst, its answer waits.
  awaitable<void> throttle_failed_login() {
    co_await hold_failed_login(ctx_, cfg_->general, info_, sock_.get_executor());
  }

  awaitable<bool> authenticate(std::string client_plugin, std::string response) {
    auto it = snap_->credentials.find(user_);
    std::shared_ptr<const pool::Credentials> found = it == snap_->credentials.end() ? nullptr : it->second;
    bool learned = false;
    if (!found && !cfg_->mysql.auth_user.empty()) {  // a user the server may know (auth_lookup.hpp)
      found = co_await lookup_mysql_user(ctx_, *snap_, user_, sock_.get_executor());
      learned = found != nullptr;
    }
    learned_ = learned;
    if (!found) {
      co_await throttle_failed_login();
      co_await send_err(my::er::ACCESS_DENIED, "28000", access_denied(!response.empty()));
      co_return false;
    }
    creds_ = std::move(found);
    // Client certificates: the listener's tls_client_cert, and `auth = "cert"` users.
    bool cert_user = creds_->client_auth == config::AuthMethod::Cert;
    std::optional<std::string> cn;
    auto verdict = net::check_client_cert(tls_ ? tls_->native_handle() : nullptr, cfg_->mysql.tls.client_cert, cert_user,
                                          user_, cn);
    if (verdict != net::CertVerdict::Ok) {
      co_await throttle_failed_login();
      co_await send_err(my::er::ACCESS_DENIED, "28000",
                        access_denied(!response.empty()) + (verdict == net::CertVerdict::WrongUser
                                                                ? " (client certificate is for another user)"
                                                                : " (a valid client certificate is required)"));
      co_return false;
    }
    if (creds_->client_auth == config::AuthMethod::Trust || cert_user) co_return true;

    std::string plugin = cfg_->mysql.default_auth_plugin;
    if (creds_->plaintext.empty()) plugin = "mysql_native_password";  // a stored hash serves only this one
    if (client_plugin.empty() && (caps_ & my::cap::SECURE_CONNECTION)) client_plugin = "mysql_native_password";
    if (client_plugin != plugin) {
      // AuthSwitchRequest: the same nonce, as servers do.
      std::string p;
      my::build_auth_switch(p, plugin, nonce_ + std::string(1, '\0'));
      if (!co_await io_.reply(p)) co_return false;
      if (!co_await io_.read()) co_return false;
      response = io_.payload();
    }
    bool ok = false;
    if (plugin == "mysql_native_password") {
      if (creds_->mysql_stage2.empty()) {
        ok = response.empty();  // a user without a password
      } else if (auto stage1 = my::native_verify(response, nonce_, creds_->mysql_stage2)) {
        ok = true;
        if (creds_->plaintext.empty()) creds_->remember_mysql_stage1(*stage1);
      }
    } else {
      ok = co_await sha2_auth(response);
    }
    if (!ok && learned && plugin == "mysql_native_password" && !response.empty()) {
      // The password may have changed on the server since Sluice learned it: ask once more.
      ctx_.learned_mysql_users.forget(user_);
      auto fresh = co_await lookup_mysql_user(ctx_, *snap_, user_, sock_.get_executor());
      if (fresh && fresh != creds_ && !fresh->mysql_stage2.empty())
        if (auto stage1 = my::native_verify(response, nonce_, fresh->mysql_stage2)) {
          fresh->remember_mysql_stage1(*stage1);
          creds_ = std::move(fresh);
          ok = true;
        }
    }
    if (!ok) {
      co_await throttle_failed_login();
      co_await send_err(my::er::ACCESS_DENIED, "28000", access_denied(!response.empty()));
      co_return false;
    }
    co_return true;
  }

  awaitable<bool> sha2_auth(const std::string& scramble) {
    if (creds_->plaintext.empty()) co_return scramble.empty();
    if (creds_->sha2_cached()) {
      if (!my::sha2_verify(scramble, nonce_, creds_->plaintext)) co_return false;
      if (!co_await io_.reply(std::string_view("\x01\x03", 2))) co_return false;  // fast auth OK
      co_return true;
    }
    // Full authentication: the client sends its password RSA-encrypted with Sluice's key
    // (asking for the key first, unless it has it).
    if (!co_await io_.reply(std::string_view("\x01\x04", 2))) co_return false;
    if (!co_await io_.read()) co_return false;
    std::string data = io_.payload();
    if (data == std::string_view("\x02", 1)) {
      std::string p = "\x01" + g_rsa->public_pem();
      if (!co_await io_.reply(p)) co_return false;
      if (!co_await io_.read()) co_return false;
      data = io_.payload();
    }
    std::string pw;
    if (tls_) {  // over TLS the client sends the password itself, NUL-terminated
      pw = data;
    } else {
      if (data.size() != 256) co_return false;  // a cleartext password over plain TCP: refused
      auto plain = g_rsa->decrypt_oaep(data);
      if (!plain) co_return false;
      pw = my::xor_with_nonce(*plain, nonce_);
    }
    if (pw.empty() || pw.back() != '\0') co_return false;
    pw.pop_back();
    if (!crypto::equal_constant_time(pw, creds_->plaintext)) co_return false;
    creds_->set_sha2_cached();
    co_return true;
  }

  // Finds the pool for `db` (or a default one without a database) and checks that the server
  // knows the schema, as a direct login would.
  awaitable<bool> choose_pool(const std::string& db) {
    const config::Pool* pc = cfg_->find_pool(config::Protocol::Mysql, db);
    if (!pc && db.empty())
      for (auto& p : cfg_->pools)
        if (p.protocol == config::Protocol::Mysql) {
          pc = &p;
          break;
        }
    if (!pc) {
      log::info("client {} {}:{}: user {} asked for unknown database {}", info_->id, info_->addr, info_->port, user_, db);
      co_await send_err(my::er::BAD_DB, "42000", fmt::format("Unknown database '{}'", db));
      co_return false;
    }
    served_db_ = served_database(*pc, db);
    if (ctx_.controls.disabled(served_db_)) {
      co_await send_err(1105, "HY000", fmt::format("Sluice: database '{}' is disabled by an administrator (ENABLE on the admin console)", db));
      co_return false;
    }
    stats_ = ctx_.stats.get("mysql", served_db_);
    info_->set_identity(user_, db);
    {
      std::lock_guard lock(info_->mu);
      info_->pool = served_db_;
    }
    mode_ = pc->mode;
    bind_pool(*pc);
    schema_ = db;
    if (pc->database != "*" && !pc->server_database.empty() && db == pc->database) schema_ = pc->server_database;
    if (schema_.empty() || pool_->schema_known(schema_)) co_return true;
    // First client of this schema: let a server confirm it (COM_INIT_DB) before saying OK.
    if (!co_await attach()) co_return false;
    if (server_->schema != schema_) {
      std::string cmd;
      my::build_command(cmd, my::com::INIT_DB, schema_);
      auto r = co_await exchange(cmd, ResponseKind::Single, false);
      if (!r) co_return false;
      if (r->error) {
        co_await send_err(r->err.code, r->err.sqlstate, r->err.message);
        co_await leave();
        co_return false;
      }
      server_->schema = schema_;
    }
    pool_->add_schema(schema_);
    maybe_detach();
    co_return true;
  }

  // ---- attach / detach -------------------------------------------------------------------

  // Makes sure a server connection works for this client, its state synced. On failure the
  // client has had its ERR; returns false only when the client connection must end.
  // ---- routing ------------------------------------------------------------------------------

  std::shared_ptr<pool::Pool> member_pool(int m) {
    auto& p = member_pools_[static_cast<std::size_t>(m)];
    if (!p) {
      p = ctx_.pools.get(pool_cfg_, cluster_->view()->members[static_cast<std::size_t>(m)].endpoint, creds_, "",
                         settings_);
      if (learned_) p->set_credentials(creds_);
    }
    return p;
  }

  // Whether the command in io_ may run on a replica (statements classified once, at prepare).
  bool command_is_read() {
    const auto& p = io_.payload();
    if (p.empty()) return false;
    auto cmd = static_cast<std::uint8_t>(p[0]);
    sql::Classification cls;
    if (cmd == my::com::QUERY || cmd == my::com::STMT_PREPARE) {
      cls = sql::classify(std::string_view(p).substr(1), sql::Dialect::Mysql, cluster_->config().write_functions);
    } else if (cmd == my::com::STMT_EXECUTE) {
      std::uint32_t id = 0;
      ClientStmt* cs = find_stmt(io_.bytes(), id);
      return cs && cs->read;
    } else {
      return false;
    }
    if (cls.hint == sql::Hint::Primary) return false;
    if (cls.hint == sql::Hint::Replica) return true;
    // SET TRANSACTION READ ONLY makes the next transaction read-only: it and that transaction's
    // START go to one replica (the SET holds the connection for the next command).
    if (cls.kind == sql::StatementKind::SetTransaction && cls.read_only) return true;
    if (cls.kind == sql::StatementKind::Begin && ro_next_tx_) return true;
    return cls.read() || (cls.kind == sql::StatementKind::Begin && cls.read_only);
  }

  // After each statement, the read-your-writes token: the GTID the server reported for a
  // commit; without one (a server that does not report it), a sentinel no replica covers, so the
  // client's reads stay on the primary. Writes inside a transaction count at its COMMIT.
  void after_statement(sql::StatementKind kind, bool was_read) {
    if (!split_ || last_.error || cluster_->config().consistency != config::Consistency::ReadYourWrites) return;
    if (gtid_seen_) {
      pending_write_ = false;
      return;
    }
    using K = sql::StatementKind;
    if (kind == K::Commit) {
      if (pending_write_) token_ = router::Position::unreachable();
      pending_write_ = false;
      return;
    }
    if (kind == K::Rollback) pending_write_ = false;
    if (was_read || kind != K::Write) return;  // reads sent to the primary (hints, fallback) are not writes
    if (status_ & my::status::IN_TRANS) pending_write_ = true;
    else token_ = router::Position::unreachable();
  }

  void choose_route() {
    bool read = command_is_read();
    // After a failed position check, give the replica a moment before asking again.
    bool may_verify = std::chrono::steady_clock::now() - verify_failed_at_ > std::chrono::milliseconds(50);
    auto d = cluster_->route(read, token_, may_verify);
    read_route_ = d.replica;
    verify_token_ = d.verify;
    member_ = d.member;
    pool_ = member_pool(d.member);
    (read ? handle_->routed_reads : handle_->routed_writes).fetch_add(1, std::memory_order_relaxed);
  }

  awaitable<bool> attach() {
    if (server_ && read_route_ && !(status_ & my::status::IN_TRANS) && !pinned_ && !cursor_open_ && !long_data_ &&
        !command_is_read())
      detach(true);  // held on a replica (warnings), but this command belongs on the primary
    if (server_) co_return true;
    if (ctx_.controls.any_paused()) co_await wait_while_paused();
    if (ctx_.generation() != generation_) refresh_config();
    if (split_) choose_route();
    auto ex = sock_.get_executor();
    auto conn = pool_->try_lease_local(ex);
    std::optional<observe::Clock::time_point> wait_start;
    if (!conn) {
      wait_start = observe::Clock::now();
      info_->set_state(observe::ClientState::Waiting);
    }
    if (!conn && read_route_) {
      // A replica that cannot be reached is out at once; the statement goes to the primary.
      auto r = co_await pool_->lease(ex, cfg_->general.query_wait_timeout);
      if (r.conn) {
        conn = std::move(r.conn);
      } else if (!r.timed_out) {
        cluster_->report_failure(member_);
        read_route_ = false;
        member_ = std::max(0, cluster_->pick_write());
        pool_ = member_pool(member_);
      }
    }
    if (!conn) {
      auto r = co_await pool_->lease(ex, cfg_->general.query_wait_timeout);
      if (!r.conn) {
        co_await report_lease_failure(r);
        co_return false;
      }
      conn = std::move(r.conn);
    }
    if (verify_token_) {
      // No replica was known to have this client's last write: ask the chosen one directly.
      verify_token_ = false;
      auto pos = co_await router::fetch_replica_position(*conn, config::Protocol::Mysql);
      if (pos) cluster_->note_position(member_, *pos);
      if (!pos || !pos->covers(token_)) {
        verify_failed_at_ = std::chrono::steady_clock::now();
        pool_->release(std::move(conn), pos.has_value());
        read_route_ = false;
        member_ = std::max(0, cluster_->pick_write());
        pool_ = member_pool(member_);
        auto r = co_await pool_->lease(ex, cfg_->general.query_wait_timeout);
        if (!r.conn) {
          co_await report_lease_failure(r);
          co_return false;
        }
        conn = std::move(r.conn);
      }
    }
    server_ = std::move(conn);
    server_buf_.clear();
    // An answer about to be captured: the position its server has surely applied before running
    // it (the last health check's, or a verification's; on the primary also this client's write).
    route_position_.parts.clear();
    if (split_ && !fill_key_.empty()) route_position_ = cluster_->applied(member_, !read_route_, token_);
    if (split_) cluster_->counters(member_).outstanding.fetch_add(1, std::memory_order_relaxed);
    if (wait_start && stats_) stats_->wait(observe::micros_since(*wait_start));
    info_->set_state(observe::ClientState::Active);
    info_->server_id.store(server_->id, std::memory_order_relaxed);
    server_->client_id.store(info_->id, std::memory_order_relaxed);
    {
      std::lock_guard lock(handle_->mu);
      handle_->attached = true;
      handle_->endpoint = server_->endpoint;
      handle_->thread_id = server_->backend_pid;
      handle_->last_thread_id = server_->backend_pid;
      handle_->last_attach = observe::coarse_epoch_us();  // no shared counter on the hot path
    }
    if (!co_await sync_state()) co_return false;
    co_return true;
  }

  // Brings the server connection's session to this client's: reset if it holds state Sluice
  // cannot describe, then schema, multi-statement option and variables.
  awaitable<bool> sync_state() {
    if (server_->dirty && !co_await reset_server()) co_return co_await server_lost();
    if (!schema_.empty() && server_->schema != schema_) {
      std::string cmd;
      my::build_command(cmd, my::com::INIT_DB, schema_);
      auto r = co_await exchange(cmd, ResponseKind::Single, false);
      if (!r) co_return co_await server_lost();
      if (r->error) {  // the schema was dropped meanwhile
        co_await send_err(r->err.code, r->err.sqlstate, r->err.message);
        detach(true);
        co_return false;
      }
      server_->schema = schema_;
    }
    bool server_multi = (server_->capabilities & my::cap::MULTI_STATEMENTS) != 0;
    if (server_->multi_statements.value_or(server_multi) != multi_statements_) {
      std::string cmd;
      my::build_command(cmd, my::com::SET_OPTION);
      my::put_u16(cmd, multi_statements_ ? 0 : 1);
      auto r = co_await exchange(cmd, ResponseKind::Single, false);
      if (!r || r->error) co_return co_await server_lost();
      server_->multi_statements = multi_statements_;
    }
    if (server_->params.fingerprint != vars_.fingerprint) {
      std::string set;
      for (auto& [k, v] : vars_.items) {
        auto* cur = server_->params.find(k);
        if (cur && *cur == v) continue;
        set += set.empty() ? "SET SESSION " : ", ";
        set += k + " = " + (k == "character_set_results" && (v.empty() || v == "NULL") ? "NULL" : sql_value(v));
      }
      for (auto& [k, v] : server_->params.items)
        if (!vars_.find(k)) {
          set += set.empty() ? "SET SESSION " : ", ";
          auto* base = server_->initial.find(k);  // the handshake's character set
          if (!base) set += k + " = DEFAULT";
          else if (base->empty()) set += k + " = NULL";
          else set += k + " = " + sql_value(*base);
        }
      if (!set.empty()) {
        std::string cmd;
        my::build_command(cmd, my::com::QUERY, set);
        auto r = co_await exchange(cmd, ResponseKind::Query, false);
        if (!r) co_return co_await server_lost();
        if (r->error) {
          log::warn("cannot re-apply session state on {}: {} ({})", server_->endpoint.text(), r->err.message, set);
          co_await send_err(r->err.code, r->err.sqlstate, r->err.message);
          server_->dirty = true;
          detach(true);
          co_return false;
        }
      }
      server_->params = vars_;
    }
    co_return true;
  }

  // The server connection broke while Sluice prepared it for the client's command: the command
  // did not run. A read may run elsewhere (the caller retries); otherwise the client is told.
  awaitable<bool> server_lost() {
    detach(false);
    if (retry_allowed_) {
      retry_pending_ = true;
      co_return false;
    }
    if (mode_ == config::PoolMode::Session)
      close_client();  // as the server's own loss would look: the client library reports 2013
    else
      co_await send_err(
          my::er::QUERY_INTERRUPTED, "70100",
          "Sluice lost its server connection before running this statement; nothing was changed, run it again");
    co_return false;
  }

  // COM_RESET_CONNECTION, then tracking again (the reset restores global session settings).
  awaitable<bool> reset_server() {
    std::string cmd;
    my::build_command(cmd, my::com::RESET_CONNECTION);
    auto r = co_await exchange(cmd, ResponseKind::Single, false);
    if (!r || r->error) co_return false;
    cmd.clear();
    my::build_command(cmd, my::com::QUERY,
                      "SET SESSION session_track_system_variables = '*', session_track_schema = ON, "
                      "session_track_state_change = ON");
    r = co_await exchange(cmd, ResponseKind::Query, false);
    if (!r || r->error) co_return false;
    server_->params = {};
    server_->multi_statements.reset();
    server_->prepared.clear();
    server_->statement_ids.clear();
    server_->dirty = false;
    co_return true;
  }

  // Returns the server connection to the pool (reusable: its state is known).
  void detach(bool reusable) {
    if (!server_) return;
    info_->set_state(observe::ClientState::Idle);
    info_->server_id.store(0, std::memory_order_relaxed);
    {
      std::lock_guard lock(handle_->mu);
      handle_->attached = false;
      handle_->thread_id = 0;
    }
    if (!server_buf_.empty()) reusable = false;  // unread server bytes: state unknown
    if (split_) cluster_->counters(member_).outstanding.fetch_sub(1, std::memory_order_relaxed);
    pool_->release(std::move(server_), reusable);
    server_.reset();
  }

  bool kill_in_flight() {
    std::lock_guard lock(handle_->mu);
    return handle_->kill_holds > 0;
  }

  // At a transaction boundary in transaction (and statement) mode.
  void maybe_detach() {
    if (!server_ || mode_ == config::PoolMode::Session) return;
    if ((status_ & my::status::IN_TRANS) || pinned_ || cursor_open_ || long_data_ || hold_next_) return;
    if (kill_in_flight()) return;
    detach(true);
  }

  // The client leaves: the server connection goes back clean, or is closed.
  awaitable<void> leave() {
    if (!server_) co_return;
    bool needs_reset = (status_ & my::status::IN_TRANS) || pinned_ || cursor_open_ || long_data_ || hold_next_ ||
                       mode_ == config::PoolMode::Session;
    if (broken_) {
      detach(false);
      co_return;
    }
    if (needs_reset) server_->dirty = true;
    if (server_->dirty && !co_await reset_server()) {
      detach(false);
      co_return;
    }
    detach(true);
  }

  // ---- talking to the server ---------------------------------------------------------------

  // Sends one command (sequence 0) and follows the response. With `to_client`, the response
  // streams to the client; otherwise it is consumed here. nullopt when the server connection
  // broke (it is then detached and closed).
  awaitable<std::optional<ResponseSummary>> exchange(std::string_view payload, ResponseKind kind, bool to_client,
                                                     std::uint32_t client_stmt_id = 0, std::string* capture = nullptr) {
    srv_out_.clear();
    for (auto id : pending_closes_) {
      std::string c;
      my::build_command(c, my::com::STMT_CLOSE);
      my::put_u32(c, id);
      my::append_packets(srv_out_, c, 0);
    }
    pending_closes_.clear();
    my::append_packets(srv_out_, payload, 0);
    error_code ec;
    // The hot path: plaintext goes straight to the socket (no extra coroutine frame).
    if (server_->tls) co_await server_->tls->write(asio::buffer(srv_out_), ec);
    else co_await asio::async_write(server_->sock, asio::buffer(srv_out_), asio::redirect_error(use_awaitable, ec));
    if (ec) co_return co_await broken_server(to_client, false);
    tracker_.start(kind, server_->capabilities, to_client ? caps_ : server_->capabilities, client_stmt_id);
    bool sent_any = false;
    for (;;) {
      cli_out_.clear();
      std::size_t used = tracker_.feed(my::as_bytes(server_buf_), cli_out_);
      server_buf_.erase(0, used);
      if (tracker_.malformed()) co_return co_await broken_server(to_client, sent_any);
      std::optional<std::uint8_t> end_seq;
      if (tracker_.done() && tracker_.summary.error && ResponseTracker::ends_connection(tracker_.summary.err.code) &&
          (!to_client || mode_ != config::PoolMode::Session)) {
        // The server ends this connection (KILL, shutdown, idle timeout): in a pooled mode that
        // is not the client's to see; the command is answered as for any lost server connection.
        std::size_t err = tracker_.err_packet_size();
        end_seq = static_cast<std::uint8_t>(cli_out_[cli_out_.size() - err + 3]);
        cli_out_.resize(cli_out_.size() - err);
        server_end_ = fmt::format("{} {}", tracker_.summary.err.code, tracker_.summary.err.message);
      }
      if (kind == ResponseKind::Prepare && tracker_.done() && tracker_.summary.error &&
          tracker_.summary.err.code == kTooManyPrepared && !sent_any && evictable()) {
        // The server's max_prepared_stmt_count: the caller makes room and retries; the error
        // reaches the client only if that does not help (held_error_).
        held_error_ = std::move(cli_out_);
        cli_out_.clear();
      }
      if (capture && capture->size() <= capture_limit_) capture->append(cli_out_);
      if (to_client && !cli_out_.empty()) {
        sent_any = true;
        if (stats_) stats_->bytes_out.fetch_add(cli_out_.size(), std::memory_order_relaxed);
        if (!co_await io_.write_raw(cli_out_)) client_gone_ = true;  // keep draining the server so the connection stays usable
      }
      if (end_seq) co_return co_await broken_server(to_client, sent_any, end_seq);
      if (tracker_.done()) break;
      if (tracker_.summary.local_infile && used == 0 && server_buf_.empty()) {
        if (!co_await forward_infile()) co_return co_await broken_server(to_client, true);
        tracker_.infile_sent();
        continue;
      }
      if (rbuf_.empty()) rbuf_.resize(65536);
      std::size_t n = 0;
      if (server_->tls) n = co_await server_->tls->read_some(asio::buffer(rbuf_), ec);
      else n = co_await server_->sock.async_read_some(asio::buffer(rbuf_), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return co_await broken_server(to_client, sent_any);
      server_buf_.append(rbuf_.data(), n);
    }
    if (!server_buf_.empty()) co_return co_await broken_server(to_client, true);  // more than one response
    co_return tracker_.summary;
  }

  // LOCAL INFILE: the client's packets go to the server until the empty one.
  awaitable<bool> forward_infile() {
    for (;;) {
      if (!co_await io_.read()) co_return false;
      srv_out_.clear();
      my::append_packets(srv_out_, io_.payload(), io_.seq());
      error_code ec;
      co_await server_->channel().write(asio::buffer(srv_out_), ec);
      if (ec) co_return false;
      if (io_.payload().empty()) co_return true;
    }
  }

  // The server connection failed (or ended) under a command. A read outside a transaction whose
  // answer has not started is run again by the caller (retry_pending_). Otherwise, in a pooled
  // mode the client keeps its connection and gets an ERR saying what happened, in place of the
  // rest of the answer when the protocol allows one there (`err_seq`: the sequence id it takes).
  awaitable<std::optional<ResponseSummary>> broken_server(bool to_client, bool mid_response,
                                                          std::optional<std::uint8_t> err_seq = std::nullopt) {
    std::string server = server_ ? server_->endpoint.text() : std::string("?");
    if (server_)
      log::warn("server connection {} (thread {}) failed or desynchronized{}; closing it", server, server_->backend_pid,
                server_end_.empty() ? "" : ": the server said " + server_end_);
    server_end_.clear();
    if (split_) cluster_->report_failure(member_);
    std::optional<std::uint8_t> seq = !mid_response ? std::optional<std::uint8_t>(1)
                                      : err_seq     ? err_seq
                                                    : tracker_.error_seq();
    broken_ = true;
    detach(false);
    broken_ = false;
    server_lost_ = true;
    // The session state Sluice tracked lives on; whatever the server held (a transaction, pinned
    // state) is gone, and the client is told.
    bool had_tx = (status_ & my::status::IN_TRANS) || pinned_;
    status_ &= static_cast<std::uint16_t>(~my::status::IN_TRANS);
    pinned_ = cursor_open_ = long_data_ = hold_next_ = false;
    if (to_client && retry_allowed_ && !mid_response) {
      retry_pending_ = true;  // nothing reached the client: the caller runs it elsewhere
      co_return std::nullopt;
    }
    if (!to_client) co_return std::nullopt;
    if (mode_ == config::PoolMode::Session) {  // the client owned that server session
      // Closed, as the server's loss closes a direct connection: the client library reports
      // 2013 "Lost connection" itself (an error packet with 2013 would read as malformed).
      close_client();
      co_return std::nullopt;
    }
    if (!seq) {
      log::warn("mysql client {}: its server connection was lost in the middle of a packet; closing the client",
                handle_->id);
      close_client();
      co_return std::nullopt;
    }
    std::string p;
    my::build_err(p, my::er::QUERY_INTERRUPTED, "70100",
                  "Sluice: " + loss_text(classify_loss(had_tx, cmd_read_), server));
    co_await io_.write(p, *seq);
    co_return std::nullopt;
  }

  // Applies what the server reported about the session (OK packets' session state).
  void absorb(const ResponseSummary& s) {
    if (s.has_status) {
      status_ = static_cast<std::uint16_t>(s.status & (my::status::IN_TRANS | my::status::AUTOCOMMIT |
                                                       my::status::IN_TRANS_READONLY | my::status::NO_BACKSLASH_ESCAPES));
    }
    if (s.changes.schema) {
      schema_ = *s.changes.schema;
      if (server_) server_->schema = schema_;
    }
    bool explained = s.changes.schema.has_value();
    for (auto& [k, v] : s.changes.variables) {
      explained = true;
      if (k == "last_gtid") {  // the client's last write: its reads need a replica that has it
        if (auto pos = router::parse_gtid_pos(v); pos && !pos->empty()) {
          token_ = *pos;
          gtid_seen_ = true;
        }
        continue;
      }
      if (k.rfind("session_track_", 0) == 0) {
        pin("session tracking changed by the client");
        continue;
      }
      if (!syncable(k)) continue;
      vars_.set(k, v);
      if (server_) server_->params.set(k, v);
    }
    if (s.changes.state_changed && !explained) pin("session state (user variables, temporary tables or prepared statements)");
  }

  // ---- result cache ---------------------------------------------------------------------------

  // 1: answered from the cache; 2: a miss this session fills (capture the answer); 0: neither.
  // `params`: for COM_STMT_EXECUTE, the parameter block (null bitmap, types, values): binary
  // answers are keyed apart from text ones and by every parameter byte.
  awaitable<int> try_cache(std::string_view text, std::optional<std::string_view> params = std::nullopt) {
    auto cand = ctx_.cache_policy()->consider(text, sql::Dialect::Mysql, schema_, user_);
    if (!cand) co_return 0;
    // Key: normalized text + schema + user + what shapes the answer's bytes and values.
    std::string key =
        fmt::format("{}\x1f{}\x1f{}\x1f{:x}/{:x}\x1f{}\x1f{:x}", cand->normalized, schema_, user_,
                    caps_ & (kFormatCaps | my::cap::SESSION_TRACK), mariadb_caps_, charset_, vars_.fingerprint);
    if (params) key.append("\x1f" "binary\x1f").append(*params);
    const router::Position* token =
        split_ && cluster_->config().consistency == config::Consistency::ReadYourWrites ? &token_ : nullptr;
    auto found = co_await cache_lookup(*ctx_.cache, key, pool_->name(), sock_.get_executor(),
                                       cache_wait_limit(cfg_->general), token);
    if (found.hit) {
      // Stored as sent after a command with sequence 0, so the ids already fit.
      error_code ec;
      if (!co_await io_.write_raw(*found.hit)) ec = asio::error::broken_pipe;
      if (stats_) stats_->bytes_out.fetch_add(found.hit->size(), std::memory_order_relaxed);
      co_return ec ? 0 : 1;
    }
    if (!found.fill) co_return 0;  // another client's fill is slow: ask the server, keep nothing
    fill_key_ = std::move(key);
    cache_ttl_ = cand->ttl;
    cache_tables_.clear();
    for (auto& tbl : cand->tables) cache_tables_.push_back(cache::table_key(tbl));
    fill_ticket_ = ctx_.cache->fill_ticket(cache_tables_, pool_cfg_.cluster);
    capture_limit_ = snap_->config->cache.max_entry_bytes;
    co_return 2;
  }



  void end_fill() {
    if (fill_key_.empty() || !ctx_.cache) return;
    ctx_.cache->end_fill(fill_key_);
    fill_key_.clear();
  }

  // Keeps a complete answer without error or warnings that left no transaction open. A replica's
  // answer is stamped with the GTID position the replica had before it ran the query: served only
  // to clients whose writes that covers, kept only if it covers the writes to its tables.
  void finish_capture(bool relayed) {
    if (relayed && !server_lost_ && !last_.error && last_.warnings == 0 && !last_.local_infile &&
        !(status_ & my::status::IN_TRANS) && capture_.size() <= capture_limit_ && !capture_.empty()) {
      cache::Origin origin{split_ && read_route_, std::move(route_position_)};
      ctx_.cache->put_if_current(fill_key_, std::move(capture_), cache_tables_, cache_ttl_, fill_ticket_, origin,
                                 pool_->name());
    }
    capture_.clear();
    end_fill();
  }

  // Writes drop the tables they touch: at once outside a transaction, at COMMIT inside one.
  void note_for_invalidation(sql::StatementKind kind, std::string_view text) {
    if (!ctx_.cache_enabled() || last_.error) return;
    using K = sql::StatementKind;
    if (kind == K::Rollback) {
      pending_invalidation_.clear();
      invalidate_all_ = false;
      return;
    }
    if (kind == K::Write) {
      auto refs = sql::tables(text, sql::Dialect::Mysql);
      if (!refs.complete) invalidate_all_ = true;
      for (auto& t : refs.names) pending_invalidation_.push_back(cache::table_key(t));
    }
    if (status_ & my::status::IN_TRANS) return;
    if (pending_invalidation_.empty() && !invalidate_all_) return;
    // Replicas' answers to these tables are kept again once they cover the commit's GTID (or,
    // when the server did not report one, once every replica surely has it).
    auto& marks = ctx_.cache->write_marks();
    std::chrono::steady_clock::time_point horizon{};
    if (split_) {
      horizon = cluster_->replayed_everywhere_by();
      marks.begin(pool_cfg_.cluster, pending_invalidation_, invalidate_all_, horizon);
    }
    if (invalidate_all_) ctx_.cache->invalidate_all();
    else
      for (auto& t : pending_invalidation_) ctx_.cache->invalidate_table(t);
    if (split_)
      marks.settle(pool_cfg_.cluster, pending_invalidation_, invalidate_all_,
                   gtid_seen_ && !server_lost_ ? token_ : router::Position::unreachable(), horizon);
    pending_invalidation_.clear();
    invalidate_all_ = false;
  }

  // Per-statement server state the next command may read: warnings (SHOW WARNINGS) and a
  // generated id (LAST_INSERT_ID()).
  static bool holds_for_next(const ResponseSummary& r) {
    return r.warnings > 0 || (!r.result_set && !r.error && r.last_insert_id != 0);
  }

  void pin(const char* why) {
    if (!pinned_) log::debug("mysql client {} pinned to its server connection: {}", handle_->id, why);
    pinned_ = true;
    if (server_) server_->dirty = true;
  }

  // ---- commands ----------------------------------------------------------------------------

  // Session mode: while the client owes its next command, the server's socket is watched with a
  // plain callback. A MySQL server sends nothing unasked but the end of the session (wait_timeout,
  // KILL, shutdown: an error packet such as 4031 or 1927 when it has one, then EOF): that is
  // passed on and the client closed, as directly, instead of the client learning of it at its
  // next command. In pooled modes the server connection is Sluice's: a loss there is answered at
  // the client's next command and the client stays (see "Failures" in docs/design-decisions.md).
  void watch_server() {
    server_watch_ = true;
    server_->sock.async_wait(
        tcp::socket::wait_read, [this, alive = std::weak_ptr<bool>(alive_), gen = ++watch_gen_](error_code ec) {
          if (alive.expired() || gen != watch_gen_) return;
          server_watch_ = false;
          if (ec || !server_) return;
          char buf[4096];
          ssize_t n = ::recv(server_->sock.native_handle(), buf, sizeof buf, MSG_DONTWAIT);
          if (n > 0) {
            error_code e;
            std::string out = io_.framed(std::string_view(buf, static_cast<std::size_t>(n)));
            if (tls_) tls_->write_now(asio::buffer(out), e);
            else ::send(sock_.native_handle(), out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
          }
          log::info("client {}: server connection {} ended by the server while the client was idle", info_->id,
                    server_->id);
          broken_ = true;
          close_client();
        });
  }
  void unwatch_server() {
    if (!server_watch_) return;
    ++watch_gen_;
    server_watch_ = false;
    if (!server_) return;
    error_code ignored;
    server_->sock.cancel(ignored);
  }

  awaitable<bool> read_command() {
    std::weak_ptr<bool> alive = alive_;
    bool idle_timer = !server_ && cfg_->general.client_idle_timeout.count() > 0;
    if (idle_timer) {
      timer_.expires_after(cfg_->general.client_idle_timeout);
      timer_.async_wait([this, alive](error_code ec) {
        if (!ec && alive.lock() && idle_wait_) close_client();
      });
    }
    idle_wait_ = !server_;
    if (server_ && !server_->tls && mode_ == config::PoolMode::Session) watch_server();
    bool ok = co_await io_.read();
    idle_wait_ = false;
    unwatch_server();
    if (idle_timer) timer_.cancel();
    if (ok && stats_) stats_->bytes_in.fetch_add(io_.payload().size() + 4, std::memory_order_relaxed);
    if (!ok) {
      if (io_.error() == "message larger than the limit")
        co_await send_err(my::er::NET_PACKET_TOO_LARGE, "08S01", "Got a packet bigger than 'max_packet_size' bytes");
      co_return false;
    }
    if (io_.payload().empty()) {
      co_await send_err(my::er::MALFORMED, "HY000", "Malformed communication packet (empty command)");
      co_return false;
    }
    co_return true;
  }

  awaitable<bool> dispatch() {
    std::uint8_t cmd = static_cast<std::uint8_t>(io_.payload()[0]);
    switch (cmd) {
      case my::com::QUIT:
        co_return false;
      case my::com::PING:
        co_return co_await send_ok();
      case my::com::QUERY:
        co_return co_await com_query();
      case my::com::INIT_DB:
      case my::com::FIELD_LIST:
      case my::com::STATISTICS:
        co_return co_await forward_simple(cmd);
      case my::com::STMT_PREPARE:
        co_return co_await com_prepare();
      case my::com::STMT_EXECUTE:
        co_return co_await com_execute();
      case my::com::STMT_SEND_LONG_DATA:
        co_return co_await com_long_data();
      case my::com::STMT_CLOSE:
        co_return com_close();
      case my::com::STMT_RESET:
        co_return co_await com_stmt_reset();
      case my::com::STMT_FETCH:
        co_return co_await com_fetch();
      case my::com::SET_OPTION:
        co_return co_await com_set_option();
      case my::com::RESET_CONNECTION:
        co_return co_await com_reset_connection();
      case my::com::CHANGE_USER:
        co_return co_await com_change_user();
      case my::com::PROCESS_KILL: {
        my::Reader r(io_.bytes());
        r.u8();
        std::uint32_t id = r.u32();
        if (!r.ok()) break;
        co_return co_await kill(sql::MysqlKill{false, id});
      }
      default:
        break;
    }
    co_return co_await send_err(my::er::UNKNOWN_COM, "08S01", "Unknown command");
  }

  // Runs the client's command (already in io_.payload(), possibly rewritten in `payload`) on
  // the attached server and streams the response.
  awaitable<bool> relay(std::string_view payload, ResponseKind kind, std::uint32_t client_stmt_id = 0,
                        std::string* capture = nullptr) {
    if (!co_await attach()) co_return !client_gone_ && sock_.is_open();
    auto r = co_await exchange(payload, kind, true, client_stmt_id, capture);
    if (!r) {
      last_ = ResponseSummary{};  // what the statement did is unknown (a write may have landed)
      co_return sock_.is_open();
    }
    absorb(*r);
    last_ = std::move(*r);
    co_return !client_gone_;
  }

  awaitable<bool> com_query() {
    auto text = std::string_view(io_.payload()).substr(1);
    auto info = sql::inspect_mysql(text);
    if (info.kill) co_return co_await kill(*info.kill);
    bool relayed = false;
    bool was_read = split_ && command_is_read();
    auto cls_kind = (split_ || ctx_.cache_enabled()) ? sql::classify(text, sql::Dialect::Mysql).kind : sql::StatementKind::Write;
    cmd_read_ = cls_kind == sql::StatementKind::Read;
    server_lost_ = false;
    gtid_seen_ = false;
    // Result cache: a read outside a transaction may be answered from memory.
    std::string* capture = nullptr;
    if (ctx_.cache_enabled() && cls_kind == sql::StatementKind::Read && !server_ && !(status_ & my::status::IN_TRANS) && !pinned_) {
      int served = co_await try_cache(text);
      if (served == 1) co_return true;
      if (served == 2) {
        capture_.clear();
        capture = &capture_;
      }
    }
    // A read outside a transaction runs again elsewhere if its server dies before any of its
    // answer reached the client.
    for (int attempt = 0;; ++attempt) {
      retry_allowed_ =
          attempt < kMaxReadRetries && split_ && !server_ && !(status_ & my::status::IN_TRANS) && command_is_read();
      retry_pending_ = false;
      if (capture) capture_.clear();
      relayed = co_await relay(io_.payload(), ResponseKind::Query, 0, capture);
      retry_allowed_ = false;
      if (!retry_pending_) break;
      log::warn("mysql client {}: server lost before answering a read; running it again", handle_->id);
    }
    if (capture) finish_capture(relayed);
    if (!relayed) co_return false;
    note_for_invalidation(cls_kind, text);
    ro_next_tx_ = was_read && cls_kind == sql::StatementKind::SetTransaction;
    after_statement(cls_kind, was_read);
    if (info.pins && !last_.error && !server_lost_) pin(info.pins);
    // Held for the next command: SET TRANSACTION (applies to the next transaction) and
    // statements that left warnings (SHOW WARNINGS reads them on the same connection).
    hold_next_ = (info.next_transaction_setting && !last_.error) || holds_for_next(last_);
    maybe_detach();
    co_return true;
  }

  awaitable<bool> forward_simple(std::uint8_t cmd) {
    auto kind = cmd == my::com::STATISTICS ? ResponseKind::Raw1
                : cmd == my::com::FIELD_LIST ? ResponseKind::FieldList
                                             : ResponseKind::Single;
    std::string arg(std::string_view(io_.payload()).substr(1));
    if (!co_await relay(io_.payload(), kind)) co_return false;
    if (cmd == my::com::INIT_DB && !last_.error) {
      schema_ = arg;
      if (server_) server_->schema = arg;
    }
    maybe_detach();
    co_return true;
  }

  // Statements the server connection holds can be closed to make room when no cursor or long
  // data of this client lives on one (they are prepared again on demand).
  bool evictable() const { return server_ && !server_->statement_ids.empty() && !cursor_open_ && !long_data_; }

  // The server refused a prepare for its max_prepared_stmt_count (1461): close every statement
  // this server connection holds (the closes go out before the next command) so the retry fits.
  bool evict_prepared() {
    if (!evictable()) return false;
    for (auto& [id, server_id] : server_->statement_ids) pending_closes_.push_back(server_id);
    server_->statement_ids.clear();
    server_->prepared.clear();
    held_error_.clear();
    log::debug("client {}: the server's prepared statement limit: closed Sluice's cached statements on its connection",
               info_->id);
    return true;
  }

  // Prepares `cs` on the attached server unless it has it. false: the client got an ERR (or
  // the server broke).
  awaitable<bool> ensure_prepared(ClientStmt& cs) {
    auto id = cs.stmt->id;
    if (server_->statement_ids.count(id)) {
      server_->prepared.touch(id);
      co_return true;
    }
    std::string cmd;
    my::build_command(cmd, my::com::STMT_PREPARE, cs.query);
    auto r = co_await exchange(cmd, ResponseKind::Prepare, false);
    if (r && r->error && r->err.code == kTooManyPrepared && evict_prepared())
      r = co_await exchange(cmd, ResponseKind::Prepare, false);
    if (!r) co_return false;
    if (r->error || !r->prepare) {
      co_await send_err(r->err.code, r->err.sqlstate, r->err.message);
      co_return false;
    }
    remember_server_stmt(id, r->prepare->statement_id);
    co_return true;
  }

  void remember_server_stmt(std::uint64_t id, std::uint32_t server_id) {
    server_->statement_ids[id] = server_id;
    if (auto evicted = server_->prepared.insert(id)) {
      auto it = server_->statement_ids.find(evicted);
      if (it != server_->statement_ids.end()) {
        pending_closes_.push_back(it->second);
        server_->statement_ids.erase(it);
      }
    }
  }

  awaitable<bool> com_prepare() {
    if (stmts_.size() >= cfg_->general.max_client_prepared_statements) {
      co_await send_err(1461, "42000",
                        fmt::format("Can't create more than max_client_prepared_statements statements (current value: {})",
                                    cfg_->general.max_client_prepared_statements));
      co_return true;
    }
    std::string query(std::string_view(io_.payload()).substr(1));
    // Keyed by everything that shapes the response: schema, format capabilities, handshake
    // character set and the session variables (character_set_results changes the metadata).
    auto stmt = statements().intern(query, fmt::format("{}\x01{:x}/{:x}\x01{}\x01{:x}", schema_, caps_ & kFormatCaps,
                                                       mariadb_caps_, charset_, vars_.fingerprint));
    std::uint32_t client_id = next_stmt_id_++;
    if (auto cached = cached_prepare(*stmt)) {
      // Answered here: the server connection that runs it later prepares it on demand.
      my::PrepareOk pok;
      my::parse_prepare_ok(my::as_bytes(*cached).subspan(4, my::payload_length(reinterpret_cast<const std::uint8_t*>(cached->data()))), pok);
      stmts_[client_id] = ClientStmt{stmt, query, pok.params, pok.columns, {}, statement_is_read(query), statement_kind(query)};
      std::string out = *cached;
      my::patch_statement_id(reinterpret_cast<std::uint8_t*>(out.data() + 4), client_id);
      out = rewrite_prepare_for_client(out);
      co_return co_await io_.write_raw(out);
    }
    std::string capture;
    held_error_.clear();
    if (!co_await relay(io_.payload(), ResponseKind::Prepare, client_id, &capture)) co_return false;
    if (!held_error_.empty()) {  // 1461 held back by exchange(): make room and try once more
      std::string refused = std::move(held_error_);
      if (!evict_prepared()) {
        if (!co_await io_.write_raw(refused)) co_return false;
      } else {
        capture.clear();
        if (!co_await relay(io_.payload(), ResponseKind::Prepare, client_id, &capture)) co_return false;
        if (!held_error_.empty() && !co_await io_.write_raw(held_error_)) co_return false;
      }
      held_error_.clear();
    }
    if (!last_.error && last_.prepare && server_) {
      remember_server_stmt(stmt->id, last_.prepare->statement_id);
      stmts_[client_id] = ClientStmt{stmt, query, last_.prepare->params, last_.prepare->columns, {}, statement_is_read(query),
                                     statement_kind(query)};
      if (capture.size() < 65536) cache_prepare(*stmt, std::move(capture));
    } else if (last_.error) {
      --next_stmt_id_;
    }
    maybe_detach();
    co_return true;
  }

  // A cached prepare response is stored as the first client saw it; all clients of one pool
  // share its capabilities, so only SESSION_TRACK could differ, and PREPARE responses carry no
  // OK packets. Kept as a seam for future formats.
  static std::string rewrite_prepare_for_client(std::string bytes) { return bytes; }

  bool statement_is_read(const std::string& query) const {
    if (!split_) return false;
    auto cls = sql::classify(query, sql::Dialect::Mysql, cluster_->config().write_functions);
    if (cls.hint != sql::Hint::None) return cls.hint == sql::Hint::Replica;
    return cls.read();
  }

  sql::StatementKind statement_kind(const std::string& query) const {
    if (!split_ && !ctx_.cache_enabled()) return sql::StatementKind::Write;
    return sql::classify(query, sql::Dialect::Mysql, cluster_->config().write_functions).kind;
  }

  ClientStmt* find_stmt(my::Bytes payload, std::uint32_t& id) {
    my::Reader r(payload);
    r.u8();
    id = r.u32();
    if (!r.ok()) return nullptr;
    auto it = stmts_.find(id);
    return it == stmts_.end() ? nullptr : &it->second;
  }

  awaitable<bool> unknown_stmt(std::uint32_t id, std::string_view where) {
    co_return co_await send_err(my::er::UNKNOWN_STMT_HANDLER, "HY000",
                                fmt::format("Unknown prepared statement handler ({}) given to {}", id, where));
  }

  awaitable<bool> com_execute() {
    std::uint32_t id = 0;
    ClientStmt* cs = find_stmt(io_.bytes(), id);
    if (!cs) co_return co_await unknown_stmt(id, "mysqld_stmt_execute");
    my::ExecuteView v;
    if (!my::parse_execute(io_.bytes(), cs->params, v)) {
      co_await send_err(my::er::MALFORMED, "HY000", "Malformed communication packet (COM_STMT_EXECUTE)");
      co_return false;
    }
    std::string payload;
    if (v.new_params_bound) {
      cs->types.assign(io_.payload(), v.types_offset, 2u * cs->params);
      payload = io_.payload();
    } else if (cs->params > 0 && cs->types.size() == 2u * cs->params) {
      // The server connection may never have seen this client's types: send them again.
      payload = my::execute_with_types(io_.bytes(), v, cs->types);
    } else {
      payload = io_.payload();
    }
    // Result cache: a read executed outside a transaction, without a cursor, keyed by its
    // parameter bytes.
    std::string* capture = nullptr;
    if (ctx_.cache_enabled() && cs->kind == sql::StatementKind::Read && v.flags == 0 && !server_ &&
        !(status_ & my::status::IN_TRANS) && !pinned_ && !long_data_ &&
        (cs->params == 0 || cs->types.size() == 2u * cs->params)) {
      std::string params = cs->params == 0 ? std::string() : payload.substr(v.null_bitmap_offset);
      std::string query = cs->query;
      int served = co_await try_cache(query, std::string_view(params));
      if (served == 1) co_return true;
      if (served == 2) {
        capture_.clear();
        capture = &capture_;
      }
    }
    cmd_read_ = cs->kind == sql::StatementKind::Read;
    server_lost_ = false;
    auto stmt_ref = *cs;  // cs may move if stmts_ rehashes meanwhile (it does not, but be safe)
    bool relayed = false;
    // A read outside a transaction runs again elsewhere (prepared there first) if its server dies
    // before any of its answer reached the client.
    const bool retryable =
        split_ && !server_ && !(status_ & my::status::IN_TRANS) && stmt_ref.read && v.flags == 0 && !long_data_;
    for (int attempt = 0;; ++attempt) {
      retry_allowed_ = retryable && attempt < kMaxReadRetries;
      retry_pending_ = false;
      if (capture) capture_.clear();
      bool ready = co_await attach();
      if (ready && !co_await ensure_prepared(stmt_ref)) {
        ready = false;
        if (!server_ && retry_allowed_) retry_pending_ = true;  // the server broke during the prepare
        else if (!server_ && sock_.is_open())
          co_await send_err(
              my::er::QUERY_INTERRUPTED, "70100",
              "Sluice lost its server connection before running this statement; nothing was changed, run it again");
      }
      if (!ready && retry_pending_) {
        retry_allowed_ = false;
        log::warn("mysql client {}: server lost before executing a read; running it again", handle_->id);
        continue;
      }
      retry_allowed_ = false;
      if (!ready) {
        if (capture) finish_capture(false);
        maybe_detach();
        co_return !client_gone_ && sock_.is_open();
      }
      my::patch_statement_id(reinterpret_cast<std::uint8_t*>(payload.data()),
                             server_->statement_ids[stmt_ref.stmt->id]);
      retry_allowed_ = retryable && attempt < kMaxReadRetries;
      gtid_seen_ = false;
      relayed = co_await relay(payload, ResponseKind::Query, 0, capture);
      retry_allowed_ = false;
      if (!retry_pending_) break;
      log::warn("mysql client {}: server lost before answering a read; running it again", handle_->id);
    }
    bool was_read = split_ && stmt_ref.read;
    if (capture) finish_capture(relayed);
    if (!relayed) co_return false;
    after_statement(stmt_ref.kind, was_read);
    note_for_invalidation(stmt_ref.kind, stmt_ref.query);
    long_data_ = false;
    hold_next_ = holds_for_next(last_);
    if (v.flags != 0 && last_.cursor_opened) cursor_open_ = true;
    maybe_detach();
    co_return true;
  }

  awaitable<bool> com_long_data() {
    std::uint32_t id = 0;
    ClientStmt* cs = find_stmt(io_.bytes(), id);
    if (!cs || io_.payload().size() < 7) co_return true;  // no response, as the server does
    if (!co_await attach()) co_return !client_gone_ && sock_.is_open();
    auto ref = *cs;
    if (!co_await ensure_prepared(ref)) co_return sock_.is_open();
    std::string payload = io_.payload();
    my::patch_statement_id(reinterpret_cast<std::uint8_t*>(payload.data()), server_->statement_ids[ref.stmt->id]);
    srv_out_.clear();
    my::append_packets(srv_out_, payload, 0);
    error_code ec;
    co_await server_->channel().write(asio::buffer(srv_out_), ec);
    if (ec) {
      co_await broken_server(false, false);
      co_return true;
    }
    long_data_ = true;  // the data lives on this server statement until the execute
    co_return true;
  }

  bool com_close() {
    std::uint32_t id = 0;
    if (find_stmt(io_.bytes(), id)) stmts_.erase(id);
    // The server statement stays for other clients (and the LRU); no response, as specified.
    return true;
  }

  awaitable<bool> com_stmt_reset() {
    std::uint32_t id = 0;
    ClientStmt* cs = find_stmt(io_.bytes(), id);
    if (!cs) co_return co_await unknown_stmt(id, "mysqld_stmt_reset");
    if (!server_ || !server_->statement_ids.count(cs->stmt->id)) {
      long_data_ = cursor_open_ = false;
      co_return co_await send_ok();  // nothing on any server to reset
    }
    std::string payload = io_.payload();
    my::patch_statement_id(reinterpret_cast<std::uint8_t*>(payload.data()), server_->statement_ids[cs->stmt->id]);
    if (!co_await relay(payload, ResponseKind::Single)) co_return false;
    long_data_ = cursor_open_ = false;
    maybe_detach();
    co_return true;
  }

  awaitable<bool> com_fetch() {
    std::uint32_t id = 0;
    ClientStmt* cs = find_stmt(io_.bytes(), id);
    if (!cs) co_return co_await unknown_stmt(id, "mysqld_stmt_fetch");
    if (!cursor_open_ || !server_ || !server_->statement_ids.count(cs->stmt->id))
      co_return co_await send_err(1421, "HY000", fmt::format("The statement ({}) has no open cursor", id));
    std::string payload = io_.payload();
    my::patch_statement_id(reinterpret_cast<std::uint8_t*>(payload.data()), server_->statement_ids[cs->stmt->id]);
    if (!co_await relay(payload, ResponseKind::Fetch)) co_return false;
    if (last_.error || last_.last_row_sent) cursor_open_ = false;
    maybe_detach();
    co_return true;
  }

  awaitable<bool> com_set_option() {
    my::Reader r(io_.bytes());
    r.u8();
    std::uint16_t opt = r.u16();
    if (!r.ok() || opt > 1) co_return co_await send_err(my::er::UNKNOWN_COM, "08S01", "Unknown command");
    const bool before = multi_statements_;
    multi_statements_ = opt == 0;
    if (server_) {  // attached (in a transaction): apply now, else at the next attach
      std::string cmd(io_.payload()), server = server_->endpoint.text();
      auto res = co_await exchange(cmd, ResponseKind::Single, false);
      if (!res) {  // the server connection, and what the client held on it, is gone: say so
        multi_statements_ = before;
        co_return co_await send_err(my::er::QUERY_INTERRUPTED, "70100",
                                    "Sluice: " + loss_text(Loss::InTransaction, server));
      }
      server_->multi_statements = multi_statements_;
    }
    std::string p;
    if (caps_ & my::cap::DEPRECATE_EOF) {
      my::Ok ok;
      ok.header = 0xFE;
      ok.status = status_;
      my::build_ok(p, ok, (caps_ & my::cap::SESSION_TRACK) != 0);
    } else {
      my::build_eof(p, 0, status_);
    }
    co_return co_await io_.reply(p);
  }

  void forget_client_state() {
    vars_ = {};
    stmts_.clear();
    pinned_ = cursor_open_ = long_data_ = hold_next_ = false;
    status_ = my::status::AUTOCOMMIT;
    multi_statements_ = (caps_ & my::cap::MULTI_STATEMENTS) != 0;
  }

  awaitable<bool> com_reset_connection() {
    bool was_attached = server_ != nullptr;
    bool clean = false;
    if (was_attached) clean = co_await reset_server();
    if (was_attached) detach(clean);
    forget_client_state();
    bool ok = co_await send_ok();
    co_return ok;
  }

  awaitable<bool> com_change_user() {
    my::ChangeUser cu;
    if (!my::parse_change_user(io_.bytes(), caps_, cu)) {
      co_await send_err(my::er::MALFORMED, "HY000", "Malformed communication packet (COM_CHANGE_USER)");
      co_return false;
    }
    // Whatever the old user left on a server connection goes with it.
    if (server_) {
      server_->dirty = true;
      if (!co_await reset_server()) detach(false);
      else detach(true);
    }
    forget_client_state();
    user_ = cu.user;
    if (cu.charset) charset_ = static_cast<std::uint8_t>(cu.charset);
    std::string plugin = cu.auth_plugin.empty() ? std::string("mysql_native_password") : cu.auth_plugin;
    if (!co_await authenticate(plugin, cu.auth_response)) co_return false;
    if (!co_await choose_pool(cu.database)) co_return false;
    {
      std::lock_guard lock(handle_->mu);
      handle_->user = user_;
    }
    co_return co_await send_ok();
  }

  // KILL [QUERY] n: n is a Sluice connection id (the handshake's), or a server thread id as
  // CONNECTION_ID() returned it: the client working on that thread, or else the one that last
  // did (ClientRegistry::find_by_thread). The target's server connection cannot change hands
  // while the KILL is in flight (kill_holds), so it reaches that thread and nothing else.
  awaitable<bool> kill(sql::MysqlKill k) {
    auto target = ctx_.mysql_clients.find(k.id);
    if (!target) target = ctx_.mysql_clients.find_by_thread(k.id);
    if (!target) co_return co_await send_err(my::er::NO_SUCH_THREAD, "HY000", fmt::format("Unknown thread id: {}", k.id));
    config::Endpoint ep;
    std::uint32_t thread = 0;
    {
      std::lock_guard lock(target->mu);
      if (target->user != user_ && !cfg_->is_admin(user_))
        co_return co_await send_err(my::er::KILL_DENIED, "HY000", fmt::format("You are not owner of thread {}", k.id));
      if (target->attached) {
        ep = target->endpoint;
        thread = target->thread_id;
        ++target->kill_holds;
      }
    }
    if (target.get() == handle_.get()) {
      if (thread) {
        std::lock_guard lock(target->mu);
        --target->kill_holds;
      }
      if (k.query_only) co_return co_await send_ok();  // nothing else runs for this client now
      co_await send_err(1927, "70100", "Connection was killed");
      co_return false;
    }
    bool ok = true;
    std::string failure;
    if (thread) {
      auto r = co_await pool::connect_mysql(sock_.get_executor(), ep, creds_, "", cfg_->general.server_connect_timeout, 0, 0,
                                            0, settings_.tls);
      if (!r.conn) {
        ok = false;
        failure = r.error.fields.message;
      } else {
        pool::MysqlIo sio(r.conn->sock);
        sio.set_tls(r.conn->tls.get());
        std::string cmd;
        my::build_command(cmd, my::com::QUERY, fmt::format("KILL {} {}", k.query_only ? "QUERY" : "CONNECTION", thread));
        bool io_ok = co_await sio.write(cmd, 0);
        if (io_ok) io_ok = co_await sio.read();
        if (!io_ok) {
          ok = false;
          failure = sio.error();
        } else if (!sio.payload().empty() && static_cast<std::uint8_t>(sio.payload()[0]) == 0xFF) {
          my::Err e;
          my::parse_err(sio.bytes(), e);
          if (e.code != my::er::NO_SUCH_THREAD) {  // already finished: fine
            ok = false;
            failure = e.message;
          }
        }
        r.conn->close_quietly();
      }
      std::lock_guard lock(target->mu);
      --target->kill_holds;
    }
    if (!k.query_only) target->close();
    if (!ok) co_return co_await send_err(my::er::KILL_DENIED, "HY000", "Sluice could not deliver the KILL: " + failure);
    co_return co_await send_ok();
  }

  tcp::socket sock_;
  std::unique_ptr<net::TlsStream> tls_;  // after SSLRequest, on a TLS listener
  Context& ctx_;
  std::shared_ptr<const Snapshot> snap_;
  const config::Config* cfg_;
  std::shared_ptr<observe::ClientInfo> info_;
  std::shared_ptr<observe::DbStats> stats_;
  std::uint64_t generation_ = ctx_.generation();
  bool connected_ = false, console_ = false, in_xact_ = false;
  admin::Caller console_caller_;
  observe::Clock::time_point xact_start_{};
  std::string end_reason_;
  pool::MysqlIo io_;
  asio::steady_timer timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::shared_ptr<ClientHandle> handle_;

  std::string nonce_, user_, schema_;
  std::uint32_t caps_ = 0;
  std::uint32_t mariadb_caps_ = 0;  // MariaDB extended capabilities the client negotiated
  bool learned_ = false;            // creds_ came from the server ([mysql] auth_user)
  std::uint8_t charset_ = 45;
  std::shared_ptr<const pool::Credentials> creds_;
  std::shared_ptr<pool::Pool> pool_;
  config::PoolMode mode_ = config::PoolMode::Transaction;
  std::shared_ptr<pool::ServerConn> server_;

  pool::Params vars_;  // session variables the client changed (server-reported values)
  std::uint16_t status_ = my::status::AUTOCOMMIT;
  bool multi_statements_ = false;
  bool pinned_ = false, cursor_open_ = false, long_data_ = false, hold_next_ = false;
  bool logged_in_ = false, idle_wait_ = false, client_gone_ = false, broken_ = false;
  bool server_watch_ = false;    // watch_server() armed
  std::uint32_t watch_gen_ = 0;  // its generation: a handler of an older one does nothing
  std::unordered_map<std::uint32_t, ClientStmt> stmts_;
  std::uint32_t next_stmt_id_ = 1;
  std::vector<std::uint32_t> pending_closes_;
  std::string held_error_;  // a 1461 answer held back while Sluice makes room (com_prepare)

  // Routing (read_write_split): the member the current command runs on, this client's last write.
  std::shared_ptr<router::ClusterRuntime> cluster_;
  config::Pool pool_cfg_;
  std::string served_db_;  // the database operators know this client by (served_database)
  pool::PoolSettings settings_;
  std::vector<std::shared_ptr<pool::Pool>> member_pools_;
  int member_ = 0;
  bool split_ = false, read_route_ = false, retry_allowed_ = false, retry_pending_ = false, verify_token_ = false;
  // A read outside a transaction runs again on another member at most this often when its
  // server connection dies before any of its answer reached the client.
  static constexpr int kMaxReadRetries = 2;
  bool cmd_read_ = false;     // the command in flight is a read (for what a lost server means)
  bool server_lost_ = false;  // its server connection was lost under it (outcome unknown)
  std::string server_end_;    // what the server said when it ended its connection
  bool gtid_seen_ = false, ro_next_tx_ = false, pending_write_ = false;
  router::Position token_;
  std::chrono::steady_clock::time_point verify_failed_at_{};

  // Result cache: the answer this session is filling, and writes not yet applied.
  std::string fill_key_, capture_;
  cache::FillTicket fill_ticket_;
  router::Position route_position_;  // a replica's replayed position when the read was routed there
  std::size_t capture_limit_ = 1u << 20;
  config::Duration cache_ttl_{0};
  std::vector<std::string> cache_tables_, pending_invalidation_;
  bool invalidate_all_ = false;

  ResponseTracker tracker_;
  ResponseSummary last_;
  std::string server_buf_, srv_out_, cli_out_;
  std::vector<char> rbuf_;
};

}  // namespace

void init_front_end() {
  if (!g_rsa) g_rsa = crypto::RsaKey::generate();
}

awaitable<void> serve_client(tcp::socket sock, Context& ctx) {
  error_code ec;
  sock.set_option(tcp::no_delay(true), ec);
  auto cfg = ctx.snapshot()->config;
  if (ctx.clients.fetch_add(1) >= cfg->general.max_client_conn) {
    ctx.clients.fetch_sub(1);
    std::string p, out;
    my::build_err(p, my::er::CON_COUNT, "08004", "Too many connections (max_client_conn)");
    my::append_packets(out, p, 0);
    co_await asio::async_write(sock, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
    co_return;
  }
  {
    Session s(std::move(sock), ctx);
    try {
      co_await s.run();
    } catch (const std::exception& e) {
      log::error("mysql session ended by an internal error: {}", e.what());
    }
  }
  ctx.clients.fetch_sub(1);
}

void kick_idle_sessions() {
  for (auto* s : std::vector<Session*>(t_sessions.begin(), t_sessions.end())) s->kick();
}

}  // namespace sluice::frontend::mysql
