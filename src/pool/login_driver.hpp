// Server logins as sans-io algorithms with one driver. A LoginAlgorithm (pg_login, mysql_login)
// only reads the server's bytes it is given and says what to do next: send these bytes, receive
// more, start TLS, done, or failed. drive_login() does the I/O through a LoginTransport (the
// socket, or a scripted one in tests) and turns a broken connection or a passed deadline into the
// algorithm's own words for the step it was at.
#pragma once

#include <boost/asio.hpp>

#include <optional>
#include <string>

#include "src/pool/server_conn.hpp"

namespace sluice::pool {

enum class LoginStep { Send, Receive, StartTls, Done, Failed };

class LoginAlgorithm {
 public:
  virtual ~LoginAlgorithm() = default;
  // Advances with the server's unread bytes `in` (the algorithm erases what it used). Send: the
  // bytes to send were appended to `out`. Failed: failure() says why.
  virtual LoginStep resume(std::string& in, std::string& out) = 0;
  // At most this many bytes are read for the next Receive (the answer to PostgreSQL's SSLRequest
  // is one byte: what follows it belongs to the TLS handshake).
  virtual std::size_t receive_limit() const { return SIZE_MAX; }
  // TLS is up (after StartTls): what follows goes through it.
  virtual void tls_ready() {}
  // The connection broke (or the deadline passed: `reason` "timed out") while sending or waiting
  // for the server, at the current step.
  virtual ConnectResult lost(bool sending, const std::string& reason) const = 0;
  // The TLS handshake the server agreed to failed.
  virtual ConnectResult tls_failed(const std::string& reason) const = 0;
  const ConnectResult& failure() const { return failure_; }

 protected:
  ConnectResult failure_;
};

class LoginTransport {
 public:
  virtual ~LoginTransport() = default;
  virtual boost::asio::awaitable<void> send(std::string_view bytes, boost::system::error_code& ec) = 0;
  virtual boost::asio::awaitable<std::size_t> receive(boost::asio::mutable_buffer into,
                                                      boost::system::error_code& ec) = 0;
  // "" when the TLS handshake succeeded, else what went wrong.
  virtual boost::asio::awaitable<std::string> start_tls() = 0;
  virtual bool expired() const = 0;
};

// Runs `login` over `io` to its end: nullopt once logged in, else the failure to report.
boost::asio::awaitable<std::optional<ConnectResult>> drive_login(LoginAlgorithm& login, LoginTransport& io);

// The transport of a real server connection: its socket (then TLS), bounded by `deadline`.
class ConnTransport final : public LoginTransport {
 public:
  ConnTransport(ServerConn& conn, const Deadline& deadline, ServerTls tls, config::Endpoint endpoint)
      : conn_(conn), deadline_(deadline), tls_(std::move(tls)), endpoint_(std::move(endpoint)) {}
  boost::asio::awaitable<void> send(std::string_view bytes, boost::system::error_code& ec) override;
  boost::asio::awaitable<std::size_t> receive(boost::asio::mutable_buffer into, boost::system::error_code& ec) override;
  boost::asio::awaitable<std::string> start_tls() override;
  bool expired() const override { return deadline_.expired(); }

 private:
  ServerConn& conn_;
  const Deadline& deadline_;
  ServerTls tls_;
  config::Endpoint endpoint_;
};

}  // namespace sluice::pool
