// Per worker: the sessions and their janitor (worker_sessions.hpp).
#include "src/frontend/common/worker_sessions.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unordered_set>
#include <vector>

namespace sluice::frontend {

namespace asio = boost::asio;

namespace {

thread_local bool t_janitor = false;
thread_local std::unordered_set<TendedSession*> t_sessions;

asio::awaitable<void> janitor() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!t_sessions.empty()) {
    timer.expires_after(kJanitorPeriod);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    // A tick may end a session's wait, never the session itself (it resumes later).
    for (TendedSession* s : t_sessions) s->janitor_tick();
  }
  t_janitor = false;
}

}  // namespace

TendedSession::TendedSession(const asio::any_io_executor& ex) {
  t_sessions.insert(this);
  if (!t_janitor) {
    t_janitor = true;
    asio::co_spawn(ex, janitor(), asio::detached);
  }
}

TendedSession::~TendedSession() { t_sessions.erase(this); }

TendedSession* find_local(std::uint64_t id) {
  for (TendedSession* s : t_sessions)
    if (s->client_id() == id) return s;
  return nullptr;
}

void kill_local(std::uint64_t id) {
  if (TendedSession* s = find_local(id)) s->kill();
}

void kick_idle_sessions() {
  for (auto* s : std::vector<TendedSession*>(t_sessions.begin(), t_sessions.end())) s->kick();
}

}  // namespace sluice::frontend
