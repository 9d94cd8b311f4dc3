// Opening, re-binding and closing the listeners.
#include "src/app/listeners.hpp"

#include "src/admin/metrics.hpp"
#include "src/admin/readiness.hpp"
#include "src/frontend/mysql/session.hpp"
#include "src/frontend/postgres/session.hpp"
#include "src/net/listening_sockets.hpp"
#include "src/observe/log.hpp"

namespace sluice::app {

namespace {
// The metrics listener leaves the listening sockets (the others do it themselves).
template <typename T>
void forget_http(const std::unique_ptr<T>& p) {
  if constexpr (std::is_same_v<T, observe::HttpServer>) net::listening::forget(p->native_handle());
}
}  // namespace

Listeners::Listeners(net::Runtime& rt, state::Context& ctx)
    : rt_(rt),
      ctx_(ctx),
      http_handlers_{
          [&ctx] { return admin::prometheus(ctx); },
          [&ctx]() -> std::string { return ctx.shutting_down ? "shutting down" : ""; },
          [&ctx] { return admin::not_ready(ctx); },
      } {}

std::string Listeners::rebind(const config::Config& c) {
  std::lock_guard lock(mu_);
  auto want = [](bool on, const config::Endpoint& ep, const std::vector<config::Endpoint>& more = {}) {
    std::vector<config::Endpoint> all{ep};
    all.insert(all.end(), more.begin(), more.end());
    return on ? std::optional(all) : std::nullopt;
  };
  auto pg_want = want(c.postgres.enabled, c.postgres.listen, c.postgres.listen_more),
       my_want = want(c.mysql.enabled, c.mysql.listen, c.mysql.listen_more),
       http_want = want(c.http.enabled, c.http.listen);
  std::unique_ptr<net::Listener> pg, my;
  std::unique_ptr<observe::HttpServer> http;
  auto& ctx = ctx_;
  // A Unix socket's mode or group changing makes its listener anew too.
  const bool pg_changed = pg_want != pg_ep_ || (pg_want && c.postgres.unix_socket != pg_unix_);
  const bool my_changed = my_want != my_ep_ || (my_want && c.mysql.unix_socket != my_unix_);
  try {
    if (pg_want && pg_changed)
      pg = std::make_unique<net::Listener>(
          rt_, *pg_want,
          [&ctx](boost::asio::ip::tcp::socket s) { return frontend::pg::serve_client(std::move(s), ctx); },
          c.postgres.unix_socket,
          [&ctx](int fd, const boost::asio::ip::tcp::endpoint& peer) {
            return frontend::pg::refuse_at_accept(fd, peer, ctx);
          });
    if (my_want && my_changed)
      my = std::make_unique<net::Listener>(
          rt_, *my_want,
          [&ctx](boost::asio::ip::tcp::socket s) { return frontend::mysql::serve_client(std::move(s), ctx); },
          c.mysql.unix_socket,
          [&ctx](int fd, const boost::asio::ip::tcp::endpoint& peer) {
            return frontend::mysql::refuse_at_accept(fd, peer, ctx);
          });
    if (http_want && http_want != http_ep_) {
      http = std::make_unique<observe::HttpServer>(
          rt_.worker(0), http_want->front(), http_handlers_,
          [](const boost::asio::ip::tcp::endpoint& e) { return net::listening::take(net::listening_key(e)); });
      net::listening::note(net::listening_key(http->local_endpoint()), http->native_handle());
    }
  } catch (const std::exception& e) {
    if (pg) pg->close();
    if (my) my->close();
    return e.what();
  }
  auto swap = [](auto& cur, auto& next, auto& cur_ep, const auto& want_ep, const char* what, bool changed = false) {
    if (want_ep == cur_ep && !changed) return;
    if (cur) {
      forget_http(cur);
      cur->close();
      for (auto& ep : *cur_ep) log::info("{} listener on {} closed", what, ep.text());
    }
    cur = std::move(next);
    cur_ep = want_ep;
    if (cur_ep)
      for (auto& ep : *cur_ep) log::info("{} listener on {}", what, ep.text());
  };
  swap(pg_, pg, pg_ep_, pg_want, "PostgreSQL", pg_changed);
  swap(my_, my, my_ep_, my_want, "MySQL", my_changed);
  pg_unix_ = c.postgres.unix_socket;
  my_unix_ = c.mysql.unix_socket;
  swap(http_, http, http_ep_, http_want, "HTTP metrics");
  return {};
}

void Listeners::close_clients() {
  std::lock_guard lock(mu_);
  if (pg_) pg_->close();
  if (my_) my_->close();
}

void Listeners::close_http() {
  std::lock_guard lock(mu_);
  if (!http_) return;
  net::listening::forget(http_->native_handle());
  http_->close();
}

void Listeners::hand_over() {
  std::lock_guard lock(mu_);
  // The new process listens on these very sockets (and owns the Unix socket files): this
  // process only stops accepting.
  net::disown_unix_paths();
  if (pg_) pg_->close();
  if (my_) my_->close();
  if (http_) {
    net::listening::forget(http_->native_handle());
    http_->close();
  }
}

}  // namespace sluice::app
