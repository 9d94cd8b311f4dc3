// The client side of a PostgreSQL login (docs 55.2.1 "Start-up", 55.2.10 "SSL Session
// Encryption", 55.3 "SASL Authentication") as a sans-io algorithm for drive_login: SSLRequest
// when the cluster's server_tls asks for it, StartupMessage, cleartext / md5 / SCRAM-SHA-256
// authentication, then ParameterStatus and BackendKeyData until ReadyForQuery.
#pragma once

#include <optional>
#include <string>

#include "protocols/postgres/scram.hpp"
#include "src/pool/credentials.hpp"
#include "src/pool/login_driver.hpp"

namespace sluice::pool {

// A failure Sluice reports itself (not the server's ErrorResponse), as a FATAL with `code`.
ConnectResult pg_local_error(std::string message, std::string code = "08006");

class PgLogin final : public LoginAlgorithm {
 public:
  // `where` names the server in messages ("server 127.0.0.1:5432 (user "u", database "d")").
  // `scram_nonce`: for tests only (empty: random).
  PgLogin(std::shared_ptr<const Credentials> creds, std::string database, ServerTls tls, std::string where,
          std::string scram_nonce = {});

  LoginStep resume(std::string& in, std::string& out) override;
  std::size_t receive_limit() const override { return state_ == State::SslAnswer ? 1 : SIZE_MAX; }
  void tls_ready() override { state_ = State::Startup; }
  ConnectResult lost(bool sending, const std::string& reason) const override;
  ConnectResult tls_failed(const std::string& reason) const override;

  // Logs in as a logical replication connection (startup parameter replication=database): it
  // takes simple queries and replication commands (src/state/change_stream).
  bool replication = false;
  // What the server reported, once Done.
  Params params;
  std::uint32_t backend_pid = 0, backend_key = 0;

 private:
  enum class State { Start, SslAnswer, Startup, Auth };
  LoginStep fail(std::string message, std::string code);
  // One message from the server during authentication: what to do next (`done` at ReadyForQuery).
  LoginStep on_message(char type, pg::Bytes body, std::string& out, bool& done);

  std::shared_ptr<const Credentials> creds_;
  std::string database_;
  ServerTls tls_;
  std::string where_, scram_nonce_;
  State state_ = State::Start;
  std::optional<pg::ScramClient> scram_;
};

}  // namespace sluice::pool
