// PostgreSQL client session: lifecycle (construction, the stages in order, the console, reloads,
// kicks) and the helpers the stages share. Stages: startup -> auth -> login -> (attach -> relay ->
// detach)*, each in its own file (client_session.hpp).
#include "src/frontend/postgres/session.hpp"

#include "src/frontend/common/client_log.hpp"
#include "src/frontend/postgres/client_session.hpp"
#include "src/net/connect.hpp"

namespace sluice::frontend::pg {

// A CancelRequest for the server session (pid, key) at `endpoint` (55.2.7): its own connection,
// closed by the server without an answer.
awaitable<void> send_cancel_request(config::Endpoint endpoint, std::uint32_t pid, std::uint32_t key) {
  auto ex = co_await asio::this_coro::executor;
  tcp::socket s(ex);
  error_code ec;
  std::string failed = co_await net::connect_stream(s, endpoint);
  if (!failed.empty()) co_return;
  std::string out;
  wire::cancel_request(out, pid, key);
  co_await asio::async_write(s, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
  char c;
  co_await s.async_read_some(asio::buffer(&c, 1), asio::redirect_error(use_awaitable, ec));
}

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

Session::Session(tcp::socket s, state::Context& ctx, net::Origin origin)
    : TendedSession(s.get_executor()), client_(std::move(s)), ctx_(ctx), snap_(ctx.snapshot()) {
  generation_ = ctx_.generation();
  register_client(origin);
  max_packet_ = snap_->config->general.max_packet_size;
}

Session::~Session() {
  // A client that leaves with bytes read (its Terminate) gives the read buffer back: the next
  // login on this worker takes it instead of a new one.
  if (!in_.empty()) net::client_buffers().give(in_);
  if (!info_) return;  // hibernated: its sleep has the rest
  ctx_.client_table.remove(info_->id);
  log_end();
  if (pid_) cancel_registry().remove(pid_, cancel_->key);
  if (mailbox_ && hub_) hub_->unsubscribe(mailbox_, "*");
  end_fill();  // a client that left while its answer was being cached: let others ask
}

awaitable<bool> Session::run() {
  bool logged_in = false;
  {
    // client_login_timeout bounds startup + authentication.
    asio::steady_timer login_timer(client_.get_executor(), snap_->config->general.client_login_timeout);
    bool done = false;
    login_timer.async_wait([this, &done](error_code ec) {
      if (!ec && !done) {
        error_code ignored;
        net::close_socket(client_, ignored);  // it ends a fast read waiting on it too (read_client)
      }
    });
    logged_in = co_await startup();
    if (logged_in) logged_in = co_await authenticate();
    if (logged_in) logged_in = co_await take_connection_places();
    done = true;
    login_timer.cancel();
  }
  if (!logged_in) co_return false;
  if (database_ == kAdminDatabase) {
    co_await serve_console();
    co_return false;
  }
  if (auto awaited = co_await login(); !awaited) {
    detach(false);  // a session-mode login that got its server connection, then failed
    co_return false;
  }
  log::event(log::Level::Info, "client_connected", client_fields(*info_, user_, database_),
             "client {} {}:{} connected: user {} database {}", info_->id, info_->addr, info_->port, user_, database_);
  logged_in_ = true;
  co_return co_await serve();
}

void Session::register_client(const net::Origin& origin) {
  info_ = state::new_client_info(ctx_, "postgres", client_, origin);
  if (!origin.via.empty()) log::debug("client {} {}:{} via {}", info_->id, info_->addr, info_->port, origin.via);
  make_killable(*info_, client_.get_executor());
  ctx_.client_table.add(info_);
}

void Session::kill() {
  unpark_now();  // the socket back first: the goodbye is written to it
  end_reason_ = "killed by the administrator";
  std::string out;
  wire::error_response(out, "FATAL", "57P01", "terminating connection due to administrator command (KILL)");
  write_goodbye(client_, tls_.get(), out);
  error_code e;
  net::close_socket(client_, e);
}

void Session::log_end() {
  if (!logged_in_) return;
  const std::string why = end_reason_.empty() ? "client closed the connection" : end_reason_;
  log::event(log::Level::Info, "client_disconnected", client_fields(*info_, user_, database_, why),
             "client {} {}:{} disconnected: user {} database {}: {}", info_->id, info_->addr, info_->port, user_,
             database_, why);
}

awaitable<void> Session::serve_console() {
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
  info_->set_identity(user_, database_, w().startup_.find("application_name") ? *w().startup_.find("application_name") : "");
  {
    std::lock_guard lock(info_->mu);
    info_->pool = kAdminDatabase;
  }
  info_->set_state(observe::ClientState::Idle);
  log::event(log::Level::Info, "admin_connected", client_fields(*info_, user_, "sluice"),
             "client {} {}:{} connected to the admin console: user {}", info_->id, info_->addr, info_->port, user_);
  logged_in_ = true;
  auto unread = buffered_bytes();
  std::string rest(reinterpret_cast<const char*>(unread.data()), unread.size());
  in_begin_ = in_end_;
  idle_wait_ = true;  // a shutdown closes console connections like idle clients
  const net::Channel channel{client_, tls_.get()};
  co_await serve_admin(channel, std::move(rest), ctx_, caller, max_packet_);
}

awaitable<void> Session::wait_while_paused() {
  co_await ctx_.controls.wait_resumed(served_database(*pool_cfg_, database_), client_, *info_);
}

void Session::refresh_config() {
  generation_ = ctx_.generation();
  auto next = ctx_.snapshot();
  const auto& cfg = *next->config;
  const config::Pool* pc = cfg.find_pool(config::Protocol::Postgres, database_);
  if (pc) pc = pc->arm(pool_cfg_->cluster);  // a split: the arm it was placed on
  if (!pc || pc->mode != mode_) return;      // keep what it logged in with
  snap_ = next;
  max_packet_ = cfg.general.max_packet_size;
  bind_pool(cfg, *pc);
}

void Session::bind_pool(const config::Config& cfg, const config::Pool& pc) {
  const auto& cluster = cfg.clusters.at(pc.cluster);
  server_db_ = pc.database == "*" ? database_ : (pc.server_database.empty() ? pc.database : pc.server_database);
  pool_cfg_ = &pc;  // `cfg` is snap_'s
  pool_ = ctx_.pools.get(pc, cluster.primary, creds_, server_db_, state::pool_settings(*snap_, pc));
  routing_.bind(
      cfg, pc, user_, pool_, ctx_.router,
      [this](const config::Endpoint& member) {
        return ctx_.pools.get(*pool_cfg_, member, creds_, server_db_, state::pool_settings(*snap_, *pool_cfg_));
      },
      info_->addr);
}

void Session::kick() {
  if (!idle_wait_) return;
  if (ctx_.upgrading) upgrade_kicked_ = true;  // the wait ends to see whether it can go now
  cancel_idle_wait();
}

namespace {
// How a PostgreSQL listener turns clients away before their session (frontend/common/admission.hpp).
const Door& pg_door() {
  static const Door door = [] {
    Door d;
    d.protocol = config::Protocol::Postgres;
    wire::error_response(d.too_many, "FATAL", "53300", "sorry, too many clients already (max_client_conn)");
    d.refused_by_limit = [](access::Limit l, std::string_view address, std::uint32_t value) {
      std::string out;
      if (l == access::Limit::ConnectionRate)
        wire::error_response(out, "FATAL", "53400",
                             fmt::format("too many new connections from host \"{}\" "
                                         "(limits.connections_per_second_per_address = {}); try again",
                                         address, value));
      else
        wire::error_response(
            out, "FATAL", "53300",
            fmt::format("too many connections from host \"{}\" (limits.max_connections_per_address = {})", address,
                        value));
      return out;
    };
    return d;
  }();
  return door;
}
}  // namespace

bool refuse_at_accept(int fd, const tcp::endpoint& peer, state::Context& ctx) {
  return frontend::refuse_at_accept(fd, peer, ctx, pg_door());
}

awaitable<void> serve_client(tcp::socket sock, state::Context& ctx) {
  error_code ec;
  // The relay writes with write_some and must never block (a TCP client's is already).
  if (!sock.non_blocking()) sock.non_blocking(true, ec);
  co_await serve_admitted<Session>(std::move(sock), ctx, pg_door(), Session::kWhat);
}

}  // namespace sluice::frontend::pg
