// The client side of a MySQL / MariaDB login as a sans-io algorithm for drive_login:
// HandshakeV10, SSLRequest and TLS when the cluster's server_tls asks for it,
// HandshakeResponse41, AuthSwitchRequest, the mysql_native_password, caching_sha2_password (fast
// path; full path with the password over TLS or RSA-encrypted with the server's key) and MariaDB
// client_ed25519 plugins. Then Sluice turns on session tracking (every OK reports the session
// variables and schema the client changed) and reads the session's character set variables and
// max_prepared_stmt_count.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "protocols/mysql/codec.hpp"
#include "src/pool/credentials.hpp"
#include "src/pool/login_driver.hpp"

namespace sluice::pool {

// A failure Sluice reports itself, with the MySQL error code and SQLSTATE clients are given.
ConnectResult my_local_error(std::string message, std::uint16_t code = my::er::UPSTREAM_UNREACHABLE,
                             std::string sqlstate = "08S01");

class MysqlLogin final : public LoginAlgorithm {
 public:
  // `caps`, `mariadb_caps`, `charset`: what the pool's clients negotiated (format-changing
  // capabilities asked of the server too). `where` names the server in messages.
  MysqlLogin(std::shared_ptr<const Credentials> creds, std::string database, ServerTls tls, std::string where,
             std::uint32_t caps, std::uint32_t mariadb_caps, std::uint8_t charset);

  LoginStep resume(std::string& in, std::string& out) override;
  void tls_ready() override;
  ConnectResult lost(bool sending, const std::string& reason) const override;
  ConnectResult tls_failed(const std::string& reason) const override;

  // Once the greeting was read (even when the login then failed).
  std::optional<my::Handshake> greeting;
  // Once Done.
  std::uint32_t capabilities = 0;           // negotiated with the server
  std::vector<std::string> character_set;   // character_set_client, _connection, _results, collation_connection
  std::optional<std::size_t> max_prepared;  // the server's max_prepared_stmt_count

 private:
  enum class State { Greeting, SslSent, Response, Auth, Tracking, Baseline, Done };
  LoginStep fail(std::string message, std::uint16_t code, std::string sqlstate);
  LoginStep server_error(my::Bytes payload);
  // Splits the next message off `in` into payload_; false: more bytes needed (or failed_).
  bool next_message(std::string& in);
  LoginStep on_greeting(std::string& out);
  LoginStep on_auth(std::string& out);
  LoginStep on_baseline();

  std::shared_ptr<const Credentials> creds_;
  std::string database_;
  ServerTls tls_;
  std::string where_;
  std::uint32_t caps_, mariadb_caps_;
  std::uint8_t charset_;
  State state_ = State::Greeting;
  bool tls_on_ = false, failed_ = false;
  std::string payload_, plugin_, nonce_;
  std::uint8_t seq_ = 0;  // the last sequence id received
  std::string response_;  // the HandshakeResponse, sent after TLS is up
  std::uint8_t response_seq_ = 0;
  // The result set being read (Baseline): packets still to skip before the row, and the row.
  int baseline_part_ = 0;
  std::uint64_t columns_ = 0, skipped_ = 0;
};

}  // namespace sluice::pool
