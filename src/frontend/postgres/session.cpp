// PostgreSQL client session. Stages: startup -> auth -> login -> (attach -> relay -> detach)*.
#include "src/frontend/postgres/session.hpp"

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ssl.hpp>
#include <fmt/format.h>

#include <unordered_set>

#include "src/admin/console.hpp"
#include "src/frontend/common/cache_lookup.hpp"
#include "src/frontend/common/lease_failure.hpp"
#include "src/frontend/common/pool_rules.hpp"
#include "src/frontend/postgres/admin.hpp"
#include "src/frontend/postgres/auth.hpp"
#include "src/frontend/postgres/relay.hpp"
#include "src/frontend/common/server_loss.hpp"
#include "src/net/tls.hpp"
#include "src/observe/log.hpp"
#include "src/sql/classify.hpp"
#include "src/sql/database_ddl.hpp"
#include "src/sql/normalize.hpp"

namespace sluice::frontend::pg {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

namespace {

class Session;
// Per worker: a timer that lets sessions check on long waits (Session::janitor_tick), running
// while the worker has sessions.
thread_local bool t_janitor = false;
awaitable<void> janitor();
// A CancelRequest for the server session (pid, key) at `endpoint` (55.2.7): its own connection,
// closed by the server without an answer.
awaitable<void> send_cancel_request(config::Endpoint endpoint, std::uint32_t pid, std::uint32_t key) {
  auto ex = co_await asio::this_coro::executor;
  tcp::socket s(ex);
  tcp::resolver resolver(ex);
  error_code ec;
  auto results = co_await resolver.async_resolve(endpoint.host, std::to_string(endpoint.port),
                                                 asio::redirect_error(use_awaitable, ec));
  if (ec) co_return;
  co_await asio::async_connect(s, results, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return;
  std::string out;
  wire::cancel_request(out, pid, key);
  co_await asio::async_write(s, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
  char c;
  co_await s.async_read_some(asio::buffer(&c, 1), asio::redirect_error(use_awaitable, ec));
}

thread_local std::unordered_set<Session*> t_sessions;

constexpr std::size_t kServerChunk = 64 * 1024;
constexpr std::size_t kAuthMaxMessage = 64 * 1024;

// Parameters a server reports that a client cannot SET; never part of state sync.
bool settable(std::string_view name) {
  return !(name == "server_version" || name == "server_encoding" || name == "integer_datetimes" ||
           name == "is_superuser" || name == "session_authorization" || name == "in_hot_standby" ||
           name == "scram_iterations");
}

bool valid_param_name(std::string_view n) {
  if (n.empty() || n.size() > 63) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) return false;
  return true;
}

std::string quote_literal(std::string_view v) {
  std::string s = "E'";
  for (char c : v) {
    if (c == '\'' || c == '\\') s.push_back(c);
    s.push_back(c);
  }
  s.push_back('\'');
  return s;
}

// Decodes "-c name=value" / "--name=value" pairs from the startup "options" parameter.
void parse_options(std::string_view opts, pool::Params& out) {
  std::vector<std::string> words;
  std::string cur;
  for (std::size_t i = 0; i < opts.size(); ++i) {
    char c = opts[i];
    if (c == '\\' && i + 1 < opts.size()) cur.push_back(opts[++i]);
    else if (std::isspace(static_cast<unsigned char>(c))) {
      if (!cur.empty()) words.push_back(std::move(cur)), cur.clear();
    } else cur.push_back(c);
  }
  if (!cur.empty()) words.push_back(cur);
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string_view w = words[i];
    std::string_view kv;
    if (w == "-c" && i + 1 < words.size()) kv = words[++i];
    else if (w.substr(0, 2) == "-c") kv = w.substr(2);
    else if (w.substr(0, 2) == "--") kv = w.substr(2);
    else continue;
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    std::string name(kv.substr(0, eq));
    std::replace(name.begin(), name.end(), '-', '_');
    if (valid_param_name(name)) out.set(name, kv.substr(eq + 1));
  }
}

// CopyDone 'c', CopyData 'd' or CopyFail 'f': one comparison for every other message type.
constexpr bool is_copy_message(char type) {
  static_assert(wire::fe::CopyData == wire::fe::CopyDone + 1 && wire::fe::CopyFail == wire::fe::CopyDone + 3);
  auto d = static_cast<unsigned char>(type - wire::fe::CopyDone);
  return d <= 3 && ((0b1011u >> d) & 1u);
}
static_assert(is_copy_message('c') && is_copy_message('d') && is_copy_message('f') && !is_copy_message('e') &&
              !is_copy_message('Q') && !is_copy_message('g'));

enum class Outcome {
  Detach,
  Resume,
  ClientGone,
  ClientError,
  ServerGone,
  ServerError,
  StatementMode,
  FreeDatabases,
  CheckPins,      // quiet and pinned, after a statement that may have ended what pins: ask the server
  PrepareListen,  // a LISTEN is about to go to the server: the listening connection listens first
};

class Session {
 public:
  Session(tcp::socket s, Context& ctx) : client_(std::move(s)), ctx_(ctx), snap_(ctx.snapshot()) {
    t_sessions.insert(this);
    if (!t_janitor) {
      t_janitor = true;
      asio::co_spawn(client_.get_executor(), janitor(), asio::detached);
    }
    generation_ = ctx_.generation();
    register_client();
    max_packet_ = snap_->config->general.max_packet_size;
    in_.resize(16 * 1024);
    server_in_.resize(kServerChunk);
  }
  ~Session() {
    t_sessions.erase(this);
    ctx_.client_table.remove(info_->id);
    log_end();
    if (pid_) ctx_.pg_cancel.remove(pid_, cancel_->key);
    if (mailbox_ && hub_) hub_->unsubscribe(mailbox_, "*");
    end_fill();  // a client that left while its answer was being cached: let others ask
  }

  awaitable<void> run() {
    bool logged_in = false;
    {
      // client_login_timeout bounds startup + authentication.
      asio::steady_timer login_timer(client_.get_executor(), snap_->config->general.client_login_timeout);
      bool done = false;
      login_timer.async_wait([this, &done](error_code ec) {
        if (!ec && !done) {
          error_code ignored;
          client_.close(ignored);
        }
      });
      logged_in = co_await startup();
      if (logged_in) logged_in = co_await authenticate();
      done = true;
      login_timer.cancel();
    }
    if (!logged_in) co_return;
    if (database_ == kAdminDatabase) {
      co_await serve_console();
      co_return;
    }
    if (!co_await login()) {
      detach(false);  // a session-mode login that got its server connection, then failed
      co_return;
    }
    log::info("client {} {}:{} connected: user {} database {}", info_->id, info_->addr, info_->port, user_, database_);
    logged_in_ = true;
    co_await serve();
  }

  void register_client() {
    info_ = new_client_info(ctx_, "postgres", client_);
    std::weak_ptr<bool> alive = alive_;
    auto ex = client_.get_executor();
    info_->kill = [this, alive, ex] {
      asio::post(ex, [this, alive] {
        if (!alive.lock()) return;
        end_reason_ = "killed by the administrator";
        std::string out;
        wire::error_response(out, "FATAL", "57P01", "terminating connection due to administrator command (KILL)");
        error_code e;
        if (!tls_) {
          client_.non_blocking(true, e);
          client_.write_some(asio::buffer(out), e);
        } else if (!tls_->write_pending()) {  // not in the middle of another record
          tls_->write_now(asio::buffer(out), e);
        }
        client_.close(e);
      });
    };
    ctx_.client_table.add(info_);
  }

  void log_end() {
    if (!logged_in_) return;
    log::info("client {} {}:{} disconnected: user {} database {}: {}", info_->id, info_->addr, info_->port, user_,
              database_, end_reason_.empty() ? "client closed the connection" : end_reason_);
  }

  // The virtual database "sluice": admin and stats users get the console, others are refused.
  awaitable<void> serve_console() {
    const auto& cfg = *snap_->config;
    admin::Caller caller;
    caller.user = user_;
    caller.admin = cfg.is_admin(user_);
    caller.client_id = info_->id;
    caller.protocol = config::Protocol::Postgres;
    if (!caller.admin && !cfg.is_stats(user_)) {
      co_await send_error("FATAL", "42501", fmt::format("permission denied for database \"{}\"", kAdminDatabase),
                          "only general.admin_users and general.stats_users may use the admin console");
      co_return;
    }
    info_->set_identity(user_, database_, startup_.find("application_name") ? *startup_.find("application_name") : "");
    {
      std::lock_guard lock(info_->mu);
      info_->pool = kAdminDatabase;
    }
    info_->set_state(observe::ClientState::Idle);
    log::info("client {} {}:{} connected to the admin console: user {}", info_->id, info_->addr, info_->port, user_);
    logged_in_ = true;
    std::string rest(reinterpret_cast<const char*>(in_.data() + in_begin_), buffered());
    in_begin_ = in_end_;
    idle_wait_ = true;  // a shutdown closes console connections like idle clients
    co_await serve_admin(net::Channel{client_, tls_.get()}, std::move(rest), ctx_, caller, max_packet_);
  }

  // PAUSE: hold this client's next query (no error) until RESUME.
  awaitable<void> wait_while_paused() {
    co_await ctx_.controls.wait_resumed(served_database(pool_cfg_, database_), client_, *info_);
  }

  // A reload happened: take the new settings for this client's pool (between transactions).
  void refresh_config() {
    generation_ = ctx_.generation();
    auto next = ctx_.snapshot();
    const auto& cfg = *next->config;
    const config::Pool* pc = cfg.find_pool(config::Protocol::Postgres, database_);
    if (!pc || pc->cluster != pool_cfg_.cluster || pc->mode != mode_) return;  // keep what it logged in with
    snap_ = next;
    max_packet_ = cfg.general.max_packet_size;
    bind_pool(cfg, *pc);
  }

  // The pool, cluster and routing of this client's [[pools]] entry (login, and after a reload).
  void bind_pool(const config::Config& cfg, const config::Pool& pc) {
    const auto& cluster = cfg.clusters.at(pc.cluster);
    server_db_ = pc.database == "*" ? database_ : (pc.server_database.empty() ? pc.database : pc.server_database);
    pool_cfg_ = pc;
    settings_ = pool_settings(*snap_, pc);
    pool_ = ctx_.pools.get(pc, cluster.primary, creds_, server_db_, settings_);
    cluster_ = ctx_.router.find(pc.cluster);
    auto routing = cluster.routing;
    if (pc.routing) routing = *pc.routing;
    if (auto* u = cfg.find_user(user_); u && u->routing) routing = *u->routing;
    split_ = cluster_ && routing == config::Routing::ReadWriteSplit && !cluster.replicas.empty() &&
             mode_ != config::PoolMode::Session;
    member_pools_.assign(cluster.replicas.size() + 1, nullptr);
    member_pools_[0] = pool_;
    member_ = 0;
  }

  void kick() {
    if (idle_wait_) {
      error_code ec;
      client_.cancel(ec);
    }
  }

 private:
  // ---- client I/O ---------------------------------------------------------------------------

  std::size_t buffered() const { return in_end_ - in_begin_; }
  wire::Bytes buffered_bytes() const { return {in_.data() + in_begin_, buffered()}; }

  // Puts `bytes` back in front of the unread client input (a read to run again elsewhere).
  void unread(const std::string& bytes) {
    if (in_begin_ >= bytes.size()) {
      in_begin_ -= bytes.size();
      std::memcpy(in_.data() + in_begin_, bytes.data(), bytes.size());
      return;
    }
    std::vector<std::uint8_t> joined(bytes.begin(), bytes.end());
    joined.insert(joined.end(), in_.begin() + static_cast<std::ptrdiff_t>(in_begin_), in_.begin() + static_cast<std::ptrdiff_t>(in_end_));
    in_end_ = joined.size();
    in_begin_ = 0;
    joined.resize(std::max(joined.size(), in_.size()));
    in_ = std::move(joined);
  }

  // One attempt to read more client bytes without waiting, growing the buffer for a large
  // message up to max_packet_size. WantRead/WantWrite: wait with client_ready(), then try again.
  using Step = net::TlsStream::Step;
  Step try_read_client() {
    if (in_begin_ > 0 && (in_begin_ == in_end_ || in_begin_ > in_.size() / 2)) {
      std::memmove(in_.data(), in_.data() + in_begin_, buffered());
      in_end_ -= in_begin_;
      in_begin_ = 0;
    }
    // Room for the rest of the message being received. Only typed messages say their length at
    // bytes 1-4 (already checked against the limit by the caller); the untyped startup packet
    // stays within PostgreSQL's 10000-byte bound.
    std::size_t want = 4096;
    if (typed_messages_ && buffered() >= 5) {
      std::size_t len = wire::load_u32(in_.data() + in_begin_ + 1);
      if (len + 1 > buffered()) want = std::max(want, len + 1 - buffered());
    }
    std::size_t cap = typed_messages_ ? max_packet_ + 64 : wire::kMaxStartupPacket;
    if (in_.size() - in_end_ < want) in_.resize(std::min<std::size_t>(in_end_ + std::max(want, in_.size()), std::max(cap, in_.size())));
    error_code ec;
    std::size_t n = 0;
    auto room = asio::buffer(in_.data() + in_end_, in_.size() - in_end_);
    if (tls_) {
      Step st = tls_->try_read(room, n, ec);
      if (st != Step::Done) return st;
    } else {
      n = client_.read_some(room, ec);  // the socket is non-blocking
      if (ec == asio::error::would_block || ec == asio::error::try_again) return Step::WantRead;
    }
    if (ec || n == 0) return Step::Fail;
    in_end_ += n;
    if (stats_) stats_->bytes_in.fetch_add(n, std::memory_order_relaxed);
    return Step::Done;
  }

  // The client socket's readiness for a read that said WantRead (or, over TLS, WantWrite): an
  // operation awaited in the caller's own frame.
  auto client_ready(Step st, error_code& ec) {
    return client_.async_wait(st == Step::WantWrite ? tcp::socket::wait_write : tcp::socket::wait_read,
                              asio::redirect_error(use_awaitable, ec));
  }

  // Reads more client bytes (at least one); false when the client is gone. The hot paths
  // (serve, relay_attached) inline this loop to save its coroutine frame.
  awaitable<bool> read_client() {
    for (;;) {
      Step st = try_read_client();
      if (st == Step::Done || st == Step::Fail) co_return st == Step::Done;
      error_code ec;
      co_await client_ready(st, ec);
      if (ec) co_return false;
    }
  }

  // One attempt to read server bytes into server_in_ without waiting (as try_read_client).
  [[gnu::always_inline]] Step try_read_server(std::size_t& n, error_code& ec) {
    n = 0;
    if (server_->tls) return server_->tls->try_read(asio::buffer(server_in_), n, ec);
    n = server_->sock.read_some(asio::buffer(server_in_), ec);  // non-blocking
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      ec.clear();
      return Step::WantRead;
    }
    return ec ? Step::Fail : Step::Done;
  }

  awaitable<bool> write_client(std::string& buf) {
    if (stats_) stats_->bytes_out.fetch_add(buf.size(), std::memory_order_relaxed);
    error_code ec;
    if (tls_) co_await tls_->write(asio::buffer(buf), ec);
    else co_await asio::async_write(client_, asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    buf.clear();
    co_return !ec;
  }

  // Sends an ErrorResponse; FATAL ones end the session.
  // Parameters are owning strings: coroutine frames must not hold views of caller temporaries.
  awaitable<void> send_error(std::string severity, std::string code, std::string message, std::string hint = {}) {
    if (severity == "FATAL") {
      if (logged_in_) end_reason_ = fmt::format("{} {}", code, message);
      else
        log::info("client {} {}:{} refused: user {} database {}: {} {}", info_->id, info_->addr, info_->port,
                  user_.empty() ? "?" : user_, database_.empty() ? "?" : database_, code, message);
    }
    std::string out;
    wire::error_response(out, severity, code, message, {}, hint);
    co_await write_client(out);
  }

  // Reads one typed message during authentication.
  awaitable<std::optional<wire::Frame>> read_auth_message() {
    for (;;) {
      wire::Frame f;
      auto d = wire::next_frame(buffered_bytes(), kAuthMaxMessage, f);
      if (d == wire::Decode::Ok) {
        in_begin_ += f.size();
        co_return f;
      }
      if (d == wire::Decode::Malformed) {
        co_await send_error("FATAL", "08P01", "invalid message length during authentication");
        co_return std::nullopt;
      }
      if (!co_await read_client()) co_return std::nullopt;
    }
  }

  // ---- stage: startup -----------------------------------------------------------------------

  awaitable<bool> startup() {
    for (;;) {
      std::size_t consumed = 0;
      auto d = wire::parse_startup(buffered_bytes(), startup_, consumed);
      if (d == wire::Decode::NeedMore) {
        if (!co_await read_client()) co_return false;
        continue;
      }
      if (d == wire::Decode::Malformed) {
        co_await send_error("FATAL", "08P01", "invalid startup packet layout");
        co_return false;
      }
      in_begin_ += consumed;
      if (startup_.code == wire::kSslRequestCode || startup_.code == wire::kGssEncRequestCode) {
        if (buffered() != 0) {  // bytes after SSLRequest before our answer: refuse (CVE-2021-23222)
          co_await send_error("FATAL", "08P01", "unexpected data after SSLRequest");
          co_return false;
        }
        if (startup_.code == wire::kSslRequestCode && snap_->pg_tls && !tls_) {
          std::string yes = "S";
          if (!co_await write_client(yes)) co_return false;
          tls_ = std::make_unique<net::TlsStream>(client_, snap_->pg_tls, net::TlsStream::Role::Server);
          error_code ec;
          co_await tls_->handshake(ec);
          if (ec) {
            log::info("client {} {}:{}: TLS handshake failed: {}", info_->id, info_->addr, info_->port, ec.message());
            co_return false;
          }
          info_->tls = true;
          continue;
        }
        std::string no = "N";
        if (!co_await write_client(no)) co_return false;
        continue;
      }
      if (startup_.code == wire::kCancelRequestCode) {
        co_await forward_cancel(startup_.cancel_pid, startup_.cancel_key);
        co_return false;
      }
      if (startup_.code >> 16 != 3) {
        co_await send_error("FATAL", "0A000",
                            fmt::format("unsupported frontend protocol {}.{}: server supports 3.0",
                                        startup_.code >> 16, startup_.code & 0xffff));
        co_return false;
      }
      if (startup_.find("replication")) {
        co_await send_error("FATAL", "08P01", "replication connections are not supported by Sluice");
        co_return false;
      }
      const std::string* user = startup_.find("user");
      if (!user || user->empty()) {
        co_await send_error("FATAL", "28000", "no PostgreSQL user name specified in startup packet");
        co_return false;
      }
      user_ = *user;
      typed_messages_ = true;  // everything after StartupMessage is a typed message
      if (!tls_ && snap_->config->postgres.tls.mode == config::TlsMode::Require) {
        co_await send_error("FATAL", "28000", "Sluice requires TLS on this listener: connect with sslmode=require or stronger");
        co_return false;
      }
      const std::string* db = startup_.find("database");
      database_ = db && !db->empty() ? *db : user_;
      co_return true;
    }
  }

  awaitable<void> forward_cancel(std::uint32_t pid, std::uint32_t key) {
    auto target = ctx_.pg_cancel.find(pid, key);
    if (!target) co_return;  // unknown key or client idle: nothing to cancel (55.2.7: no reply)
    co_await send_cancel_request(target->endpoint, target->server_pid, target->server_key);
    log::debug("forwarded cancel for client pid {} to {}", pid, target->endpoint.text());
  }

  // ---- stage: auth --------------------------------------------------------------------------

  // A failed login, counted per client address; past the burst, its answer waits.
  awaitable<void> throttle_failed_login() {
    co_await hold_failed_login(ctx_, snap_->config->general, info_, client_.get_executor());
  }

  awaitable<bool> authenticate() {
    auto it = snap_->credentials.find(user_);
    if (it == snap_->credentials.end()) {
      co_await throttle_failed_login();
      co_await send_error("FATAL", "28000", fmt::format("role \"{}\" does not exist", user_),
                          "add the user to [[users]] in Sluice's configuration");
      co_return false;
    }
    creds_ = it->second;
    // Client certificates: the listener's tls_client_cert, and `auth = "cert"` users.
    std::optional<std::string> cn;
    auto verdict = net::check_client_cert(tls_ ? tls_->native_handle() : nullptr, snap_->config->postgres.tls.client_cert,
                                          creds_->client_auth == config::AuthMethod::Cert, user_, cn);
    if (verdict == net::CertVerdict::Missing) {
      co_await throttle_failed_login();
      co_await send_error("FATAL", "28000", "connection requires a valid client certificate",
                          tls_ ? "" : "connect with TLS and a certificate signed by the listener's tls_ca");
      co_return false;
    }
    if (verdict == net::CertVerdict::WrongUser) {
      co_await throttle_failed_login();
      co_await send_error("FATAL", "28000", fmt::format("certificate authentication failed for user \"{}\"", user_),
                          fmt::format("the certificate's common name is \"{}\"", *cn));
      co_return false;
    }
    ClientAuth auth(*creds_, tls_ ? snap_->pg_tls_end_point : std::string());
    std::string out;
    auto step = auth.start(out);
    // AuthenticationSASL (code 10) or a password request: PostgreSQL's words for a wrong answer.
    const bool sasl = out.size() >= 9 && wire::load_u32(reinterpret_cast<const std::uint8_t*>(out.data()) + 5) == 10;
    while (step == ClientAuth::Step::Send) {
      if (!co_await write_client(out)) co_return false;
      auto f = co_await read_auth_message();
      if (!f) co_return false;
      if (f->type != wire::fe::Password) {
        co_await send_error("FATAL", "08P01",
                            fmt::format("expected {} response, got message type {}", sasl ? "SASL" : "password",
                                        static_cast<int>(static_cast<unsigned char>(f->type))));
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

  // ---- stage: login (pool choice, ParameterStatus, BackendKeyData) --------------------------

  awaitable<bool> login() {
    const auto& cfg = *snap_->config;
    if (ctx_.shutting_down) {
      co_await send_error("FATAL", "57P03", "Sluice is shutting down");
      co_return false;
    }
    const config::Pool* pc = cfg.find_pool(config::Protocol::Postgres, database_);
    if (!pc) {
      log::info("client {} {}:{}: user {} asked for unknown database {}", info_->id, info_->addr, info_->port, user_, database_);
      co_await send_error("FATAL", "3D000", fmt::format("database \"{}\" does not exist", database_),
                          "add a [[pools]] entry for it, or a database = \"*\" pool");
      co_return false;
    }
    const std::string pool_db = served_database(*pc, database_);
    if (ctx_.controls.disabled(pool_db)) {
      co_await send_error("FATAL", "55000", fmt::format("database \"{}\" is not currently accepting connections", database_),
                          "an administrator disabled it (ENABLE on the admin console)");
      co_return false;
    }
    stats_ = ctx_.stats.get("postgres", pool_db);
    relay_.set_stats(stats_.get(), &info_->queries);
    relay_.set_statement_limit(snap_->config->general.max_client_prepared_statements);
    info_->set_identity(user_, database_, startup_.find("application_name") ? *startup_.find("application_name") : "");
    {
      std::lock_guard lock(info_->mu);
      info_->pool = pool_db;
    }
    mode_ = pc->mode;
    relay_.set_pooled(mode_ != config::PoolMode::Session);
    bind_pool(cfg, *pc);

    auto params = pool_->server_params();
    if (!params) {
      // First client of this pool: a server connection tells us the server's parameters (and
      // whether the database exists at all).
      auto r = co_await pool_->lease(client_.get_executor(), cfg.general.query_wait_timeout);
      if (!r.conn) {
        co_await report_lease_failure(r);
        co_return false;
      }
      params = r.conn->params;
      pool_->release(std::move(r.conn), true);
    }
    for (auto& [k, v] : params->items) relay_.client_params.set(k, v);
    for (auto& [k, v] : startup_.params) {
      if (k == "user" || k == "database" || k == "replication") continue;
      if (k == "options") parse_options(v, relay_.client_params);
      else if (valid_param_name(k) && settable(k)) relay_.client_params.set(k, v);
    }
    if (mode_ == config::PoolMode::Session) {
      // The client's server session starts now: its BackendKeyData carries the server's real
      // process id (pg_terminate_backend, pg_stat_activity work with it), with a key of Sluice's.
      prepare_attach();
      if (!attach_ready() && !co_await attach_rest()) co_return false;
    }
    std::string out;
    for (auto& [k, v] : relay_.client_params.items)
      if (params->find(k)) wire::parameter_status(out, k, v);
    auto [pid, target] = ctx_.pg_cancel.add(server_ ? server_->backend_pid : 0);
    pid_ = pid;
    cancel_ = target;
    if (server_) set_cancel_target(true);
    wire::backend_key_data(out, pid, target->key);
    wire::ready_for_query(out, 'I');
    info_->set_state(observe::ClientState::Idle);
    co_return co_await write_client(out);
  }

  awaitable<void> report_lease_failure(const pool::LeaseResult& r) {
    auto f = describe_lease_failure(r, pool_->name(), snap_->config->general.query_wait_timeout);
    if (f.sqlstate.empty()) f.sqlstate = "08006";
    co_await send_error("FATAL", f.sqlstate, f.message, f.hint);
  }

  // ---- stages: attach / relay / detach ------------------------------------------------------

  // Runs a statement of Sluice's own on the server, swallowing the replies: true when it succeeded
  // and left no transaction open. With `status`, the final transaction status is stored there and
  // errors are expected (not logged).
  // Reads whole messages from the attached server connection, handing each to `each` (false from
  // it stops the read), until `readies` ReadyForQuery messages have come. False when the
  // connection failed or sent something malformed.
  template <typename Each>
  awaitable<bool> read_until_ready(std::size_t readies, Each each) {
    std::vector<std::uint8_t> buf;
    std::array<std::uint8_t, 4096> chunk;
    error_code ec;
    while (readies > 0) {
      std::size_t n = co_await server_->channel().read_some(asio::buffer(chunk), ec);
      if (ec) co_return false;
      buf.insert(buf.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
      std::size_t pos = 0;
      while (readies > 0) {
        wire::Frame f;
        auto d = wire::next_frame(wire::Bytes(buf).subspan(pos), 1 << 20, f);
        if (d == wire::Decode::Malformed) co_return false;
        if (d == wire::Decode::NeedMore) break;
        pos += f.size();
        if (!each(f)) co_return false;
        if (f.type == wire::be::ReadyForQuery) --readies;
      }
      buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(pos));
    }
    co_return true;
  }

  awaitable<bool> run_internal(const std::string& sql, bool forward_param_changes, char* status = nullptr) {
    std::string out;
    wire::query(out, sql);
    error_code ec;
    co_await server_->channel().write(asio::buffer(out), ec);
    if (ec) co_return false;
    bool ok = true;
    char final_status = 0;
    std::string to_client;
    bool read = co_await read_until_ready(1, [&](const wire::Frame& f) {
      if (f.type == wire::be::ErrorResponse) {
        wire::ErrorFields ef;
        wire::parse_error_fields(f.body, ef);
        if (!status)
          log::warn("pool {}: \"{}\" failed on server connection {}: {}", pool_->name(), sql, server_->id, ef.message);
        ok = false;
      } else if (f.type == wire::be::ParameterStatus) {
        std::string_view name, value;
        if (wire::parse_parameter_status(f.body, name, value)) {
          server_->params.set(name, value);
          const std::string* mine = relay_.client_params.find(name);
          if (forward_param_changes && (!mine || *mine != value)) {
            relay_.client_params.set(name, value);
            wire::parameter_status(to_client, name, value);
          }
        }
      } else if (f.type == wire::be::ReadyForQuery && f.body.size() == 1) {
        final_status = static_cast<char>(f.body[0]);
      }
      return true;
    });
    if (!read) co_return false;
    if (!to_client.empty()) co_await write_client(to_client);
    if (status) *status = final_status;
    co_return ok&& final_status == 'I';
  }

  // Makes the server connection's session parameters the client's. Each SET goes as its own
  // Query, all in one write: one the server refuses (a name it does not know, a value it rejects,
  // a parameter that cannot change now) fails alone. The client gets the server's error as a
  // WARNING, the parameter is dropped from what Sluice re-applies, and the client goes on.
  // False only when the server connection itself failed.
  awaitable<bool> sync_params() {
    auto& server = *server_;
    if (server.params.fingerprint == relay_.client_params.fingerprint) co_return true;  // identical sets
    std::vector<std::pair<std::string, std::string>> sets;                              // (name, statement)
    for (auto& [k, v] : relay_.client_params.items) {
      if (!settable(k)) continue;
      const std::string* cur = server.params.find(k);
      if (cur && *cur == v) continue;
      if (!cur && !server.initial.find(k) && v.empty()) continue;
      if (k == "search_path") sets.emplace_back(k, fmt::format("SET search_path TO {}", v));
      else if (!v.empty() && v[0] == pool::kRawSqlValue)
        sets.emplace_back(k, fmt::format("SET {} TO {}", k, v.substr(1)));
      else sets.emplace_back(k, fmt::format("SET {} TO {}", k, quote_literal(v)));
    }
    std::vector<std::string> defaults;
    for (auto& [k, v] : server.params.items)
      if (!server.initial.find(k) && !relay_.client_params.find(k)) {
        sets.emplace_back(k, fmt::format("SET {} TO DEFAULT", k));
        defaults.push_back(k);
      }
    if (sets.empty()) co_return true;
    std::string out;
    for (auto& st : sets) wire::query(out, st.second);
    error_code ec;
    co_await server.channel().write(asio::buffer(out), ec);
    if (ec) co_return false;
    std::string to_client;
    std::vector<std::string> refused;
    std::size_t answered = 0;
    bool fatal = false;
    bool read = co_await read_until_ready(sets.size(), [&](const wire::Frame& f) {
      if (f.type == wire::be::ErrorResponse) {
        wire::ErrorFields ef;
        wire::parse_error_fields(f.body, ef);
        if (ef.severity == "FATAL" || ef.severity == "PANIC") return !(fatal = true);
        const std::string& name = sets[answered].first;
        log::info("pool {}: server connection {} refused session parameter {}: {}", pool_->name(), server.id, name,
                  ef.message);
        wire::notice_response(to_client, "WARNING", std::string(ef.code), std::string(ef.message), {},
                              fmt::format("Sluice applies the session parameters of this client on each server "
                                          "connection it gets; the server refused \"{}\", so it is no longer applied",
                                          name));
        refused.push_back(name);
      } else if (f.type == wire::be::ParameterStatus) {
        std::string_view name, value;
        if (wire::parse_parameter_status(f.body, name, value)) {
          server.params.set(name, value);
          const std::string* mine = relay_.client_params.find(name);
          if (!mine || *mine != value) {
            relay_.client_params.set(name, value);
            wire::parameter_status(to_client, name, value);
          }
        }
      } else if (f.type == wire::be::ReadyForQuery) {
        ++answered;
      }
      return true;
    });
    if (!read || fatal) co_return false;
    for (auto& k : refused) relay_.client_params.erase(k);
    for (auto& [k, v] : relay_.client_params.items)
      if (settable(k) && !server.initial.find(k)) server.params.set(k, v);
    for (auto& k : defaults) server.params.erase(k);
    if (!to_client.empty()) co_await write_client(to_client);
    co_return true;
  }

  void set_cancel_target(bool attached) {
    if (!cancel_) return;  // logging in: set once the client's key exists
    if (!attached) {
      cancel_->endpoint.store(nullptr, std::memory_order_release);
      return;
    }
    cancel_->server_pid_key.store(std::uint64_t(server_->backend_pid) << 32 | server_->backend_key,
                                  std::memory_order_relaxed);
    cancel_->endpoint.store(&pool_->endpoint(), std::memory_order_release);
  }

  // ---- result cache ---------------------------------------------------------------------------

  // Key: normalized text + database + user + the settings that change results.
  std::string cache_key(const std::string& normalized) const {
    std::string key = normalized;
    for (auto* part : {&database_, &user_}) key.append("\x1f").append(*part);
    for (const char* p : {"search_path", "TimeZone", "DateStyle", "IntervalStyle", "client_encoding",
                          "standard_conforming_strings"}) {
      key.push_back('\x1f');
      if (auto* v = relay_.client_params.find(p)) key += *v;
    }
    return key;
  }



  // A simple-protocol read outside a transaction: served from the cache, or marked so that its
  // answer is kept when it completes.
  awaitable<bool> try_cache(const wire::Frame& f) {
    wire::Reader r(f.body);
    std::string_view text = r.cstr();
    if (!r.ok() || !sql::classify(text, sql::Dialect::Postgres).read()) co_return false;
    auto cand = ctx_.cache_policy()->consider(text, sql::Dialect::Postgres, database_, user_);
    if (!cand) co_return false;
    co_return co_await lookup_or_fill(cache_key(cand->normalized), *cand, f.size());
  }

  // An extended-protocol batch, complete in the buffer: [Parse (unnamed)] Bind [Describe portal]
  // Execute Sync. Keyed by its statement text, the message shape, the Bind parameters and formats
  // and the Execute row limit.
  awaitable<bool> try_cache_extended() {
    std::size_t pos = 0;
    std::string shape, bind_rest, exec_body, query;
    auto all = buffered_bytes();
    for (;;) {
      wire::Frame m;
      if (wire::next_frame(all.subspan(pos), max_packet_, m) != wire::Decode::Ok) co_return false;  // incomplete
      pos += m.size();
      shape.push_back(m.type);
      if (m.type == wire::fe::Parse) {
        wire::ParseView pv;
        if (!wire::parse_parse(m.body, pv) || !pv.name.empty() || shape.size() != 1) co_return false;
        query = std::string(pv.query);
      } else if (m.type == wire::fe::Bind) {
        wire::BindHead bh;
        if (!wire::parse_bind_head(m.body, bh) || !bh.portal.empty() || !bind_rest.empty()) co_return false;
        if (query.empty()) {
          const pool::Statement* st = relay_.find_statement(bh.statement);
          if (!st) co_return false;
          wire::Frame pf;
          wire::ParseView pv;
          auto bytes = wire::as_bytes(st->parse_message);
          if (wire::next_frame(bytes, bytes.size(), pf) != wire::Decode::Ok || !wire::parse_parse(pf.body, pv)) co_return false;
          query = std::string(pv.query);
        }
        bind_rest = std::string(wire::as_sv(m.body.subspan(bh.rest_offset)));
      } else if (m.type == wire::fe::Describe) {
        wire::TargetView tv;
        if (!wire::parse_target(m.body, tv) || tv.kind != 'P' || !tv.name.empty()) co_return false;
      } else if (m.type == wire::fe::Execute) {
        exec_body = std::string(wire::as_sv(m.body));
      } else if (m.type == wire::fe::Sync) {
        break;
      } else {
        co_return false;
      }
      if (shape.size() > 5) co_return false;
    }
    if (bind_rest.empty() || exec_body.empty() || query.empty()) co_return false;
    if (!sql::classify(query, sql::Dialect::Postgres).read()) co_return false;
    auto cand = ctx_.cache_policy()->consider(query, sql::Dialect::Postgres, database_, user_);
    if (!cand) co_return false;
    std::string key = cache_key(cand->normalized);
    key.append("\x1f" "extended\x1f").append(shape).append("\x1f").append(bind_rest).append("\x1f").append(exec_body);
    co_return co_await lookup_or_fill(std::move(key), *cand, pos);
  }

  // A hit is written to the client (the request's `consume` bytes are used up); a miss marks this
  // session as the one filling `key`, or waits (bounded) for another session's fill.
  awaitable<bool> lookup_or_fill(std::string key, const cache::Candidate& cand, std::size_t consume) {
    auto wait = cache_wait_limit(snap_->config->general);
    auto started = observe::Clock::now();
    auto found = co_await cache_lookup(*ctx_.cache, key, pool_->name(), client_.get_executor(), wait, ryw_token());
    if (found.hit) {
      in_begin_ += consume;
      std::string out = *found.hit;
      wire::ready_for_query(out, 'I');
      co_await write_client(out);
      auto us = observe::micros_since(started);
      stats_->query(us);  // a query (and a transaction) the client made, answered by Sluice
      stats_->xact(us);
      info_->queries.fetch_add(1, std::memory_order_relaxed);
      co_return true;
    }
    if (!found.fill) co_return false;  // another client's fill is slow: ask the server, keep nothing
    fill_key_ = key;  // this session fills it: end_fill when done, whatever happens
    capturing_ = true;
    cache_tables_.clear();
    for (auto& t : cand.tables) cache_tables_.push_back(cache::table_key(t));
    fill_ticket_ = ctx_.cache->fill_ticket(cache_tables_, pool_cfg_.cluster);
    capture_.clear();
    cache_key_ = std::move(key);
    cache_ttl_ = cand.ttl;
    co_return false;
  }

  void capture(const std::string& bytes) {
    if (capture_.size() + bytes.size() > snap_->config->cache.max_entry_bytes) {
      capturing_ = false;
      capture_.clear();
      return;
    }
    capture_ += bytes;
  }

  void end_fill() {
    if (fill_key_.empty() || !ctx_.cache) return;
    ctx_.cache->end_fill(fill_key_);
    fill_key_.clear();
  }

  // Keeps a complete, error-free answer that ended outside a transaction.
  void finish_capture() {
    struct EndFill {
      Session* s;
      ~EndFill() { s->end_fill(); }
    } end{this};
    if (!capturing_) return;
    capturing_ = false;
    std::size_t pos = 0;
    char last = 0, status = 0;
    auto all = wire::as_bytes(capture_);
    for (;;) {
      wire::Frame fr;
      if (wire::next_frame(all.subspan(pos), all.size(), fr) != wire::Decode::Ok) break;
      if (fr.type == wire::be::ErrorResponse) return;
      last = fr.type;
      if (fr.type == wire::be::ReadyForQuery && fr.body.size() == 1) status = static_cast<char>(fr.body[0]);
      pos += fr.size();
    }
    if (pos != capture_.size() || last != wire::be::ReadyForQuery || status != 'I') return;
    // Kept with the position its server had before it ran the query (stamped at attach): served
    // only to clients whose writes that covers; a replica's kept only if it covers the writes
    // through Sluice to the tables it read.
    cache::Origin origin{read_route_, std::move(route_position_)};
    capture_.resize(capture_.size() - 6);  // ReadyForQuery is sent fresh on every hit
    ctx_.cache->put_if_current(cache_key_, std::move(capture_), cache_tables_, cache_ttl_, fill_ticket_, origin,
                               pool_->name());
    capture_.clear();
  }

  // Writes forwarded to the server: the tables they touch lose their cached reads when the
  // transaction (or the autocommit statement) ends; a ROLLBACK forgets them.
  void note_for_invalidation(const wire::Frame& f) {
    std::string_view text;
    wire::Reader r(f.body);
    if (f.type == wire::fe::Parse) r.cstr();
    text = r.cstr();
    if (!r.ok()) return;
    auto cls = sql::classify(text, sql::Dialect::Postgres);
    if (temp_table_statement(text)) no_cache_ = true;  // its reads could name a temporary table
    if (cls.kind == sql::StatementKind::Rollback) {
      pending_invalidation_.clear();
      invalidate_all_ = false;
      return;
    }
    if (cls.kind != sql::StatementKind::Write) return;
    auto refs = sql::tables(text, sql::Dialect::Postgres);
    if (!refs.complete) invalidate_all_ = true;
    for (auto& t : refs.names) pending_invalidation_.push_back(cache::table_key(t));
  }

  // CREATE TEMP[ORARY] TABLE / SELECT ... INTO TEMP: from then on this client's reads may name a
  // table only its session has, so none of them is cached or answered from the cache.
  static bool temp_table_statement(std::string_view text) {
    sql::Lexer lex(text, sql::Dialect::Postgres);
    sql::Token prev;
    for (auto t = lex.next(); t.kind != sql::Token::End; t = lex.next()) {
      if ((t.is("temp") || t.is("temporary")) && (prev.is("create") || prev.is("into") || prev.is("global") || prev.is("local")))
        return true;
      prev = t;
    }
    return false;
  }

  // Writes forwarded to the server are done (the transaction, or the autocommit statement, ended):
  // drop their tables' cached answers. With `position_follows`, the write's replication position
  // is about to be learned (take_write_token): until settle_invalidations(), no replica's answer
  // to those tables is kept.
  void apply_invalidations(bool position_follows) {
    if (!ctx_.cache_enabled() || relay_.tx_status() != 'I') return;
    if (pending_invalidation_.empty() && !invalidate_all_) return;
    if (position_follows)
      ctx_.cache->write_marks().begin(pool_cfg_.cluster, pending_invalidation_, invalidate_all_,
                                      cluster_->replayed_everywhere_by());
    if (invalidate_all_) ctx_.cache->invalidate_all();
    else
      for (auto& t : pending_invalidation_) ctx_.cache->invalidate_table(t);
    if (position_follows) {
      marked_tables_ = std::move(pending_invalidation_);
      marked_all_ = invalidate_all_;
      marks_pending_ = true;
    }
    pending_invalidation_.clear();
    invalidate_all_ = false;
  }
  void settle_invalidations(const router::Position& at) {
    if (!marks_pending_) return;
    marks_pending_ = false;
    ctx_.cache->write_marks().settle(pool_cfg_.cluster, marked_tables_, marked_all_, at,
                                     cluster_->replayed_everywhere_by());
    marked_tables_.clear();
  }
  // The answer about to be captured: the position its server has surely applied before running
  // it (the last health check's, or what a verification read; on the primary also this client's
  // own last write).
  void stamp_route() {
    route_position_ = split_ ? cluster_->applied(member_, !read_route_, token_) : router::Position{};
  }
  // The read-your-writes token a cached answer must cover for this client (null: any).
  const router::Position* ryw_token() const {
    return split_ && cluster_->config().consistency == config::Consistency::ReadYourWrites ? &token_ : nullptr;
  }

  // ---- routing ------------------------------------------------------------------------------

  std::shared_ptr<pool::Pool> member_pool(int m) {
    auto& p = member_pools_[static_cast<std::size_t>(m)];
    if (!p) p = ctx_.pools.get(pool_cfg_, cluster_->view()->members[static_cast<std::size_t>(m)].endpoint, creds_, server_db_, settings_);
    return p;
  }

  // Chooses the member for the next batch from its first message: reads (and read-only
  // transactions) to a replica that has the client's writes, everything else to the primary.
  void choose_route() {
    read_route_ = false;
    if (!split_) return;
    sql::Classification cls;
    wire::Frame f;
    if (wire::next_frame(buffered_bytes(), max_packet_, f) == wire::Decode::Ok) {
      const auto& cc = cluster_->config();
      if (f.type == wire::fe::Query) {
        wire::Reader r(f.body);
        cls = sql::classify(r.cstr(), sql::Dialect::Postgres, cc.write_functions);
      } else if (f.type == wire::fe::Parse) {
        wire::ParseView pv;
        if (wire::parse_parse(f.body, pv)) cls = sql::classify(pv.query, sql::Dialect::Postgres, cc.write_functions);
      } else if (f.type == wire::fe::Bind) {
        // A named statement prepared earlier: classified once, when first bound.
        wire::BindHead bh;
        const pool::Statement* st = wire::parse_bind_head(f.body, bh) ? relay_.find_statement(bh.statement) : nullptr;
        if (st) {
          int route = st->route.load(std::memory_order_relaxed);
          if (route < 0) {
            wire::Frame pf;
            wire::ParseView pv;
            auto bytes = wire::as_bytes(st->parse_message);
            route = (wire::next_frame(bytes, bytes.size(), pf) == wire::Decode::Ok && wire::parse_parse(pf.body, pv) &&
                     sql::classify(pv.query, sql::Dialect::Postgres, cc.write_functions).read())
                        ? 1
                        : 0;
            st->route.store(route, std::memory_order_relaxed);
          }
          if (route == 1) cls.kind = sql::StatementKind::Read;
        }
      }
    }
    bool read = cls.read() || (cls.kind == sql::StatementKind::Begin && cls.read_only);
    if (cls.hint == sql::Hint::Primary) read = false;
    if (cls.hint == sql::Hint::Replica) read = true;
    // A read outside a transaction may run again on another member if its server dies first.
    retryable_read_ = read && cls.kind != sql::StatementKind::Begin;
    // After a failed position check, give the replica a moment before asking again.
    bool may_verify = std::chrono::steady_clock::now() - verify_failed_at_ > std::chrono::milliseconds(50);
    auto d = cluster_->route(read, token_, may_verify);
    read_route_ = d.replica;
    verify_token_ = d.verify;
    if (!read) wrote_ = true;
    member_ = d.member;
    pool_ = member_pool(d.member);
    (read ? cancel_->routed_reads : cancel_->routed_writes).fetch_add(1, std::memory_order_relaxed);
  }

  // After a write reached the primary and the client is between transactions: the primary's
  // WAL position, which a replica must have replayed before it serves this client's reads.
  // After a write outside a transaction, under read-your-writes: the primary's position.
  bool needs_write_token() const {
    return split_ && wrote_ && !read_route_ && relay_.tx_status() == 'I' &&
           cluster_->config().consistency == config::Consistency::ReadYourWrites;
  }
  awaitable<void> take_write_token() {
    wrote_ = false;
    auto pos = co_await router::fetch_pg_lsn(*server_);
    log::debug("read-your-writes token {}", pos ? pos->text() : std::string("(failed)"));
    if (pos) {
      token_ = *pos;
    } else {  // the write's position is unknown: this client's reads stay on the primary
      token_ = router::Position::unreachable();
      relay_.mark_server_broken();
    }
  }

  // Attaching to a server connection. The common case (an idle connection on this worker, same
  // session parameters) never suspends: prepare_attach() + attach_ready(); attach_rest() waits in
  // line, probes, verifies a read-your-writes position or applies parameters.
  void prepare_attach() {
    if (ctx_.generation() != generation_) refresh_config();
    if (split_) choose_route();
    batch_sent_ = false;
    journal_.clear();
    journal_on_ = split_ && retryable_read_ && relay_.tx_status() == 'I' && !failed_tx_ && retries_ < kMaxReadRetries;
    if (retrying_) relay_.begin_retry();  // the client has the answer's preamble: expect it again
    else relay_.begin_request(journal_on_);
    retrying_ = false;
    info_->request_time_us.store(observe::coarse_epoch_us(), std::memory_order_relaxed);
    server_ = pool_->try_lease_local(client_.get_executor());
  }

  bool attach_ready() {
    if (!server_ || verify_token_ || server_->params.fingerprint != relay_.client_params.fingerprint) return false;
    relay_.reset_server_side();
    client_out_.clear();
    server_out_.clear();
    finish_attach();
    return true;
  }

  void finish_attach() {
    if (capturing_) stamp_route();
    set_cancel_target(true);
    if (split_) cluster_->counters(member_).outstanding.fetch_add(1, std::memory_order_relaxed);
    info_->set_state(observe::ClientState::Active);
    info_->server_id.store(server_->id, std::memory_order_relaxed);
    server_->client_id.store(info_->id, std::memory_order_relaxed);
  }

  awaitable<bool> attach_rest() {
    std::optional<observe::Clock::time_point> wait_start;
    if (!server_) {
      wait_start = observe::Clock::now();
      info_->set_state(observe::ClientState::Waiting);
    }
    if (!server_ && read_route_) {
      // A replica that cannot be reached is out at once; the read goes to the primary.
      auto r = co_await pool_->lease(client_.get_executor(), snap_->config->general.query_wait_timeout);
      if (r.conn) {
        server_ = std::move(r.conn);
      } else if (!r.timed_out) {
        cluster_->report_failure(member_);
        read_route_ = false;
        member_ = std::max(0, cluster_->pick_write());
        pool_ = member_pool(member_);
      }
    }
    if (!server_) {
      auto r = co_await pool_->lease(client_.get_executor(), snap_->config->general.query_wait_timeout);
      if (!r.conn) {
        co_await report_lease_failure(r);
        co_return false;
      }
      server_ = std::move(r.conn);
    }
    if (verify_token_) {
      // No replica was known to have this client's last write: ask the chosen one directly
      // (replicas are usually milliseconds behind, health checks up to a period).
      verify_token_ = false;
      auto pos = co_await router::fetch_replica_position(*server_, config::Protocol::Postgres);
      if (pos) cluster_->note_position(member_, *pos);
      if (!pos || !pos->covers(token_)) {
        verify_failed_at_ = std::chrono::steady_clock::now();
        pool_->release(std::move(server_), pos.has_value());
        read_route_ = false;
        member_ = std::max(0, cluster_->pick_write());
        pool_ = member_pool(member_);
        auto r = co_await pool_->lease(client_.get_executor(), snap_->config->general.query_wait_timeout);
        if (!r.conn) {
          co_await report_lease_failure(r);
          co_return false;
        }
        server_ = std::move(r.conn);
      }
    }
    relay_.reset_server_side();
    client_out_.clear();
    server_out_.clear();
    if (server_->params.fingerprint != relay_.client_params.fingerprint && !co_await sync_params()) {
      pool_->release(std::move(server_), false);
      co_await send_error("FATAL", "08006", "sluice: could not apply session parameters on the server connection");
      co_return false;
    }
    if (wait_start && stats_) stats_->wait(observe::micros_since(*wait_start));
    finish_attach();
    co_return true;
  }

  // ", the server said: FATAL 57P01: ..." when the server announced its end.
  std::string end_note() const {
    const auto& m = relay_.server_end_message();
    return m.empty() ? std::string() : ", the server said: " + m;
  }

  // The server connection died with this client's requests unanswered, in a pooled mode. The
  // client's connection to Sluice is fine and stays: each request gets the error the server gives
  // a failed statement, and a transaction that was open is failed (the client rolls it back, as
  // after any error). Only a message half-sent to the client leaves no way on: then it is closed.
  awaitable<bool> fail_in_flight() {
    const std::string server = pool_->endpoint().text(), note = end_note();
    if (relay_.mid_message_to_client()) {
      log::warn("pool {}: server connection {} lost in the middle of a message to client {}{}; closing the client",
                pool_->name(), server_->id, info_->id, note);
      end_reason_ = "its server connection was lost in the middle of a message";
      detach(false);
      co_return false;
    }
    const bool in_tx = relay_.tx_status() != 'I';
    const Loss loss = classify_loss(in_tx, retryable_read_ && relay_.outstanding_groups() <= 1);
    const std::string code = loss_sqlstate(loss), message = "sluice: " + loss_text(loss, server),
                      hint = loss_hint(loss);
    log::warn("pool {}: server connection {} lost while serving client {}{}; the client gets {} and stays connected",
              pool_->name(), server_->id, info_->id, note, code);
    if (wrote_ && !in_tx) {  // a write's outcome is unknown: this client's reads stay on the primary
      token_ = router::Position::unreachable();
      wrote_ = false;
    }
    client_out_.clear();
    retries_ = 0;
    discard_until_sync_ = relay_.fail_outstanding(code, message, hint, in_tx ? 'E' : 'I', client_out_);
    failed_tx_ = in_tx;
    if (!in_tx) {  // a write may have landed: its tables' answers go, and replicas' until they surely have it
      apply_invalidations(split_);
      settle_invalidations(router::Position::unreachable());
    }
    detach(false);
    co_return co_await write_client(client_out_);
  }

  // The client was told its transaction failed: the next server connection gets a failed
  // transaction too, so whatever the client sends until it ends the transaction is answered by the
  // server itself (25P02, and ROLLBACK or COMMIT ending it).
  awaitable<bool> recreate_failed_tx() {
    failed_tx_ = false;
    char status = 0;
    co_await run_internal("BEGIN; SELECT 1/0", false, &status);
    if (status != 'E') {
      detach(false);
      co_await send_error("FATAL", "08006",
                          "sluice: could not restore this client's failed transaction on a server connection");
      co_return false;
    }
    relay_.set_tx_status('E');
    co_return true;
  }

  void detach(bool reusable) {
    if (!server_) return;
    unwatch_server();
    server_dead_ = false;
    info_->set_state(observe::ClientState::Idle);
    info_->server_id.store(0, std::memory_order_relaxed);
    if (split_) cluster_->counters(member_).outstanding.fetch_sub(1, std::memory_order_relaxed);
    set_cancel_target(false);
    pool_->release(std::move(server_), reusable && !relay_.server_broken());
  }

  // ---- transaction pooling: LISTEN --------------------------------------------------------------

  // The LISTENs just translated reach the server only once the pool's listening connection
  // listens on their channels: nothing committed after the client's LISTEN can be missed. When
  // that connection cannot be had, the client keeps its server connection instead (pinned), and
  // hears its notifications there.
  awaitable<void> prepare_listen() {
    for (auto& ch : relay_.take_new_listens()) {
      if (!hub_) hub_ = member_pools_[0]->notify_hub(client_.get_executor());
      if (!mailbox_)
        mailbox_ =
            std::make_shared<pool::NotifyMailbox>(client_.get_executor(), [this, alive = std::weak_ptr<bool>(alive_)] {
              if (alive.expired()) return;
              notified_ = true;
              if (idle_wait_ || (idle_attached_ && relay_.tx_status() == 'I')) {
                error_code ec;
                client_.cancel(ec);
              }
            });
      mailbox_->expect(ch);
      listen_pending_ = true;
      std::string why = co_await hub_->subscribe(mailbox_, ch);
      if (!why.empty()) {
        log::warn(
            "client {}: LISTEN {}: the pool's listening connection is not available ({}); the client keeps its "
            "server connection instead",
            info_->id, ch, why);
        relay_.pin("LISTEN");
        relay_.set_pass_notifications(true);
      }
    }
    if (mailbox_) mailbox_->mark();  // what came meanwhile was committed before the LISTEN was sent
  }

  // Between transactions: the notifications that came for this client, written now. False when
  // the client is gone, or was closed because the listening connection was lost (it got the
  // server's FATAL, as it would directly).
  awaitable<bool> deliver_notifications() {
    notified_ = false;
    if (auto fatal = mailbox_->closed()) {
      end_reason_ = "the connection listening for its notifications ended";
      std::string out = *fatal;
      co_await write_client(out);
      co_return false;
    }
    std::string out = mailbox_->take(own_notify_pid_, pid_);
    if (out.empty()) co_return true;
    co_return co_await write_client(out);
  }

  // ---- transaction pooling: pinned and untracked session state --------------------------------

  // Whether what pinned this client is gone (asked of the server: no advisory lock, temporary
  // object, holdable cursor or SQL-prepared statement left in the session; LISTEN does not pin).
  awaitable<bool> pins_released() {
    auto n = co_await run_scalar(
        "SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) + "
        "(SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()) + "
        "(SELECT count(*) FROM pg_cursors WHERE is_holdable) + "
        "(SELECT count(*) FROM pg_prepared_statements WHERE from_sql) + "
        "(SELECT CASE WHEN session_user = current_setting('session_authorization') THEN 0 ELSE 1 END)");
    if (n && *n == "0") {
      relay_.unpin();
      publish_pins();
      co_return true;
    }
    co_return false;
  }

  void publish_pins() {
    published_pins_ = relay_.pin_reasons();
    std::lock_guard lock(info_->mu);
    info_->pinned = published_pins_;
  }

  // DISCARD ALL on the attached server connection: what Sluice tracks of it starts over.
  awaitable<bool> reset_server_session() {
    bool ok = co_await run_internal("DISCARD ALL", false);
    server_->params.erase_if([&](auto& kv) { return !server_->initial.find(kv.first); });
    server_->prepared.clear();
    server_->listening = false;
    relay_.clear_untracked();
    relay_.unpin();
    publish_pins();
    co_return ok;
  }

  // Runs `sql` on the attached server connection; the first column of its first row.
  awaitable<std::optional<std::string>> run_scalar(const std::string& sql) {
    std::string out;
    wire::query(out, sql);
    error_code ec;
    co_await server_->channel().write(asio::buffer(out), ec);
    if (ec) co_return std::nullopt;
    std::optional<std::string> value;
    bool ok = true;
    bool read = co_await read_until_ready(1, [&](const wire::Frame& f) {
      if (f.type == wire::be::ErrorResponse) ok = false;
      if (f.type == wire::be::DataRow && !value && f.body.size() >= 6) {
        std::int32_t len = static_cast<std::int32_t>(wire::load_u32(f.body.data() + 2));
        if (len >= 0 && static_cast<std::size_t>(len) + 6 <= f.body.size())
          value = std::string(reinterpret_cast<const char*>(f.body.data() + 6), static_cast<std::size_t>(len));
      }
      return true;
    });
    if (!read || !ok) co_return std::nullopt;
    co_return value;
  }

  // Client left (or was dropped) while attached: return the server connection in a known state.
  awaitable<void> release_server_after_client() {
    if (!server_) co_return;
    unwatch_server();
    if (!relay_.quiescent() || relay_.server_broken() || server_writing_) {
      // Response still in flight: state unknown, so the connection is closed (the server ends
      // the session when it notices, as when a client leaves it directly). Inside a transaction,
      // whose work is rolled back anyway, the running statement is cancelled first.
      if (!relay_.server_broken() && server_->backend_pid && relay_.tx_status() != 'I')
        asio::co_spawn(client_.get_executor(),
                       send_cancel_request(pool_->endpoint(), server_->backend_pid, server_->backend_key),
                       asio::detached);
      detach(false);
      co_return;
    }
    set_cancel_target(false);
    bool ok = true;
    const auto& pgc = snap_->config->postgres;
    if (mode_ == config::PoolMode::Session || pgc.server_reset_query_always || relay_.pinned() || relay_.untracked()) {
      if (relay_.tx_status() != 'I') ok = co_await run_internal("ROLLBACK", false);
      if (ok && !pgc.server_reset_query.empty()) {
        ok = co_await run_internal(pgc.server_reset_query, false);
        server_->params.erase_if([&](auto& kv) { return !server_->initial.find(kv.first); });
        server_->prepared.clear();
      }
    } else if (relay_.tx_status() != 'I') {
      ok = co_await run_internal("ROLLBACK", false);
    }
    if (ok && server_->listening) {
      ok = co_await run_internal("UNLISTEN *", false);
      server_->listening = false;
    }
    pool_->release(std::move(server_), ok);
  }

  // The first direction to finish records why and stops the other one. Cancellation alone is not
  // enough: an operation that already completed still resumes its coroutine.
  Outcome stop(Outcome o) {
    stopping_ = true;
    return o;
  }

  awaitable<Outcome> client_to_server() {
    for (;;) {
      if (auto o = forward_buffered()) {
        if (*o == Outcome::FreeDatabases) {
          co_await free_databases();
          continue;
        }
        if (*o == Outcome::PrepareListen) {
          co_await prepare_listen();
          continue;
        }
        co_return stop(*o);
      }
      if (!server_out_.empty()) {
        server_writing_ = true;
        error_code ec;
        co_await server_->channel().write(asio::buffer(server_out_), ec);
        server_writing_ = false;
        server_out_.clear();
        if (ec) co_return stop(Outcome::ServerGone);
      }
      if (relay_.has_pending() && relay_.only_synthetic_pending() && relay_.quiescent_stream() && !client_writing_) {
        client_writing_ = true;
        relay_.drain_synthetic(synth_out_);
        bool ok = co_await write_client(synth_out_);
        client_writing_ = false;
        write_done_.cancel();
        if (!ok) co_return stop(Outcome::ClientGone);
        if (stopping_) co_return Outcome::Detach;
      }
      bool got = co_await read_client();
      // The other direction may have finished while this read was completing: leave what was
      // read in the buffer for the next cycle.
      if (stopping_) co_return Outcome::Detach;
      if (!got) co_return stop(Outcome::ClientGone);
    }
  }

  awaitable<Outcome> server_to_client() {
    for (;;) {
      error_code ec;
      std::size_t n = 0;
      if (server_->tls) n = co_await server_->tls->read_some(asio::buffer(server_in_), ec);
      else n = co_await server_->sock.async_read_some(asio::buffer(server_in_), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return stopping_ ? Outcome::ClientGone : stop(Outcome::ServerGone);
      if (relay_.server_bytes(wire::Bytes(server_in_.data(), n), *server_, client_out_) != Relay::Verdict::Ok)
        co_return stop(Outcome::ServerError);
      if (capturing_) capture(client_out_);
      if (stopping_) co_return Outcome::ClientGone;  // the client side ended first
      while (client_writing_) {  // the other direction is writing synthetic replies: wait
        write_done_.expires_after(std::chrono::seconds(1));
        co_await write_done_.async_wait(asio::redirect_error(use_awaitable, ec));
        if (stopping_) co_return Outcome::ClientGone;
      }
      if (!client_out_.empty()) {
        client_writing_ = true;
        bool ok = co_await write_client(client_out_);
        client_writing_ = false;
        if (!ok) co_return stop(Outcome::ClientGone);
        if (stopping_) co_return Outcome::ClientGone;
      }
      if (!server_writing_ && relay_.quiescent() && !relay_.in_copy_in()) {
        if (auto o = boundary_outcome()) co_return stop(*o);
        co_return stop(Outcome::Resume);  // back to the half-duplex path
      }
    }
  }

  // What to do at a quiet point: nothing (stay attached), detach, or refuse (statement mode).
  std::optional<Outcome> boundary_outcome() {
    if (!relay_.at_boundary()) return std::nullopt;
    char tx = relay_.tx_status();
    if (mode_ == config::PoolMode::Statement && tx != 'I') return Outcome::StatementMode;
    if (mode_ != config::PoolMode::Session && tx == 'I') {
      if (relay_.take_notified()) own_notify_pid_ = server_->backend_pid;
      if (mailbox_ && (relay_.take_listen_changed() || listen_pending_)) [[unlikely]] {
        for (auto& ch : mailbox_->settle(relay_.listening())) hub_->unsubscribe(mailbox_, ch);
        listen_pending_ = false;
      }
      if (!relay_.pinned()) return Outcome::Detach;
      if (relay_.take_may_unpin()) return Outcome::CheckPins;
      if (published_pins_ != relay_.pin_reasons()) publish_pins();
    }
    return std::nullopt;
  }

  // Translates every complete buffered client message; nullopt while all is well.
  std::optional<Outcome> forward_buffered() {
    // On a replica, one batch at a time: the next one may be a write for the primary.
    if (read_route_ && batch_sent_) {
      if (relay_.tx_status() == 'I' || relay_.has_pending()) return std::nullopt;
      batch_sent_ = false;  // inside a read-only transaction: it stays here
    }
    for (;;) {
      wire::Frame f;
      auto d = wire::next_frame(buffered_bytes(), max_packet_, f);
      if (d == wire::Decode::NeedMore) return std::nullopt;
      if (d == wire::Decode::Malformed) {
        client_error_ = fmt::format("invalid message length (limit max_packet_size = {} bytes)", max_packet_);
        return Outcome::ClientError;
      }
      if ((f.type == wire::fe::Query || f.type == wire::fe::Parse) && in_begin_ != exclusive_checked_at_ &&
          needs_free_databases(f)) [[unlikely]] {
        exclusive_checked_at_ = in_begin_;
        return Outcome::FreeDatabases;  // first free_databases(), then this message again
      }
      exclusive_checked_at_ = std::string::npos;
      if (ctx_.cache_enabled() && (f.type == wire::fe::Query || f.type == wire::fe::Parse)) note_for_invalidation(f);
      auto v = relay_.client_message(f, *server_, server_out_);
      if (journal_on_ && v == Relay::Verdict::Ok) {
        // Kept while the read may still run again elsewhere (its server dies before answering).
        if (journal_.size() + f.size() > kMaxJournal) journal_on_ = false, journal_.clear();
        else journal_.append(reinterpret_cast<const char*>(f.body.data()) - 5, f.size());
      }
      in_begin_ += f.size();
      if (read_route_ && (f.type == wire::fe::Query || f.type == wire::fe::Sync)) {
        batch_sent_ = true;
        return std::nullopt;
      }
      if (v == Relay::Verdict::Terminate) return Outcome::ClientGone;
      if (v == Relay::Verdict::ProtocolError) {
        client_error_ = relay_.error();
        return Outcome::ClientError;
      }
      if (relay_.has_new_listens()) [[unlikely]]
        return Outcome::PrepareListen;  // before server_out_ is written
      if (listen_pending_) [[unlikely]]
        mailbox_->mark();
    }
  }

  // CREATE DATABASE (its template), DROP DATABASE, ALTER DATABASE ... RENAME: the server refuses
  // them (55006) while other sessions use those databases, and Sluice's idle pooled connections
  // would be such sessions. Sets exclusive_dbs_; true when there are any.
  bool needs_free_databases(const wire::Frame& f) {
    if (f.type == wire::fe::Query) {  // the common case, without measuring the text first
      std::size_t i = 0;
      while (i < f.body.size() && (f.body[i] == ' ' || f.body[i] == '\n' || f.body[i] == '\t' || f.body[i] == '(')) ++i;
      if (i == f.body.size()) return false;
      char c = static_cast<char>(f.body[i] | 0x20);
      if (c != 'c' && c != 'd' && c != 'a' && f.body[i] != '/' && f.body[i] != '-') return false;
    }
    std::string_view text;
    if (f.type == wire::fe::Query) {
      wire::Reader r(f.body);
      text = r.cstr();
    } else {
      wire::ParseView pv;
      if (!wire::parse_parse(f.body, pv)) return false;
      text = pv.query;
    }
    // Cheap first look: the statement starts with CREATE, DROP or ALTER (or a comment).
    std::size_t i = text.find_first_not_of(" \t\r\n(");
    if (i == std::string_view::npos) return false;
    char c = static_cast<char>(text[i] | 0x20);
    if (c != 'c' && c != 'd' && c != 'a' && text[i] != '/' && text[i] != '-') return false;
    exclusive_dbs_ = sql::databases_needing_exclusive_use(text);
    return !exclusive_dbs_.empty();
  }

  // Closes the idle server connections (of any pool, any user) to exclusive_dbs_ on this
  // client's server, and waits (at most 5 s, as the server itself does) for busy ones to come
  // back and be closed too. Whatever still holds them then makes the statement fail as directly.
  awaitable<void> free_databases() {
    const config::Endpoint endpoint = pool_->endpoint();
    asio::steady_timer timer(client_.get_executor());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      bool busy = false;
      for (auto& p : ctx_.pools.all()) {
        if (!(p->endpoint() == endpoint)) continue;
        if (std::find(exclusive_dbs_.begin(), exclusive_dbs_.end(), p->database()) == exclusive_dbs_.end()) continue;
        p->close_idle();
        auto u = p->usage();
        std::size_t own = p.get() == pool_.get() && server_ ? 1 : 0;  // this client's own: its business
        busy = busy || u.active + u.connecting > own;
      }
      if (!busy || std::chrono::steady_clock::now() >= deadline) break;
      timer.expires_after(std::chrono::milliseconds(50));
      error_code ec;
      co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    log::info("client {}: closed Sluice's idle server connections to {} before {}", info_->id,
              fmt::join(exclusive_dbs_, ", "), "a statement that needs them unused");
  }

  // Writes as much as the kernel takes now, without suspending. Returns false on error.
  // Over TLS: as many records as fit; the rest (and a record cut short) goes by the async path.
  bool write_now(tcp::socket& sock, net::TlsStream* tls, std::string& buf) {
    error_code ec;
    std::size_t n = tls ? tls->write_now(asio::buffer(buf), ec) : sock.write_some(asio::buffer(buf), ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) return false;
    buf.erase(0, n);
    if (stats_ && &sock == &client_) stats_->bytes_out.fetch_add(n, std::memory_order_relaxed);
    return true;
  }

  awaitable<bool> flush_client() {
    if (client_out_.empty()) co_return true;
    if (!write_now(client_, tls_.get(), client_out_)) co_return false;
    if (client_out_.empty()) co_return true;
    co_return co_await write_client(client_out_);
  }

  // The attached phase. Half duplex in the common case: the whole request goes to the kernel at
  // once, so the server can never block on us while we read its answer. Requests that do not
  // fit, COPY FROM STDIN and replies Sluice must make itself go full duplex until quiet again.
  awaitable<Outcome> relay_attached() {
    for (;;) {
      if (auto o = forward_buffered()) {
        if (*o == Outcome::FreeDatabases) {
          co_await free_databases();
          continue;
        }
        if (*o == Outcome::PrepareListen) {
          co_await prepare_listen();
          continue;
        }
        co_return *o;
      }
      if (!server_out_.empty()) {
        if (!write_now(server_->sock, server_->tls.get(), server_out_)) co_return Outcome::ServerGone;
        if (!server_out_.empty() || relay_.in_copy_in()) {
          stopping_ = false;
          auto r = co_await (client_to_server() || server_to_client());
          Outcome o = r.index() == 0 ? std::get<0>(r) : std::get<1>(r);
          if (o != Outcome::Resume) co_return o;
          continue;
        }
      }
      if (relay_.has_pending() && !relay_.server_may_be_silent()) {
        if (relay_.only_synthetic_pending()) {
          relay_.drain_synthetic(client_out_);
          if (!co_await flush_client()) co_return Outcome::ClientGone;
          continue;
        }
        error_code ec;
        std::size_t n = 0;
        for (;;) {  // try_read_server, waiting in this frame when there is nothing yet
          Step st = try_read_server(n, ec);
          if (st == Step::Done || st == Step::Fail) break;
          // A wait that lasts gets the client watched too (janitor_tick): one that leaves
          // meanwhile is noticed then, not when the answer comes.
          waiting_server_ = true;
          wait_ticks_ = 0;
          co_await server_->sock.async_wait(st == Step::WantWrite ? tcp::socket::wait_write : tcp::socket::wait_read,
                                            asio::redirect_error(use_awaitable, ec));
          waiting_server_ = false;
          if (client_watch_) unwatch_client();
          if (client_gone_) co_return Outcome::ClientGone;
          if (ec) break;
        }
        if (ec) co_return Outcome::ServerGone;
        if (relay_.server_bytes(wire::Bytes(server_in_.data(), n), *server_, client_out_) != Relay::Verdict::Ok)
          co_return Outcome::ServerError;
        if (capturing_) capture(client_out_);
        if (!write_now(client_, tls_.get(), client_out_)) co_return Outcome::ClientGone;
        if (!client_out_.empty() && !co_await write_client(client_out_)) co_return Outcome::ClientGone;
        if (relay_.in_copy_in()) {
          stopping_ = false;
          auto r = co_await (client_to_server() || server_to_client());
          Outcome o = r.index() == 0 ? std::get<0>(r) : std::get<1>(r);
          if (o != Outcome::Resume) co_return o;
          continue;
        }
        if (auto o = boundary_outcome()) co_return *o;
        continue;
      }
      if (auto o = boundary_outcome()) co_return *o;
      // Nothing in flight: the client owes the next message (in a transaction, mid-batch, or
      // a session-mode client). The server may still speak first (a notification, a parameter
      // change, a notice, the FATAL of a terminated backend): both sockets are watched.
      for (;;) {
        // A pinned client between transactions hears its notifications as an idle one does.
        if (mailbox_ && relay_.tx_status() == 'I' && mailbox_->ready() && relay_.at_boundary()) [[unlikely]]
          if (!co_await deliver_notifications()) co_return Outcome::ClientGone;
        Step st = try_read_client();
        if (st == Step::Fail) co_return Outcome::ClientGone;
        if (st == Step::Done) break;
        error_code ec;
        if (st == Step::WantRead && !server_dead_) watch_server();
        idle_attached_ = true;
        co_await client_ready(st, ec);
        idle_attached_ = false;
        if (server_spoke_) {
          server_spoke_ = false;
          if (auto o = co_await server_spoke()) co_return *o;
          continue;
        }
        if (notified_) {
          notified_ = false;
          continue;
        }
        if (ec) co_return Outcome::ClientGone;
      }
    }
  }

  // ---- watches: plain callbacks on the other socket, cheaper than racing two coroutines ------
  // A handler that comes late (cancelled, or a watch replaced) finds its generation stale; one
  // that outlives the session finds `alive` expired.

  // While the client owes the next request (relay_attached): the server's socket. A message
  // there wakes the client wait (server_spoke_); otherwise the watch lapses at the next answer.
  void watch_server() {
    if (server_watch_) return;
    server_watch_ = true;
    server_->sock.async_wait(tcp::socket::wait_read,
                             [this, alive = std::weak_ptr<bool>(alive_), gen = server_watch_gen_](error_code ec) {
                               if (alive.expired() || gen != server_watch_gen_) return;
                               server_watch_ = false;
                               if (ec || !idle_attached_) return;
                               server_spoke_ = true;
                               error_code ignored;
                               client_.cancel(ignored);
                             });
  }
  void unwatch_server() {
    if (!server_watch_ || !server_) return;
    ++server_watch_gen_;
    server_watch_ = false;
    error_code ignored;
    server_->sock.cancel(ignored);
  }

  // While a request waits on the server for a while (armed by janitor_tick): the client's socket.
  // A client that closed (or sent Terminate first) ends the wait.
  void watch_client() {
    client_watch_ = true;
    client_.async_wait(tcp::socket::wait_read,
                       [this, alive = std::weak_ptr<bool>(alive_), gen = client_watch_gen_](error_code ec) {
                         if (alive.expired() || gen != client_watch_gen_) return;
                         client_watch_ = false;
                         if (ec || !waiting_server_ || !server_) return;
                         Step cs = try_read_client();
                         if (cs == Step::Fail || client_leaving()) {
                           client_gone_ = true;
                           error_code ignored;
                           server_->sock.cancel(ignored);
                         } else if (cs == Step::WantRead) {
                           watch_client();  // a TLS record half received
                         }                  // else data: the client is alive, and its next request waits in in_
                       });
  }
  void unwatch_client() {
    ++client_watch_gen_;
    client_watch_ = false;
    error_code ignored;
    client_.cancel(ignored);
  }

 public:
  // Every janitor period (per worker): a request waiting on the server for two periods or more
  // gets its client watched.
  void janitor_tick() {
    if (waiting_server_ && !client_watch_ && ++wait_ticks_ >= 2) watch_client();
  }

 private:
  // The next unread client message is a Terminate: the client leaves without waiting.
  bool client_leaving() const {
    auto b = buffered_bytes();
    return b.size() >= 5 && b[0] == wire::fe::Terminate && wire::load_u32(b.data() + 1) == 4;
  }

  // The server sent something while the client owed the next request: passed on (as the relay
  // filters it), or the server connection ended.
  awaitable<std::optional<Outcome>> server_spoke() {
    error_code ec;
    std::size_t n = 0;
    Step st = try_read_server(n, ec);
    if (st == Step::Fail || (st == Step::Done && n == 0)) {
      // Pooled, inside a transaction: the client learns of the loss with its next statement
      // (fail_in_flight answers that one), unless the server ended the transaction for being
      // idle, which the client is told now, as directly.
      if (mode_ != config::PoolMode::Session && relay_.tx_status() != 'I' && relay_.server_end_code() != "25P03") {
        server_dead_ = true;
        co_return std::nullopt;
      }
      co_return Outcome::ServerGone;
    }
    if (st != Step::Done) co_return std::nullopt;  // nothing after all (or TLS wants more)
    if (relay_.server_bytes(wire::Bytes(server_in_.data(), n), *server_, client_out_) != Relay::Verdict::Ok)
      co_return Outcome::ServerError;
    if (!co_await flush_client()) co_return Outcome::ClientGone;
    co_return std::nullopt;
  }

  awaitable<void> serve() {
    const auto idle_timeout = snap_->config->general.client_idle_timeout;
    for (;;) {
      if (!server_) {
        if (ctx_.shutting_down) {
          co_await send_error("FATAL", "57P01", "terminating connection: Sluice is shutting down");
          co_return;
        }
        wire::Frame f;
        auto d = wire::next_frame(buffered_bytes(), max_packet_, f);
        if (d == wire::Decode::Malformed) {
          co_await send_error("FATAL", "08P01", fmt::format("invalid message length (limit max_packet_size = {} bytes)", max_packet_));
          co_return;
        }
        if (d == wire::Decode::NeedMore) {
          if (mailbox_ && mailbox_->ready()) [[unlikely]] {
            if (!co_await deliver_notifications()) co_return;
            continue;
          }
          notified_ = false;
          idle_wait_ = true;
          bool got = false;
          if (idle_timeout.count() > 0 && buffered() == 0) {
            asio::steady_timer t(client_.get_executor(), idle_timeout);
            auto r = co_await (read_client() || t.async_wait(use_awaitable));
            got = r.index() == 0 && std::get<0>(r);
            if (r.index() == 1) {
              idle_wait_ = false;
              co_await send_error("FATAL", "08P01", "client_idle_timeout: closing idle client connection");
              co_return;
            }
          } else {
            for (;;) {  // read_client(), inlined: the common idle wait between transactions
              Step st = try_read_client();
              if (st == Step::Done || st == Step::Fail) {
                got = st == Step::Done;
                break;
              }
              error_code ec;
              co_await client_ready(st, ec);
              if (ec) break;
            }
          }
          idle_wait_ = false;
          if (!got) {
            if (ctx_.shutting_down) continue;  // kicked: say goodbye above
            if (notified_) continue;           // woken for a notification: delivered above
            co_return;
          }
          continue;
        }
        if (f.type == wire::fe::Terminate) co_return;
        if (discard_until_sync_ || is_copy_message(f.type)) [[unlikely]] {
          // After a failed request, as the server: messages up to the next Sync are dropped and
          // the Sync answered; COPY data arriving outside COPY is dropped (55.2.6).
          in_begin_ += f.size();
          if (discard_until_sync_ && f.type == wire::fe::Sync) {
            discard_until_sync_ = false;
            std::string out;
            wire::ready_for_query(out, failed_tx_ ? 'E' : 'I');
            if (!co_await write_client(out)) co_return;
          }
          continue;
        }
        if (f.type == wire::fe::Parse && !retrying_ && !failed_tx_) {
          // Prepare-only round trips (e.g. libpq's PQprepare) need no server connection when
          // the statement is known: this also keeps clients that prepare synchronously from
          // deadlocking behind transactions of their own thread.
          std::string local;
          if (std::size_t used = relay_.try_answer_locally(buffered_bytes(), max_packet_, local)) {
            in_begin_ += used;
            if (!co_await write_client(local)) co_return;
            continue;
          }
        }
        if (ctx_.cache_enabled() && mode_ != config::PoolMode::Session && !no_cache_ && !retrying_ && !failed_tx_ &&
            (f.type == wire::fe::Query || f.type == wire::fe::Parse || f.type == wire::fe::Bind)) {
          bool served = false;
          if (f.type == wire::fe::Query) served = co_await try_cache(f);
          else served = co_await try_cache_extended();
          if (served) continue;
        }
        if (ctx_.controls.any_paused()) co_await wait_while_paused();
        prepare_attach();
        if (!attach_ready()) {
          if (!server_ && !read_route_ && !verify_token_) {
            // attach_rest()'s common case in this frame (one coroutine frame less per wait):
            // wait in line for the pool; parameters to apply go on to attach_rest().
            auto wait_start = observe::Clock::now();
            info_->set_state(observe::ClientState::Waiting);
            auto r = co_await pool_->lease(client_.get_executor(), snap_->config->general.query_wait_timeout);
            if (!r.conn) {
              co_await report_lease_failure(r);
              co_return;
            }
            server_ = std::move(r.conn);
            if (stats_) stats_->wait(observe::micros_since(wait_start));
            if (!attach_ready() && !co_await attach_rest()) co_return;
          } else if (!co_await attach_rest()) {
            co_return;
          }
        }
        if (failed_tx_ && !co_await recreate_failed_tx()) co_return;
      }
      Outcome o = co_await relay_attached();
      if (o == Outcome::CheckPins) {
        co_await pins_released();
        o = Outcome::Detach;  // below: kept while still pinned
      }
      if (o == Outcome::Detach && relay_.untracked() && !relay_.pinned()) [[unlikely]] {
        // The session changed in ways not followed: the next client gets it reset.
        if (!co_await reset_server_session()) o = Outcome::ServerGone;
      }
      if (o == Outcome::Detach || o == Outcome::Resume) {
        finish_capture();
        const bool token = needs_write_token();
        if (!pending_invalidation_.empty() || invalidate_all_) apply_invalidations(token && split_);
        if (token) {
          co_await take_write_token();
          settle_invalidations(token_);
        }
      } else {
        capturing_ = false;
        end_fill();
      }
      if (o != Outcome::ServerGone) retries_ = 0;
      switch (o) {
        case Outcome::Detach:
          if (relay_.pinned()) [[unlikely]] {
            publish_pins();  // the client keeps this server connection (SHOW CLIENTS says why)
            break;
          }
          [[fallthrough]];
        case Outcome::Resume:
          if (server_->listening) [[unlikely]] {
            // The client's LISTEN ran here: its notifications come by the listening connection.
            bool clean = co_await run_internal("UNLISTEN *", false);
            server_->listening = false;
            detach(clean);
            break;
          }
          detach(true);
          break;
        case Outcome::ClientGone:
          co_await release_server_after_client();
          co_return;
        case Outcome::ClientError:
          co_await release_server_after_client();
          co_await send_error("FATAL", relay_.error_code(), client_error_);
          co_return;
        case Outcome::ServerGone:
          if (split_) cluster_->report_failure(member_);
          if (journal_on_ && relay_.replayable()) {
            // A read whose server died before any row of its answer reached the client: once
            // more, on another member (the failed one is out of the rotation now).
            log::warn("pool {}: server connection {} lost before answering a read{}; running it again", pool_->name(),
                      server_->id, end_note());
            detach(false);
            unread(journal_);
            ++retries_;
            retrying_ = true;
            continue;
          }
          if (mode_ != config::PoolMode::Session) {
            if (relay_.server_end_code() == "25P03" && !relay_.has_pending()) {
              // The server ended this client's own idle transaction (idle_in_transaction_session_timeout):
              // its verdict on the session the client holds, passed on as it was, as directly.
              end_reason_ = "the server ended its idle transaction";
              std::string out = relay_.server_end_bytes();
              detach(false);
              co_await write_client(out);
              co_return;
            }
            if (!co_await fail_in_flight()) co_return;
            continue;
          }
          if (relay_.server_broken()) {
            // The server's own FATAL reached the client (session mode passes it on): it closes, as directly.
            log::info("pool {}: server connection {} ended by the server{}", pool_->name(), server_->id, end_note());
            end_reason_ = "the server ended the session";
            detach(false);
            co_return;
          }
          log::warn("pool {}: server connection {} lost while serving a client{}", pool_->name(), server_->id,
                    end_note());
          detach(false);
          co_await send_error("FATAL", "08006", "sluice: server connection lost; the statement in flight may or may not have completed",
                              "reconnect and retry");
          co_return;
        case Outcome::ServerError:
          log::error("pool {}: server connection {}: {}", pool_->name(), server_->id, relay_.error());
          detach(false);
          co_await send_error("FATAL", "08P01", fmt::format("sluice: server protocol error: {}", relay_.error()));
          co_return;
        case Outcome::FreeDatabases:  // handled inside relay_attached
        case Outcome::PrepareListen:  // handled inside relay_attached
        case Outcome::CheckPins:      // handled above
          break;
        case Outcome::StatementMode:
          detach(false);  // closing the server connection rolls the transaction back
          co_await send_error("FATAL", "25P01", "transaction blocks are not allowed in statement pool mode",
                              "use pool_mode = \"transaction\" for this pool");
          co_return;
      }
    }
  }

  static constexpr const char* kAdminDatabase = "sluice";
  tcp::socket client_;
  std::unique_ptr<net::TlsStream> tls_;  // after SSLRequest, on a TLS listener
  Context& ctx_;
  std::shared_ptr<observe::ClientInfo> info_;
  std::shared_ptr<observe::DbStats> stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::uint64_t generation_ = 0;
  bool logged_in_ = false;
  std::string end_reason_;
  std::shared_ptr<const Snapshot> snap_;
  std::vector<std::uint8_t> in_;
  std::size_t in_begin_ = 0, in_end_ = 0;
  std::vector<std::uint8_t> server_in_;
  std::string client_out_, server_out_, synth_out_;
  std::size_t max_packet_ = 0;
  wire::StartupPacket startup_;
  std::string user_, database_, client_error_;
  std::shared_ptr<const pool::Credentials> creds_;
  std::shared_ptr<pool::Pool> pool_;
  config::PoolMode mode_ = config::PoolMode::Transaction;
  std::shared_ptr<pool::ServerConn> server_;
  Relay relay_;
  std::uint32_t pid_ = 0;
  // Routing (read_write_split): the member each batch runs on, and this client's last write.
  std::shared_ptr<router::ClusterRuntime> cluster_;
  config::Pool pool_cfg_;
  std::string server_db_;
  pool::PoolSettings settings_;
  std::vector<std::shared_ptr<pool::Pool>> member_pools_;
  int member_ = 0;
  bool split_ = false, read_route_ = false, batch_sent_ = false, wrote_ = false, verify_token_ = false;
  router::Position token_;
  std::chrono::steady_clock::time_point verify_failed_at_{};
  // A read outside a transaction: the client messages sent for it since attaching, kept (up to
  // kMaxJournal bytes) so that it can run again on another member if its server dies first.
  static constexpr std::size_t kMaxJournal = 64 * 1024;
  static constexpr int kMaxReadRetries = 2;
  std::string journal_;
  bool journal_on_ = false, retryable_read_ = false;
  int retries_ = 0;
  bool retrying_ = false;  // the next attach runs a read again (the client has its preamble)
  // After a request failed because its server connection died: messages are dropped until Sync
  // (the failure came in the middle of an extended-protocol batch), and a transaction the client
  // had open is re-created, failed, on its next server connection; until then nothing is
  // answered without a server (cache, known statements): there the server refuses everything.
  bool discard_until_sync_ = false, failed_tx_ = false;
  // Result cache: the answer being captured for `cache_key_`, and writes not yet applied.
  bool capturing_ = false, invalidate_all_ = false, no_cache_ = false;
  std::string capture_, cache_key_, fill_key_;
  cache::FillTicket fill_ticket_;
  router::Position route_position_;  // a replica's replayed position when the read was routed there
  // Tables whose writes' position take_write_token() is learning (WriteMarks pending).
  std::vector<std::string> marked_tables_;
  bool marked_all_ = false, marks_pending_ = false;
  config::Duration cache_ttl_{0};
  std::vector<std::string> cache_tables_, pending_invalidation_;
  std::shared_ptr<CancelTarget> cancel_;
  bool server_writing_ = false, client_writing_ = false, idle_wait_ = false, stopping_ = false;
  bool typed_messages_ = false;
  asio::steady_timer write_done_{client_.get_executor()};
  // Watches (watch_server, watch_client) and what they saw.
  std::uint32_t server_watch_gen_ = 0, client_watch_gen_ = 0;
  bool server_watch_ = false, client_watch_ = false, server_spoke_ = false, client_gone_ = false;
  bool idle_attached_ = false, waiting_server_ = false;
  bool server_dead_ = false;  // the server closed while a pooled client idles in its transaction
  int wait_ticks_ = 0;
  // CREATE/DROP DATABASE: the databases to free, and the message they were freed for.
  std::vector<std::string> exclusive_dbs_;
  std::size_t exclusive_checked_at_ = std::string::npos;
  std::string published_pins_;  // what SHOW CLIENTS says pins this client
  // LISTEN in pooled modes: this client's notifications, by way of its pool's listening connection.
  std::shared_ptr<pool::NotifyMailbox> mailbox_;
  std::shared_ptr<pool::NotifyHub> hub_;
  bool notified_ = false;             // the mailbox woke this session
  bool listen_pending_ = false;       // a LISTEN waits for its transaction's end
  std::uint32_t own_notify_pid_ = 0;  // the server process of this client's last NOTIFY
};

awaitable<void> janitor() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!t_sessions.empty()) {
    timer.expires_after(std::chrono::milliseconds(250));
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    for (Session* s : t_sessions) s->janitor_tick();
  }
  t_janitor = false;
}

}  // namespace

awaitable<void> serve_client(tcp::socket sock, Context& ctx) {
  error_code ec;
  sock.set_option(tcp::no_delay(true), ec);
  sock.non_blocking(true, ec);  // the relay writes with write_some and must never block
  auto cfg = ctx.snapshot()->config;
  if (ctx.clients.fetch_add(1) >= cfg->general.max_client_conn) {
    ctx.clients.fetch_sub(1);
    std::string out;
    wire::error_response(out, "FATAL", "53300", "sorry, too many clients already (max_client_conn)");
    co_await asio::async_write(sock, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
    co_return;
  }
  {
    Session s(std::move(sock), ctx);
    try {
      co_await s.run();
    } catch (const std::exception& e) {
      log::error("session ended by an internal error: {}", e.what());
    }
  }
  ctx.clients.fetch_sub(1);
}

void kick_idle_sessions() {
  for (auto* s : std::vector<Session*>(t_sessions.begin(), t_sessions.end())) s->kick();
}

}  // namespace sluice::frontend::pg
