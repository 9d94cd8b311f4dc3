// The listening sockets (PostgreSQL, MySQL, HTTP metrics): opened at start, re-bound by a reload
// that changes an address (the new one first; a reload whose address cannot be bound is
// rejected and the old listener stays), closed at shutdown.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "src/config/config.hpp"
#include "src/net/runtime.hpp"
#include "src/observe/http.hpp"
#include "src/state/context.hpp"

namespace sluice::app {

class Listeners {
 public:
  Listeners(net::Runtime& rt, state::Context& ctx);
  // Opens what `c` asks for and closes what it no longer does: "" or what went wrong (then
  // nothing changed).
  std::string rebind(const config::Config& c);
  // Shutdown: no new client connections (the metrics endpoint stays until the end).
  void close_clients();
  void close_http();
  // An online upgrade: the new process listens on these sockets now; stop accepting on them,
  // leaving the sockets (and Unix socket files) to it.
  void hand_over();

 private:
  net::Runtime& rt_;
  state::Context& ctx_;
  observe::HttpHandlers http_handlers_;
  std::mutex mu_;
  std::unique_ptr<net::Listener> pg_, my_;
  std::unique_ptr<observe::HttpServer> http_;
  std::optional<std::vector<config::Endpoint>> pg_ep_, my_ep_, http_ep_;
  config::UnixSocketOptions pg_unix_, my_unix_;
};

}  // namespace sluice::app
