// PostgreSQL client session, the stages before the first query: startup (SSLRequest, CancelRequest,
// the StartupMessage), authentication, and login (pool choice, ParameterStatus, BackendKeyData).
#include "src/frontend/postgres/client_session.hpp"

#include "src/frontend/common/client_log.hpp"
#include "src/frontend/postgres/auth_lookup.hpp"
#include "src/net/fast_reads.hpp"
#include "src/net/read_wait.hpp"

namespace sluice::frontend::pg {

namespace {
// What a login answers, remembered per worker for the last few kinds of login: a client that
// sends the same startup parameters as an earlier one, to a pool whose server parameters are
// the same object, gets the same parameter set (interned) and the same ParameterStatus
// messages, without building, hashing and interning them again (about 15,000 instructions of
// a login, bench/RESULTS.md). Holding the server parameters keeps their address from being
// reused by another pool's while remembered.
struct LoginAnswer {
  std::shared_ptr<const pool::Params> server;
  std::vector<std::pair<std::string, std::string>> startup;
  pool::SharedParams params;
  std::string status;
};
constexpr std::size_t kLoginAnswers = 4;
thread_local std::array<LoginAnswer, kLoginAnswers> t_answers;
thread_local std::size_t t_next_answer = 0;

const LoginAnswer* known_answer(const std::shared_ptr<const pool::Params>& server,
                                const std::vector<std::pair<std::string, std::string>>& startup) {
  for (const auto& a : t_answers)
    if (a.server == server && a.startup == startup) return &a;
  return nullptr;
}

void remember_answer(std::shared_ptr<const pool::Params> server,
                     std::vector<std::pair<std::string, std::string>> startup, const pool::SharedParams& params,
                     const std::string& status) {
  LoginAnswer& a = t_answers[t_next_answer];
  t_next_answer = (t_next_answer + 1) % kLoginAnswers;
  a = LoginAnswer{std::move(server), std::move(startup), params, status};
}
}  // namespace

// (client_session.hpp says what a login's read does.)
awaitable<bool> Session::read_client(bool login) {
  if (login && !tls_ && buffered() == 0) {
    give_back_idle_input(Step::WantRead);
    auto room = asio::buffer(w().first_bytes_);
    error_code ec;
    std::size_t n = client_.read_some(room, ec);  // non-blocking
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      net::wait_first(client_);  // bytes that come now make an edge: the read waits for it
      std::tie(ec, n) = co_await net::async_read_fast(client_, room, net::await_op);
    }
    if (ec || n == 0) co_return false;
    take_first_bytes(n);
    co_return true;
  }
  for (;;) {
    Step st = try_read_client();
    if (st == Step::Done || st == Step::Fail) co_return st == Step::Done;
    error_code ec;
    ec = std::get<0>(co_await client_ready(st));
    if (ec) co_return false;
  }
}

awaitable<bool> Session::startup() {
  for (;;) {
    std::size_t consumed = 0;
    auto d = wire::parse_startup(buffered_bytes(), w().startup_, consumed);
    if (d == wire::Decode::NeedMore) {
      if (auto awaited = co_await read_client(true); !awaited) co_return false;
      continue;
    }
    if (d == wire::Decode::Malformed) {
      co_await send_error("FATAL", "08P01", "invalid startup packet layout");
      co_return false;
    }
    in_begin_ += consumed;
    if (w().startup_.code == wire::kSslRequestCode || w().startup_.code == wire::kGssEncRequestCode) {
      if (buffered() != 0) {  // bytes after SSLRequest before our answer: refuse (CVE-2021-23222)
        co_await send_error("FATAL", "08P01", "unexpected data after SSLRequest");
        co_return false;
      }
      if (w().startup_.code == wire::kSslRequestCode && snap_->pg_tls && !tls_) {
        std::string yes = "S";
        if (auto awaited = co_await write_client(yes); !awaited) co_return false;
        tls_ = co_await accept_tls(client_, snap_->pg_tls, *info_);
        if (!tls_) co_return false;
        continue;
      }
      std::string no = "N";
      if (auto awaited = co_await write_client(no); !awaited) co_return false;
      continue;
    }
    if (w().startup_.code == wire::kCancelRequestCode) {
      co_await forward_cancel(w().startup_.cancel_pid, w().startup_.cancel_key);
      co_return false;
    }
    if (w().startup_.code >> 16 != 3) {
      co_await send_error("FATAL", "0A000",
                          fmt::format("unsupported frontend protocol {}.{}: server supports 3.0", w().startup_.code >> 16,
                                      w().startup_.code & 0xffff));
      co_return false;
    }
    if (w().startup_.find("replication")) {
      co_await send_error("FATAL", "08P01", "replication connections are not supported by Sluice");
      co_return false;
    }
    const std::string* user = w().startup_.find("user");
    if (!user || user->empty()) {
      co_await send_error("FATAL", "28000", "no PostgreSQL user name specified in startup packet");
      co_return false;
    }
    user_ = *user;
    typed_messages_ = true;  // everything after StartupMessage is a typed message
    if (!tls_ && snap_->config->postgres.tls.mode == config::TlsMode::Require) {
      co_await send_error("FATAL", "28000",
                          "Sluice requires TLS on this listener: connect with sslmode=require or stronger");
      co_return false;
    }
    const std::string* db = w().startup_.find("database");
    database_ = db && !db->empty() ? *db : user_;
    co_return true;
  }
}

awaitable<void> Session::forward_cancel(std::uint32_t pid, std::uint32_t key) {
  if (!cancel_registry().find(pid, key) && ctx_.forward_cancel && ctx_.forward_cancel(pid, key)) {
    log::debug("cancel for client pid {}: passed to the previous process (an upgrade)", pid);
    co_return;
  }
  co_await cancel_by_key(pid, key);
}

awaitable<void> cancel_by_key(std::uint32_t pid, std::uint32_t key) {
  auto target = cancel_registry().find(pid, key);
  if (!target) co_return;  // unknown key or client idle: nothing to cancel (55.2.7: no reply)
  co_await send_cancel_request(target->endpoint, target->server_pid, target->server_key);
  log::debug("forwarded cancel for client pid {} to {}", pid, target->endpoint.text());
}

awaitable<void> Session::throttle_failed_login() {
  co_await state::hold_failed_login(ctx_, snap_->config->general, info_, client_.get_executor());
}

awaitable<bool> Session::take_connection_places() {
  auto over = limits_.login(ctx_.limits, *snap_->config, user_, database_, database_ == kAdminDatabase);
  if (!over) co_return true;
  log::event(log::Level::Info, "client_refused", client_fields(*info_, user_, database_, access::to_string(*over)),
             "client {} {}:{}: user {} database {} refused: [limits] {}", info_->id, info_->addr, info_->port, user_,
             database_, access::to_string(*over));
  if (*over == access::Limit::ConnectionsPerUser)
    co_await send_error("FATAL", "53300", fmt::format("too many connections for role \"{}\"", user_),
                        "[limits] max_connections_per_user, or the user's max_connections");
  else
    co_await send_error("FATAL", "53300", fmt::format("too many connections for database \"{}\"", database_),
                        "[limits] max_connections_per_database");
  co_return false;
}

awaitable<bool> Session::rate_limited(const wire::Frame& f) {
  auto r = limits_.request(ctx_.limits, snap_->config->limits, user_, info_->addr);
  if (r.refused) {
    std::string out = rate_refusal(r);
    if (f.type == wire::fe::Query) {
      in_begin_ += f.size();
      wire::ready_for_query(out, 'I');
    } else {
      discard_until_sync_ = true;  // as the server after an error: up to Sync, then ReadyForQuery
    }
    co_await write_client(out);
    co_return true;
  }
  if (r.wait.count() > 0) {
    asio::steady_timer t(client_.get_executor(), r.wait);
    error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return false;
}

std::string Session::rate_refusal(const ClientLimits::Rate& r) const {
  const bool per_user = *r.refused == access::Limit::QueryRateUser;
  std::string out;
  wire::error_response(
      out, "ERROR", "53400",
      fmt::format("rate limit exceeded for {} \"{}\" (limits.{} = {}); try again", per_user ? "user" : "host",
                  per_user ? user_ : info_->addr, access::to_string(*r.refused), r.limit));
  return out;
}

std::optional<Outcome> Session::rate_limit_attached(const wire::Frame& f) {
  // A session-mode client keeps the snapshot it logged in with: the limits are the running ones.
  auto snap = ctx_.snapshot();
  auto r = limits_.request(ctx_.limits, snap->config->limits, user_, info_->addr);
  if (r.refused) {
    rate_checked_at_ = std::string::npos;  // answered: the next request may sit at this offset
    std::string err = rate_refusal(r);
    relay_->refuse(f, std::move(err), relay_->server_out);
    in_begin_ += f.size();
    return std::nullopt;
  }
  if (r.wait.count() > 0) {
    rate_wait_ = r.wait;
    return Outcome::RateWait;
  }
  return std::nullopt;
}

awaitable<bool> Session::check_access(std::optional<config::AuthMethod>& method) {
  auto a = access_check(*snap_, config::Protocol::Postgres, *info_, user_, database_, tls_ != nullptr);
  if (a.allow) {
    method = a.method;
    co_return true;
  }
  co_await send_error("FATAL", "28000", a.refusal);
  co_return false;
}

awaitable<bool> Session::authenticate() {
  // [[access]] first, as pg_hba.conf: a refused client learns nothing about which users exist.
  std::optional<config::AuthMethod> method;
  if (auto awaited = co_await check_access(method); !awaited) co_return false;
  auto it = snap_->credentials.find(user_);
  if (it != snap_->credentials.end()) {
    creds_ = it->second;
  } else if (!snap_->config->postgres.auth_user.empty()) {
    // auth_query (auth_lookup.hpp); a user it does not find goes through a SCRAM exchange no
    // password passes, as PostgreSQL's mock authentication: the same answer as a wrong password.
    creds_ = co_await lookup_pg_user(ctx_, *snap_, user_, database_, client_.get_executor());
    if (!creds_) {
      creds_ = mock_credentials(user_);
      method = config::AuthMethod::ScramSha256;  // whatever a rule says: nothing may let it in
    }
  } else {
    co_await throttle_failed_login();
    co_await send_error("FATAL", "28000", fmt::format("role \"{}\" does not exist", user_),
                        "add the user to [[users]] in Sluice's configuration");
    co_return false;
  }
  // Client certificates: the listener's tls_client_cert, and `auth = "cert"` users.
  std::optional<std::string> cn;
  auto verdict = net::check_client_cert(tls_ ? tls_->native_handle() : nullptr, snap_->config->postgres.tls.client_cert,
                                        method.value_or(creds_->client_auth) == config::AuthMethod::Cert, user_, cn);
  if (verdict == net::CertVerdict::Missing) {
    co_await throttle_failed_login();
    const char* hint = tls_ ? "" : "connect with TLS and a certificate signed by the listener's tls_ca";
    co_await send_error("FATAL", "28000", "connection requires a valid client certificate", hint);
    co_return false;
  }
  if (verdict == net::CertVerdict::WrongUser) {
    co_await throttle_failed_login();
    co_await send_error("FATAL", "28000", fmt::format("certificate authentication failed for user \"{}\"", user_),
                        fmt::format("the certificate's common name is \"{}\"", *cn));
    co_return false;
  }
  ClientAuth auth(*creds_, tls_ ? snap_->pg_tls_end_point : std::string(), method);
  std::string out;
  auto step = auth.start(out);
  // AuthenticationSASL (code 10) or a password request: PostgreSQL's words for a wrong answer.
  const bool sasl = out.size() >= 9 && wire::load_u32(reinterpret_cast<const std::uint8_t*>(out.data()) + 5) == 10;
  while (step == ClientAuth::Step::Send) {
    if (auto awaited = co_await write_client(out); !awaited) co_return false;
    auto f = co_await read_auth_message();
    if (!f) co_return false;
    if (f->type != wire::fe::Password) {
      auto why = fmt::format("expected {} response, got message type {}", sasl ? "SASL" : "password",
                             static_cast<int>(static_cast<unsigned char>(f->type)));
      co_await send_error("FATAL", "08P01", why);
      co_return false;
    }
    step = auth.on_password_message(f->body, out);
  }
  if (step == ClientAuth::Step::Failed) {
    log::info("authentication failed for user \"{}\": {}", user_, auth.failure());
    co_await throttle_failed_login();
    co_await send_error("FATAL", "28P01", fmt::format("password authentication failed for user \"{}\"", user_));
    co_return false;
  }
  co_return co_await write_client(out);  // AuthenticationOk (and SASLFinal)
}

awaitable<bool> Session::login() {
  const auto& cfg = *snap_->config;
  if (ctx_.shutting_down) {
    co_await send_error("FATAL", "57P03", "Sluice is shutting down");
    co_return false;
  }
  const config::Pool* pc = cfg.find_pool(config::Protocol::Postgres, database_);
  if (!pc) {
    log::event(log::Level::Info, "client_refused", client_fields(*info_, user_, database_, "unknown database"),
               "client {} {}:{}: user {} asked for unknown database {}", info_->id, info_->addr, info_->port, user_,
               database_);
    co_await send_error("FATAL", "3D000", fmt::format("database \"{}\" does not exist", database_),
                        "add a [[pools]] entry for it, or a database = \"*\" pool");
    co_return false;
  }
  const std::string pool_db = served_database(*pc, database_);
  if (ctx_.controls.disabled(pool_db)) {
    co_await send_error("FATAL", "55000",
                        fmt::format("database \"{}\" is not currently accepting connections", database_),
                        "an administrator disabled it (ENABLE on the admin console)");
    co_return false;
  }
  stats_ = ctx_.stats.get("postgres", pool_db);
  relay_->set_stats(stats_.get(), &info_->queries);
  relay_->set_statement_limit(snap_->config->general.max_client_prepared_statements);
  info_->set_identity(user_, database_, w().startup_.find("application_name") ? *w().startup_.find("application_name") : "");
  {
    std::lock_guard lock(info_->mu);
    info_->pool = pool_db;
  }
  mode_ = pc->mode;
  relay_->set_pooled(mode_ != config::PoolMode::Session);
  bind_pool(cfg, ctx_.splits.place(*pc, split_));
  routing_.begin_session();

  auto params = pool_->server_params();
  if (!params) {
    // First client of this pool: a server connection tells us the server's parameters (and
    // whether the database exists at all).
    auto r = co_await pool_->lease(client_.get_executor(), cfg.general.query_wait_timeout);
    if (!r.conn) {
      co_await report_lease_failure(r);
      co_return false;
    }
    params = std::make_shared<const pool::Params>(r.conn->params);
    pool_->release(std::move(r.conn), true);
  }
  // What is remembered is copied now: a session-mode attach below waits, and another login on
  // this worker may replace the entry meanwhile.
  pool::SharedParams known_params;
  std::string known_status;
  const bool known = [&] {
    const LoginAnswer* a = known_answer(params, w().startup_.params);
    if (a) known_params = a->params, known_status = a->status;
    return a != nullptr;
  }();
  if (known) {
    relay_->client_params = known_params;
  } else {
    pool::Params mine;
    mine.items.reserve(params->items.size() + 2);
    for (auto& [k, v] : params->items) mine.set(k, v);
    for (auto& [k, v] : w().startup_.params) {
      if (k == "user" || k == "database" || k == "replication") continue;
      if (k == "options") parse_options(v, mine);
      else if (valid_param_name(k) && settable(k)) mine.set(k, v);
    }
    relay_->client_params = pool::SharedParams::intern(std::move(mine));
  }
  const pool::SharedParams chosen = relay_->client_params;
  auto startup = std::move(w().startup_.params);
  std::vector<std::pair<std::string, std::string>>().swap(w().startup_.params);  // all taken: an idle client keeps none
  if (mode_ == config::PoolMode::Session) {
    // The client's server session starts now: its BackendKeyData carries the server's real
    // process id (pg_terminate_backend, pg_stat_activity work with it), with a key of Sluice's.
    prepare_attach();
    if (!attach_ready()) {
      bool attached = co_await attach_rest();
      if (!attached) co_return false;
    }
  }
  std::string out;
  if (known && relay_->client_params.same_set(known_params)) {
    out = std::move(known_status);  // (a session-mode attach may have dropped parameters the server refused)
  } else {
    out.reserve(32 * relay_->client_params.items().size() + 64);
    for (auto& [k, v] : relay_->client_params.items())
      if (params->find(k)) wire::parameter_status(out, k, v);
    if (!known && relay_->client_params.same_set(chosen)) remember_answer(params, std::move(startup), chosen, out);
  }
  auto [pid, target] = cancel_registry().add(server_ ? server_->backend_pid : 0);
  pid_ = pid;
  cancel_ = target;
  if (server_) set_cancel_target(true);
  wire::backend_key_data(out, pid, target->key);
  wire::ready_for_query(out, 'I');
  info_->set_state(observe::ClientState::Idle);
  co_return co_await write_client(out);
}

awaitable<void> Session::report_lease_failure(const pool::LeaseResult& r) {
  auto f = describe_lease_failure(r, pool_->name(), snap_->config->general.query_wait_timeout);
  if (f.sqlstate.empty()) f.sqlstate = "08006";
  co_await send_error("FATAL", f.sqlstate, f.message, f.hint);
}

}  // namespace sluice::frontend::pg
