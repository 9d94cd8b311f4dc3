// Per worker: the sessions and their janitor (worker_sessions.hpp).
#include "src/frontend/common/worker_sessions.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <vector>

namespace sluice::frontend {

namespace asio = boost::asio;

// The calling worker's sessions, newest first.
struct WorkerSessions {
  static inline thread_local TendedSession* head = nullptr;
  static inline thread_local bool janitor_running = false;

  static void insert(TendedSession* s) {
    s->next_ = head;
    if (head) head->prev_ = s;
    head = s;
  }
  static void erase(TendedSession* s) {
    (s->prev_ ? s->prev_->next_ : head) = s->next_;
    if (s->next_) s->next_->prev_ = s->prev_;
    s->prev_ = s->next_ = nullptr;
  }
  template <typename F>
  static void each(F f) {
    for (TendedSession* s = head; s; s = s->next_) f(s);
  }
};

namespace {

asio::awaitable<void> janitor() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (WorkerSessions::head) {
    timer.expires_after(kJanitorPeriod);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    // A tick may end a session's wait, never the session itself (it resumes later).
    WorkerSessions::each([](TendedSession* s) { s->janitor_tick(); });
  }
  WorkerSessions::janitor_running = false;
}

}  // namespace

TendedSession::TendedSession(const asio::any_io_executor& ex) {
  WorkerSessions::insert(this);
  if (!WorkerSessions::janitor_running) {
    WorkerSessions::janitor_running = true;
    asio::co_spawn(ex, janitor(), asio::detached);
  }
}

TendedSession::~TendedSession() { WorkerSessions::erase(this); }

TendedSession* find_local(std::uint64_t id) {
  TendedSession* found = nullptr;
  WorkerSessions::each([&](TendedSession* s) {
    if (!found && s->client_id() == id) found = s;
  });
  return found;
}

void kill_local(std::uint64_t id) {
  if (TendedSession* s = find_local(id)) s->kill();
}

void kick_idle_sessions() {
  std::vector<TendedSession*> all;
  WorkerSessions::each([&](TendedSession* s) { all.push_back(s); });
  for (auto* s : all) s->kick();
}

}  // namespace sluice::frontend
