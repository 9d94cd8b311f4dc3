// Worker threads, one io_context each; TCP listeners that spread accepted sockets over workers.
#pragma once

#include <boost/asio.hpp>

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "src/config/config.hpp"

namespace sluice::net {

namespace asio = boost::asio;
using asio::ip::tcp;

class Runtime {
 public:
  explicit Runtime(unsigned workers);
  ~Runtime();
  unsigned size() const { return static_cast<unsigned>(contexts_.size()); }
  asio::io_context& worker(unsigned i) { return *contexts_[i]; }
  void start();  // one thread per worker
  void stop();   // stops every io_context
  void join();
  // Runs `fn` on every worker's thread.
  void each(const std::function<void()>& fn);

 private:
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
};

using SessionFactory = std::function<asio::awaitable<void>(tcp::socket)>;
// Looks at a TCP connection just accepted (its descriptor, non-blocking, and the peer's address)
// before any session exists for it: true when it has answered the connection itself (a refusal
// written without waiting) and the connection is to be closed.
using AcceptScreen = std::function<bool(int fd, const tcp::endpoint& peer)>;

// Listens on each of `eps` (throws, having closed what it opened, when one cannot be bound);
// accepted sockets go round robin to the workers and run `factory` there. An endpoint that is a
// path is a Unix-domain socket, made with `unix_opts`' mode and group (a stale file left by a
// process that is gone is replaced; one another process listens on is refused) and removed by
// close(). Its connections reach `factory` in a tcp::socket (net/connect.hpp). A TCP connection
// that `screen` answers on worker 0, at accept, goes no further.
class Listener {
 public:
  Listener(Runtime& rt, const std::vector<config::Endpoint>& eps, SessionFactory factory,
           config::UnixSocketOptions unix_opts = {}, AcceptScreen screen = {});
  ~Listener();
  void close();

 private:
  void listen_on(Runtime& rt, const config::Endpoint& ep, const SessionFactory& factory);
  void listen_unix(Runtime& rt, const std::string& path, const SessionFactory& factory);
  void adopt_unix_socket(Runtime& rt, const std::shared_ptr<asio::local::stream_protocol::acceptor>& acc,
                         const std::string& path, const SessionFactory& factory);
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors_;
  std::vector<std::shared_ptr<asio::local::stream_protocol::acceptor>> unix_acceptors_;
  std::vector<std::string> unix_paths_;  // removed by close()
  config::UnixSocketOptions unix_opts_;
  AcceptScreen screen_;  // TCP connections only
};

// A TCP listener's key among the listening sockets (net/listening_sockets.hpp): "address:port".
std::string listening_key(const tcp::endpoint& ep);

// An online upgrade handed the Unix socket files to the new process: closing this process's
// listeners must leave them in place.
void disown_unix_paths();

}  // namespace sluice::net
