// MySQL client login: the greeting (the primary's), SSLRequest and TLS, authentication
// (mysql_native_password, caching_sha2_password with RSA or TLS, auth switch, client
// certificates, users learned from the server) and choosing the pool.
#include "src/frontend/mysql/client_session.hpp"

#include "protocols/common/crypto.hpp"
#include "sluice/version.hpp"
#include "src/frontend/common/client_log.hpp"
#include "src/frontend/mysql/auth_lookup.hpp"
#include "src/frontend/mysql/client_auth.hpp"
#include "src/pool/mysql_greeting.hpp"

namespace sluice::frontend::mysql {

namespace {

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
// Not Sluice's to offer but harmless to mirror from the server's greeting.
constexpr std::uint32_t kRememberOptions = 1u << 31;
// MariaDB extended capabilities relayed: extended column metadata passes as opaque bytes in
// column definitions. Not relayed: progress reports, bulk execution and metadata caching, which
// change the command and response shapes Sluice tracks.
constexpr std::uint32_t kRelayedMariadbCaps = my::mariadb_cap::EXTENDED_METADATA;

std::string random_nonce() {
  // Printable, NUL-free bytes, as servers send.
  auto raw = crypto::random_bytes(20);
  for (auto& c : raw) c = static_cast<char>(33 + static_cast<unsigned char>(c) % 94);
  return raw;
}

}  // namespace

awaitable<bool> Session::login() {
  std::weak_ptr<bool> alive = alive_;
  w().timer_.expires_after(cfg_->general.client_login_timeout);
  w().timer_.async_wait([this, alive](error_code ec) {
    if (!ec && alive.lock() && !logged_in_) close_client();
  });
  bool ok = co_await handshake();
  logged_in_ = true;
  w().timer_.cancel();
  co_return ok;
}

awaitable<my::Handshake> Session::greeting() {
  my::Handshake hs;
  hs.capabilities = kOffered;
  hs.charset = 45;  // utf8mb4_general_ci
  hs.server_version = "8.0.34-sluice-" SLUICE_VERSION;
  auto known =
      co_await pool::mysql_greeting(sock_.get_executor(), primary_for_default(), cfg_->general.server_connect_timeout);
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

config::Endpoint Session::primary_for_default() const {
  for (auto& pc : cfg_->pools)
    if (pc.protocol == config::Protocol::Mysql) return cfg_->clusters.at(pc.cluster).primary;
  return {};
}

awaitable<bool> Session::handshake() {
  nonce_ = random_nonce();
  my::Handshake hs = co_await greeting();
  hs.connection_id = handle_->id;
  hs.nonce = nonce_;
  hs.status = my::status::AUTOCOMMIT;
  hs.auth_plugin = cfg_->mysql.default_auth_plugin;
  std::string p;
  my::build_handshake(p, hs);
  if (auto awaited = co_await io_.write(p, 0); !awaited) co_return false;

  io_.set_limit(64 * 1024);
  io_.set_exact(snap_->my_tls != nullptr);  // a TLS ClientHello may follow the SSLRequest at once
  if (auto awaited = co_await io_.read(); !awaited) co_return false;
  io_.set_exact(false);
  my::HandshakeResponse resp;
  if (!my::parse_handshake_response(io_.bytes(), resp)) {
    co_return co_await refuse(Refusal::BadHandshake);
  }
  if (resp.ssl_request_only) {
    if (!snap_->my_tls) {
      co_return co_await refuse(Refusal::TlsNotOffered);
    }
    if (!io_.leftover().empty()) {  // bytes after SSLRequest before the handshake: refuse
      co_return co_await refuse(Refusal::BadHandshake);
    }
    tls_ = co_await accept_tls(sock_, snap_->my_tls, *info_);
    if (!tls_) co_return false;
    io_.set_tls(tls_.get());
    if (auto awaited = co_await io_.read(); !awaited) co_return false;
    resp = my::HandshakeResponse{};
    if (!my::parse_handshake_response(io_.bytes(), resp) || resp.ssl_request_only) {
      co_return co_await refuse(Refusal::BadHandshake);
    }
  } else if (cfg_->mysql.tls.mode == config::TlsMode::Require) {
    co_return co_await refuse(Refusal::TlsRequired);
  }
  caps_ = resp.capabilities & hs.capabilities;
  mariadb_caps_ = resp.mariadb_capabilities & hs.mariadb_capabilities;
  charset_ = resp.charset;
  user_ = resp.user;
  for (auto& [k, v] : resp.attributes)  // [[rules]] application: kept in the client's entry
    if (k == "program_name") {
      std::lock_guard lock(info_->mu);
      info_->application_name = v.substr(0, 256);
    }
  multi_statements_ = (caps_ & my::cap::MULTI_STATEMENTS) != 0;

  std::string db = (caps_ & my::cap::CONNECT_WITH_DB) ? resp.database : std::string();
  std::optional<config::AuthMethod> method;
  if (auto awaited = co_await check_access(db, method); !awaited) co_return false;
  if (auto awaited = co_await authenticate(resp.auth_plugin, resp.auth_response, method); !awaited) co_return false;
  io_.set_limit(cfg_->general.max_packet_size);
  if (auto awaited = co_await take_connection_places(db); !awaited) co_return false;

  if (db == "sluice") {
    console_caller_.user = user_;
    console_caller_.admin = cfg_->is_admin(user_);
    console_caller_.client_id = info_->id;
    console_caller_.protocol = config::Protocol::Mysql;
    if (!console_caller_.admin && !cfg_->is_stats(user_)) {
      co_return co_await refuse(Refusal::ConsoleDenied, user_, peer_address());
    }
    console_ = true;
    info_->set_identity(user_, db, application_name());
    {
      std::lock_guard lock(info_->mu);
      info_->pool = "sluice";
    }
    log::event(log::Level::Info, "admin_connected", client_fields(*info_, user_, "sluice"),
               "client {} {}:{} connected to the admin console: user {}", info_->id, info_->addr, info_->port, user_);
    start_compression(resp);
    co_return true;  // serve_admin sends the OK
  }
  if (auto awaited = co_await choose_pool(db); !awaited) co_return false;
  {
    std::lock_guard lock(handle_->mu);
    handle_->user = user_;
  }
  start_compression(resp);
  co_return co_await send_ok();
}

void Session::start_compression(const my::HandshakeResponse& resp) {
  if (caps_ & my::cap::COMPRESS) {
    caps_ &= ~my::cap::ZSTD_COMPRESSION;
    io_.compress_after_next_write(my::Codec::Zlib);
  } else if (caps_ & my::cap::ZSTD_COMPRESSION) {
    io_.compress_after_next_write(my::Codec::Zstd, resp.zstd_level ? resp.zstd_level : my::kDefaultZstdLevel);
  }
}

awaitable<bool> Session::take_connection_places(const std::string& db) {
  auto over = limits_.login(ctx_.limits, *cfg_, user_, db, db == "sluice");
  if (!over) co_return true;
  log::event(log::Level::Info, "client_refused", client_fields(*info_, user_, db, access::to_string(*over)),
             "client {} {}:{}: user {} database {} refused: [limits] {}", info_->id, info_->addr, info_->port, user_,
             db, access::to_string(*over));
  if (*over == access::Limit::ConnectionsPerUser) co_return co_await refuse(Refusal::UserConnections, user_);
  co_return co_await refuse(Refusal::DatabaseConnections, cfg_->limits.max_connections_per_database, db);
}

awaitable<bool> Session::rate_limit() {
  auto r = limits_.request(ctx_.limits, cfg_->limits, user_, info_->addr);
  if (r.refused) [[unlikely]] {
    const bool per_user = *r.refused == access::Limit::QueryRateUser;
    const std::string who = per_user ? user_ : std::string(info_->addr);
    co_await refuse(Refusal::QueryRate, who, access::to_string(*r.refused), r.limit);
    co_return false;
  }
  if (r.wait.count() > 0) [[unlikely]] {
    asio::steady_timer t(sock_.get_executor(), r.wait);
    error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return true;
}

awaitable<bool> Session::front_door(std::uint8_t cmd) {
  ruled_ = false;
  if (cmd != my::com::STMT_PREPARE && limits_.limited(cfg_->limits)) {
    bool allowed = co_await rate_limit();
    if (!allowed) co_return false;
  }
  if ((cmd != my::com::STMT_EXECUTE && ctx_.firewall_on()) || ctx_.rules_on())
    co_return co_await statement_allowed(cmd);
  co_return true;
}

awaitable<bool> Session::statement_allowed(std::uint8_t cmd) {
  std::string_view text;
  if (cmd == my::com::STMT_EXECUTE) {
    std::uint32_t id = 0;
    const ClientStmt* cs = find_stmt(io_.bytes(), id);
    if (!cs) co_return true;  // com_execute() answers an unknown statement
    text = cs->query;
  } else {
    text = std::string_view(io_.payload()).substr(1);
  }
  w().analysis_.of(text, sql::Dialect::Mysql);
  const std::string app = application_name();
  access::StatementFacts f{config::Protocol::Mysql, user_, schema_, app, info_->addr};
  auto c = check_statement(ctx_, *snap_, f, info_->id, w().analysis_, cmd != my::com::STMT_EXECUTE);
  if (c.refusal) {
    co_await refuse(Refusal::FirewallDenied, *c.refusal);
    co_return false;
  }
  if (!c.rules.matched) co_return true;
  w().rule_ = c.rules;
  w().rules_held_ = snap_->rules;  // what rule_ points into, through a reload
  ruled_ = true;
  if (c.rules.rewrite_rule >= 0 && cmd != my::com::STMT_EXECUTE) {
    std::string rewritten(text);
    if (snap_->rules->rewrite(c.rules.rewrite_rule, rewritten)) {
      log::debug("mysql client {}: rule {} rewrote the statement", info_->id, c.rules.rewrite_rule + 1);
      io_.replace_payload(io_.payload().substr(0, 1) + rewritten);
    }
  }
  co_return true;
}

awaitable<bool> Session::check_access(const std::string& db, std::optional<config::AuthMethod>& method) {
  auto a = access_check(*snap_, config::Protocol::Mysql, *info_, user_, db, tls_ != nullptr);
  if (a.allow) {
    method = a.method;
    co_return true;
  }
  co_return co_await refuse(Refusal::AccessRuleRefused, info_->addr, a.refusal);
}

awaitable<bool> Session::authenticate(std::string client_plugin, std::string response,
                                      std::optional<config::AuthMethod> method) {
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
    co_return co_await access_denied(Refusal::AccessDenied, !response.empty());
  }
  creds_ = std::move(found);
  // Client certificates: the listener's tls_client_cert, and `auth = "cert"` users.
  const config::AuthMethod how = method.value_or(creds_->client_auth);
  bool cert_user = how == config::AuthMethod::Cert;
  std::optional<std::string> cn;
  auto verdict =
      net::check_client_cert(tls_ ? tls_->native_handle() : nullptr, cfg_->mysql.tls.client_cert, cert_user, user_, cn);
  if (verdict != net::CertVerdict::Ok) {
    co_await throttle_failed_login();
    const auto why = verdict == net::CertVerdict::WrongUser ? Refusal::CertWrongUser : Refusal::CertRequired;
    co_return co_await access_denied(why, !response.empty());
  }
  if (how == config::AuthMethod::Trust || cert_user) co_return true;

  ClientAuth auth(creds_, cfg_->mysql.default_auth_plugin, nonce_, (caps_ & my::cap::SECURE_CONNECTION) != 0,
                  tls_ != nullptr, *g_rsa, learned);
  auto step = auth.start(std::move(client_plugin), std::move(response));
  for (;;) {
    switch (step.kind) {
      case ClientAuth::Step::Ask:
        if (auto awaited = co_await io_.reply(step.packet); !awaited) co_return false;
        if (auto awaited = co_await io_.read(); !awaited) co_return false;
        step = auth.resume(io_.payload());
        break;
      case ClientAuth::Step::Relookup: {
        learned_users().forget(user_);
        auto fresh = co_await lookup_mysql_user(ctx_, *snap_, user_, sock_.get_executor());
        step = auth.relooked(std::move(fresh));
        break;
      }
      case ClientAuth::Step::Accepted:
        creds_ = auth.credentials();
        if (step.packet.empty()) co_return true;
        co_return co_await io_.reply(step.packet);
      case ClientAuth::Step::Denied:
        co_await throttle_failed_login();
        co_return co_await access_denied(Refusal::AccessDenied, auth.with_password());
    }
  }
}

awaitable<bool> Session::choose_pool(const std::string& db) {
  const config::Pool* pc = cfg_->find_pool(config::Protocol::Mysql, db);
  if (!pc && db.empty())
    for (auto& p : cfg_->pools)
      if (p.protocol == config::Protocol::Mysql) {
        pc = &p;
        break;
      }
  if (!pc) {
    log::event(log::Level::Info, "client_refused", client_fields(*info_, user_, db, "unknown database"),
               "client {} {}:{}: user {} asked for unknown database {}", info_->id, info_->addr, info_->port, user_,
               db);
    co_return co_await refuse(Refusal::UnknownDatabase, db);
  }
  served_db_ = served_database(*pc, db);
  if (ctx_.controls.disabled(served_db_)) {
    co_return co_await refuse(Refusal::DatabaseDisabled, db);
  }
  stats_ = ctx_.stats.get("mysql", served_db_);
  info_->set_identity(user_, db, application_name());
  {
    std::lock_guard lock(info_->mu);
    info_->pool = served_db_;
  }
  mode_ = pc->mode;
  bind_pool(ctx_.splits.place(*pc, split_));
  routing_.begin_session();
  schema_ = db;
  if (pc->database != "*" && !pc->server_database.empty() && db == pc->database) schema_ = pc->server_database;
  if (schema_.empty() || pool_->schema_known(schema_)) co_return true;
  // First client of this schema: let a server confirm it (COM_INIT_DB) before saying OK.
  if (auto awaited = co_await attach(); !awaited) co_return false;
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

void init_front_end() {
  if (!g_rsa) g_rsa = crypto::RsaKey::generate();
}

}  // namespace sluice::frontend::mysql
