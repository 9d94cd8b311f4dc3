// Runtime threads and listeners.
#include "src/net/runtime.hpp"

#include "src/net/listening_sockets.hpp"
#include "src/net/socket_flags.hpp"
#include "src/observe/loop_clock.hpp"

#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

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
      observe::LoopClockScope loop_clock;  // the worker's handlers read the time of their turn
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

Listener::Listener(Runtime& rt, const std::vector<config::Endpoint>& eps, SessionFactory factory,
                   config::UnixSocketOptions unix_opts, AcceptScreen screen)
    : unix_opts_(std::move(unix_opts)), screen_(std::move(screen)) {
  try {
    for (auto& ep : eps) listen_on(rt, ep, factory);
  } catch (...) {
    close();
    throw;
  }
}

namespace {
// The Unix socket paths this process listens on, and which Listener owns each: a reload that
// makes a new Listener for the same path takes it over (the old one must not remove it).
std::mutex g_unix_mu;
std::map<std::string, const void*> g_unix_owner;

void release_unix_paths(const void* owner, std::vector<std::string>& paths) {
  std::lock_guard lock(g_unix_mu);
  for (auto& p : paths) {
    auto it = g_unix_owner.find(p);
    if (it == g_unix_owner.end() || it->second != owner) continue;
    ::unlink(p.c_str());
    g_unix_owner.erase(it);
  }
  paths.clear();
}

// Accepts on a Unix-domain socket until it closes; each connection goes to the next worker,
// round robin, and runs `factory` there with its descriptor in a tcp::socket: every session
// handles it as any other client (net/connect.hpp).
asio::awaitable<void> accept_unix(std::shared_ptr<asio::local::stream_protocol::acceptor> acc, SessionFactory factory,
                                  Runtime& rt) {
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
    int fd = sock.release(ec);
    if (ec) continue;
    tcp::socket s(target);
    s.assign(tcp::v4(), fd, ec);
    if (ec) {
      ::close(fd);
      continue;
    }
    asio::co_spawn(target, factory(std::move(s)), asio::detached);
  }
}

// Connections taken per turn of worker 0 before it lets its other work run.
constexpr int kAcceptBatch = 64;

// Accepts on a TCP socket until it closes: every connection waiting is taken in one turn (up to
// kAcceptBatch, then the turn yields), each shown to `screen` (a refusal at accept costs the
// accept, one send and the close, and never wakes another worker) and otherwise given to the
// next worker, round robin, where `factory` runs. The listening socket is non-blocking and its
// readiness edge-triggered, so it is waited on only once accept() says nothing is left.
asio::awaitable<void> accept_tcp(std::shared_ptr<tcp::acceptor> acc, SessionFactory factory, AcceptScreen screen,
                                 Runtime& rt) {
  unsigned next = 0;
  boost::system::error_code ec;
  acc->non_blocking(true, ec);
  const auto protocol = acc->local_endpoint(ec).protocol();
  for (;;) {
    int taken = 0;
    for (; taken < kAcceptBatch && acc->is_open(); ++taken) {
      sockaddr_storage addr{};
      socklen_t len = sizeof addr;
      int fd = ::accept4(acc->native_handle(), reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;  // that client is gone already
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          log::warn("accept failed: {}", std::strerror(errno));
          asio::steady_timer t(acc->get_executor(), std::chrono::milliseconds(50));  // e.g. EMFILE: back off
          co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          taken = kAcceptBatch;  // try again at once, without waiting for a new connection
        }
        break;
      }
      tcp::endpoint peer;
      std::memcpy(peer.data(), &addr, std::min<std::size_t>(len, peer.capacity()));
      peer.resize(std::min<std::size_t>(len, peer.capacity()));
      bool answered = false;
      try {
        answered = screen && screen(fd, peer);
      } catch (const std::exception& e) {  // e.g. out of memory: that connection is closed, the loop goes on
        log::error("accept: connection not screened: {}", e.what());
        answered = true;
      }
      if (answered) {
        ::close(fd);
        continue;
      }
      auto& target = rt.worker(next++ % rt.size());
      tcp::socket s(target);
      s.assign(protocol, fd, ec);
      if (ec) {
        ::close(fd);
        continue;
      }
      set_non_blocking(s, true, ec);  // accept4 made it so: Asio is told, without an ioctl
      asio::co_spawn(target, factory(std::move(s)), asio::detached);
    }
    if (!acc->is_open()) co_return;
    if (taken >= kAcceptBatch) {
      co_await asio::post(acc->get_executor(), asio::use_awaitable);  // more may wait: after the others
      continue;
    }
    co_await acc->async_wait(tcp::acceptor::wait_read, asio::redirect_error(asio::use_awaitable, ec));
    if (!acc->is_open() || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      log::warn("accept failed: {}", ec.message());
      asio::steady_timer t(acc->get_executor(), std::chrono::milliseconds(50));
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }
}

}  // namespace

Listener::~Listener() { release_unix_paths(this, unix_paths_); }

std::string listening_key(const tcp::endpoint& ep) {
  const auto a = ep.address();
  return a.is_v6() ? fmt::format("[{}]:{}", a.to_string(), ep.port()) : fmt::format("{}:{}", a.to_string(), ep.port());
}

void disown_unix_paths() {
  std::lock_guard lock(g_unix_mu);
  g_unix_owner.clear();
}

void Listener::listen_unix(Runtime& rt, const std::string& path, const SessionFactory& factory) {
  using local = asio::local::stream_protocol;
  boost::system::error_code ec;
  if (int fd = listening::take(path); fd >= 0) {
    // An online upgrade: the previous process's socket, listening already, its file in place.
    auto acc = std::make_shared<local::acceptor>(rt.worker(0));
    acc->assign(local(), fd, ec);
    if (ec) {
      ::close(fd);
      throw std::runtime_error(fmt::format("cannot take over {}: {}", path, ec.message()));
    }
    adopt_unix_socket(rt, acc, path, factory);
    return;
  }
  struct stat st {};
  bool ours = false;
  {
    std::lock_guard lock(g_unix_mu);
    ours = g_unix_owner.count(path) > 0;
  }
  if (ours) {
    ::unlink(path.c_str());  // a reload: this Listener takes the path over from the old one
  } else if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw std::runtime_error(fmt::format("cannot listen on {}: a file that is not a socket is there", path));
    // Someone listening there keeps it; a socket file nobody answers on is left over: replace it.
    local::socket probe(rt.worker(0));
    probe.connect(local::endpoint(path), ec);
    if (!ec) throw std::runtime_error(fmt::format("cannot listen on {}: another process listens there", path));
    ::unlink(path.c_str());
  }
  auto acc = std::make_shared<local::acceptor>(rt.worker(0));
  acc->open(local());
  acc->bind(local::endpoint(path), ec);
  if (ec) throw std::runtime_error(fmt::format("cannot listen on {}: {}", path, ec.message()));
  adopt_unix_socket(rt, acc, path, factory);
}

void Listener::adopt_unix_socket(Runtime& rt, const std::shared_ptr<asio::local::stream_protocol::acceptor>& acc,
                                 const std::string& path, const SessionFactory& factory) {
  unix_paths_.push_back(path);
  {
    std::lock_guard lock(g_unix_mu);
    g_unix_owner[path] = this;
  }
  if (!unix_opts_.owner.empty()) {
    passwd pw{}, *found = nullptr;
    std::array<char, 4096> buf{};
    if (getpwnam_r(unix_opts_.owner.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found)
      throw std::runtime_error(fmt::format("cannot listen on {}: no user \"{}\"", path, unix_opts_.owner));
    if (::chown(path.c_str(), found->pw_uid, static_cast<gid_t>(-1)) != 0)
      throw std::runtime_error(
          fmt::format("cannot listen on {}: chown to user {}: {}", path, unix_opts_.owner, std::strerror(errno)));
  }
  if (!unix_opts_.group.empty()) {
    group g{}, *found = nullptr;
    std::array<char, 4096> buf{};
    if (getgrnam_r(unix_opts_.group.c_str(), &g, buf.data(), buf.size(), &found) != 0 || !found)
      throw std::runtime_error(fmt::format("cannot listen on {}: no group \"{}\"", path, unix_opts_.group));
    if (::chown(path.c_str(), static_cast<uid_t>(-1), found->gr_gid) != 0)
      throw std::runtime_error(
          fmt::format("cannot listen on {}: chown to group {}: {}", path, unix_opts_.group, std::strerror(errno)));
  }
  if (::chmod(path.c_str(), static_cast<mode_t>(unix_opts_.mode)) != 0)
    throw std::runtime_error(fmt::format("cannot listen on {}: chmod: {}", path, std::strerror(errno)));
  boost::system::error_code ec;
  acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot listen on {}: {}", path, ec.message()));
  listening::note(path, acc->native_handle());
  unix_acceptors_.push_back(acc);
  asio::co_spawn(rt.worker(0), accept_unix(acc, factory, rt), asio::detached);
}

void Listener::listen_on(Runtime& rt, const config::Endpoint& ep, const SessionFactory& factory) {
  if (ep.unix_socket()) return listen_unix(rt, ep.host, factory);
  tcp::resolver resolver(rt.worker(0));
  auto results = resolver.resolve(ep.host, std::to_string(ep.port), tcp::resolver::passive);
  if (results.empty()) throw std::runtime_error(fmt::format("cannot resolve listen address {}", ep.text()));
  tcp::endpoint endpoint = results.begin()->endpoint();
  // One acceptor (no SO_REUSEPORT, so a second Sluice on the same port fails loudly); each
  // accepted socket is created directly on the next worker's io_context, round robin.
  auto acc = std::make_shared<tcp::acceptor>(rt.worker(0));
  const std::string key = listening_key(endpoint);
  boost::system::error_code ec;
  if (int fd = listening::take(key); fd >= 0) {
    // An online upgrade: the previous process's socket, listening already.
    acc->assign(endpoint.protocol(), fd, ec);
    if (ec) {
      ::close(fd);
      throw std::runtime_error(fmt::format("cannot take over {}: {}", ep.text(), ec.message()));
    }
  } else {
    acc->open(endpoint.protocol());
    acc->set_option(asio::socket_base::reuse_address(true));
    acc->bind(endpoint, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot listen on {}: {}", ep.text(), ec.message()));
    acc->listen(asio::socket_base::max_listen_connections);
  }
  listening::note(key, acc->native_handle());
  acceptors_.push_back(acc);
  asio::co_spawn(rt.worker(0), accept_tcp(acc, factory, screen_, rt), asio::detached);
}

void Listener::close() {
  auto close_all = [](auto& acceptors) {
    for (auto& a : acceptors) {
      listening::forget(a->native_handle());
      asio::post(a->get_executor(), [a] {
        boost::system::error_code ec;
        a->close(ec);
      });
    }
  };
  close_all(acceptors_);
  close_all(unix_acceptors_);
  release_unix_paths(this, unix_paths_);
}

}  // namespace sluice::net
