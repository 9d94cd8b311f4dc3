// A client's way in, the same on both protocols: counted against max_client_conn (refused with
// the protocol's own words past it), its session run to the end with internal errors logged, and
// the server side of a TLS handshake.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <functional>
#include <memory>
#include <string>

#include "src/net/tls.hpp"
#include "src/observe/stats.hpp"
#include "src/state/context.hpp"

namespace sluice::frontend {

// Runs `session` for `sock` unless max_client_conn clients are already in; then writes `refusal`
// (the protocol's error) and closes. `what` names the session in the log when it ends by an
// internal error.
boost::asio::awaitable<void> serve_admitted(
    boost::asio::ip::tcp::socket sock, state::Context& ctx, std::string refusal,
    const std::function<boost::asio::awaitable<void>(boost::asio::ip::tcp::socket)>& session, const char* what);

// The same for a session class constructed from (socket, context) that has run().
template <typename Session>
boost::asio::awaitable<void> serve_admitted(boost::asio::ip::tcp::socket sock, state::Context& ctx, std::string refusal,
                                            const char* what) {
  co_await serve_admitted(
      std::move(sock), ctx, std::move(refusal),
      [&ctx](boost::asio::ip::tcp::socket admitted) -> boost::asio::awaitable<void> {
        Session s(std::move(admitted), ctx);
        co_await s.run();
      },
      what);
}

// The server side of a TLS handshake on `sock`: the stream, or null (logged) when it fails.
// Marks the client as on TLS (SHOW CLIENTS).
boost::asio::awaitable<std::unique_ptr<net::TlsStream>> accept_tls(boost::asio::ip::tcp::socket& sock,
                                                                   std::shared_ptr<boost::asio::ssl::context> tls,
                                                                   observe::ClientInfo& info);

// The console's KILL for this client (ClientInfo::kill): on the client's worker, while `alive`,
// `last_words()` (the protocol's error, framed; it may note the reason) is written without waiting
// (skipped in the middle of another TLS record), then `close()` ends the session.
void set_kill_hook(observe::ClientInfo& info, boost::asio::any_io_executor ex, std::weak_ptr<bool> alive,
                   boost::asio::ip::tcp::socket& sock, const std::unique_ptr<net::TlsStream>& tls,
                   std::function<std::string()> last_words, std::function<void()> close);

}  // namespace sluice::frontend
