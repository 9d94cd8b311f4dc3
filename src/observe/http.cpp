// Minimal HTTP/1.1 server for metrics: one coroutine per connection, keep-alive, bounded
// request size, 10 s idle timeout.
#include "src/observe/http.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "src/observe/log.hpp"

namespace sluice::observe {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

asio::awaitable<void> serve(tcp::socket sock, std::shared_ptr<HttpHandlers> h) {
  beast::tcp_stream stream(std::move(sock));
  beast::flat_buffer buf(16 * 1024);
  for (;;) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(16 * 1024);
    stream.expires_after(std::chrono::seconds(10));
    boost::system::error_code ec;
    co_await http::async_read(stream, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    auto& req = parser.get();
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    res.set(http::field::server, "sluice");
    std::string target(req.target());
    if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res.result(http::status::method_not_allowed);
      res.set(http::field::allow, "GET, HEAD");
      res.body() = "method not allowed\n";
    } else if (target == "/metrics") {
      res.result(http::status::ok);
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = h->metrics();
    } else if (target == "/healthz" || target == "/readyz") {
      auto why = target == "/healthz" ? h->health() : h->ready();
      res.result(why.empty() ? http::status::ok : http::status::service_unavailable);
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = why.empty() ? "ok\n" : why + "\n";
    } else {
      res.result(http::status::not_found);
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = "not found: try /metrics, /healthz or /readyz\n";
    }
    if (req.method() == http::verb::head) {
      res.content_length(res.body().size());
      res.body().clear();
    }
    res.prepare_payload();
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !res.keep_alive()) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace

HttpServer::HttpServer(asio::io_context& io, const config::Endpoint& ep, HttpHandlers handlers,
                       const std::function<int(const tcp::endpoint&)>& inherited) {
  tcp::resolver resolver(io);
  auto results = resolver.resolve(ep.host, std::to_string(ep.port), tcp::resolver::passive);
  if (results.empty()) throw std::runtime_error(fmt::format("cannot resolve [http] listen address {}", ep.text()));
  acceptor_ = std::make_shared<tcp::acceptor>(io);
  auto endpoint = results.begin()->endpoint();
  boost::system::error_code ec;
  if (int fd = inherited ? inherited(endpoint) : -1; fd >= 0) {  // an online upgrade: the previous process's
    acceptor_->assign(endpoint.protocol(), fd, ec);
    if (ec) {
      ::close(fd);
      throw std::runtime_error(fmt::format("cannot take over {} ([http]): {}", ep.text(), ec.message()));
    }
  } else {
    acceptor_->open(endpoint.protocol());
    acceptor_->set_option(asio::socket_base::reuse_address(true));
    acceptor_->bind(endpoint, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot listen on {} ([http]): {}", ep.text(), ec.message()));
    acceptor_->listen();
  }
  auto h = std::make_shared<HttpHandlers>(std::move(handlers));
  asio::co_spawn(io, [acc = acceptor_, h]() -> asio::awaitable<void> {
    for (;;) {
      boost::system::error_code ec;
      auto sock = co_await acc->async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (!acc->is_open() || ec == asio::error::operation_aborted) co_return;
        asio::steady_timer t(acc->get_executor(), std::chrono::milliseconds(50));
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      asio::co_spawn(acc->get_executor(), serve(std::move(sock), h), asio::detached);
    }
  }, asio::detached);
}

HttpServer::~HttpServer() { close(); }

void HttpServer::close() {
  if (!acceptor_) return;
  auto a = acceptor_;
  asio::post(a->get_executor(), [a] {
    boost::system::error_code ec;
    a->close(ec);
  });
  acceptor_.reset();
}

}  // namespace sluice::observe
