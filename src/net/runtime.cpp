// Runtime threads and listeners.
#include "src/net/runtime.hpp"

#include <fmt/format.h>

#include "src/observe/log.hpp"

namespace sluice::net {

namespace {

// Asio's epoll reactor makes a state object (about 170 bytes) for each socket it registers and,
// when the socket closes, keeps it in a free list for good. Made during a burst of logins, those
// objects land between the logins' short-lived allocations, and the few hundred of them keep
// as many pages resident after the burst (10,000 SCRAM logins 100 at a time left 323 of them
// holding about 0.7 MB). Registering this many sockets once, at start, makes the states the
// first bursts use contiguous (about 85 KB a worker).
constexpr std::size_t kReactorStates = 512;

void make_reactor_states(asio::io_context& ctx) {
  std::vector<tcp::socket> socks;
  socks.reserve(kReactorStates);
  boost::system::error_code ec;
  for (std::size_t i = 0; i < kReactorStates; ++i) {
    socks.emplace_back(ctx);
    socks.back().open(tcp::v4(), ec);
    if (ec) break;  // out of descriptors: fewer then
  }
}  // closed here: the states go to the reactor's free list

}  // namespace

Runtime::Runtime(unsigned workers) {
  for (unsigned i = 0; i < workers; ++i) {
    contexts_.push_back(std::make_unique<asio::io_context>(1));
    guards_.push_back(asio::make_work_guard(*contexts_.back()));
    make_reactor_states(*contexts_.back());
  }
}

Runtime::~Runtime() {
  stop();
  join();
}

void Runtime::start() {
  for (auto& c : contexts_)
    threads_.emplace_back([ctx = c.get()] {
      for (;;) {
        try {
          ctx->run();
          return;
        } catch (const std::exception& e) {
          log::error("worker: unexpected exception: {}", e.what());
        }
      }
    });
}

void Runtime::stop() {
  for (auto& c : contexts_) c->stop();
}

void Runtime::join() {
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void Runtime::each(const std::function<void()>& fn) {
  for (auto& c : contexts_) asio::post(*c, fn);
}

Listener::Listener(Runtime& rt, const std::vector<config::Endpoint>& eps, SessionFactory factory) {
  try {
    for (auto& ep : eps) listen_on(rt, ep, factory);
  } catch (...) {
    close();
    throw;
  }
}

void Listener::listen_on(Runtime& rt, const config::Endpoint& ep, const SessionFactory& factory) {
  tcp::resolver resolver(rt.worker(0));
  auto results = resolver.resolve(ep.host, std::to_string(ep.port), tcp::resolver::passive);
  if (results.empty()) throw std::runtime_error(fmt::format("cannot resolve listen address {}", ep.text()));
  tcp::endpoint endpoint = results.begin()->endpoint();
  // One acceptor (no SO_REUSEPORT, so a second Sluice on the same port fails loudly); each
  // accepted socket is created directly on the next worker's io_context, round robin.
  auto acc = std::make_shared<tcp::acceptor>(rt.worker(0));
  acc->open(endpoint.protocol());
  acc->set_option(asio::socket_base::reuse_address(true));
  boost::system::error_code ec;
  acc->bind(endpoint, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot listen on {}: {}", ep.text(), ec.message()));
  acc->listen(asio::socket_base::max_listen_connections);
  acceptors_.push_back(acc);
  asio::co_spawn(rt.worker(0), [acc, factory, &rt]() -> asio::awaitable<void> {
    unsigned next = 0;
    for (;;) {
      boost::system::error_code ec;
      auto& target = rt.worker(next++ % rt.size());
      auto sock = co_await acc->async_accept(target, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (!acc->is_open() || ec == asio::error::operation_aborted) co_return;
        log::warn("accept failed: {}", ec.message());
        asio::steady_timer t(acc->get_executor(), std::chrono::milliseconds(50));  // e.g. EMFILE: back off
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      asio::co_spawn(target, factory(std::move(sock)), asio::detached);
    }
  }, asio::detached);
}

void Listener::close() {
  for (auto& a : acceptors_)
    asio::post(a->get_executor(), [a] {
      boost::system::error_code ec;
      a->close(ec);
    });
}

}  // namespace sluice::net
