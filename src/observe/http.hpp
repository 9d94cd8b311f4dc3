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
  // `inherited`, when given, may supply a socket already listening on the resolved endpoint (an
  // online upgrade's): -1 to bind as usual.
  HttpServer(boost::asio::io_context& io, const config::Endpoint& ep, HttpHandlers handlers,
             const std::function<int(const boost::asio::ip::tcp::endpoint&)>& inherited = {});
  ~HttpServer();
  // The listening socket's descriptor (-1 once closed) and address.
  int native_handle() const { return acceptor_ ? acceptor_->native_handle() : -1; }
  boost::asio::ip::tcp::endpoint local_endpoint() const {
    boost::system::error_code ec;
    return acceptor_ ? acceptor_->local_endpoint(ec) : boost::asio::ip::tcp::endpoint{};
  }
  void close();

 private:
  std::shared_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
};

}  // namespace sluice::observe
