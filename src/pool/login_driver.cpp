// The one driver of the sans-io server logins (login_driver.hpp).
#include "src/pool/login_driver.hpp"

#include <algorithm>
#include <array>

namespace sluice::pool {

namespace asio = boost::asio;

asio::awaitable<std::optional<ConnectResult>> drive_login(LoginAlgorithm& login, LoginTransport& io) {
  std::string in, out;
  std::array<char, 4096> chunk;
  for (;;) {
    out.clear();
    boost::system::error_code ec;
    switch (login.resume(in, out)) {
      case LoginStep::Send:
        co_await io.send(out, ec);
        if (ec || io.expired()) co_return login.lost(true, io.expired() ? "timed out" : ec.message());
        break;
      case LoginStep::Receive: {
        std::size_t n =
            co_await io.receive(asio::buffer(chunk.data(), std::min(chunk.size(), login.receive_limit())), ec);
        if (ec || io.expired()) co_return login.lost(false, io.expired() ? "timed out" : ec.message());
        in.append(chunk.data(), n);
        break;
      }
      case LoginStep::StartTls: {
        auto err = co_await io.start_tls();
        if (!err.empty()) co_return login.tls_failed(err);
        login.tls_ready();
        break;
      }
      case LoginStep::Done:
        co_return std::nullopt;
      case LoginStep::Failed:
        co_return login.failure();
    }
  }
}

asio::awaitable<void> ConnTransport::send(std::string_view bytes, boost::system::error_code& ec) {
  co_await conn_.channel().write(asio::buffer(bytes), ec);
}

asio::awaitable<std::size_t> ConnTransport::receive(asio::mutable_buffer into, boost::system::error_code& ec) {
  co_return co_await conn_.channel().read_some(into, ec);
}

asio::awaitable<std::string> ConnTransport::start_tls() { co_return co_await pool::start_tls(conn_, tls_, endpoint_); }

}  // namespace sluice::pool
