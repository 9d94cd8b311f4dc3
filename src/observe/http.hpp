// The HTTP listener (Boost.Beast): GET /metrics (Prometheus text), /healthz (alive) and /readyz
// (ready for new clients).
#pragma once

#include <boost/asio.hpp>

#include <functional>
#include <memory>
#include <string>

#include "src/config/config.hpp"

namespace sluice::observe {

struct HttpHandlers {
  std::function<std::string()> metrics;
  // "" when healthy, else the reason (answered 503).
  std::function<std::string()> health;
  // GET /readyz: "" when ready for new clients, else the reasons (answered 503).
  std::function<std::string()> ready;
};

class HttpServer {
 public:
  // Binds at once; throws std::runtime_error naming the address when it cannot.
  HttpServer(boost::asio::io_context& io, const config::Endpoint& ep, HttpHandlers handlers);
  ~HttpServer();
  void close();

 private:
  std::shared_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
};

}  // namespace sluice::observe
