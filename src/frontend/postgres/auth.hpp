// Client authentication exchanges (docs 55.3): SCRAM-SHA-256, md5, cleartext password, trust.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "protocols/postgres/codec.hpp"
#include "protocols/postgres/scram.hpp"
#include "src/pool/credentials.hpp"

namespace sluice::frontend::pg {

namespace wire = sluice::pg;

// One authentication conversation as a state machine: feed each PasswordMessage body, get the
// bytes to send back. Sans-io so it can be tested byte for byte.
class ClientAuth {
 public:
  enum class Step { Send, Done, Failed };
  // `channel_binding`: tls-server-end-point data when the client connected with TLS (then
  // SCRAM-SHA-256-PLUS is offered as well). `method`: what an [[access]] rule asks for instead of
  // the user's own `auth`. As PostgreSQL does, md5 for a user with only a SCRAM verifier is
  // SCRAM-SHA-256.
  explicit ClientAuth(const pool::Credentials& creds, std::string channel_binding = {},
                      std::optional<config::AuthMethod> method = std::nullopt);
  // First message to send (AuthenticationSASL / MD5Password / CleartextPassword / Ok).
  Step start(std::string& out);
  // Handles a 'p' message body from the client.
  Step on_password_message(wire::Bytes body, std::string& out);
  const std::string& failure() const { return failure_; }

 private:
  const pool::Credentials& creds_;
  config::AuthMethod method_;
  int state_ = 0;
  std::uint8_t salt_[4]{};
  std::optional<wire::ScramServer> scram_;
  std::string failure_;
  std::string channel_binding_;
};

}  // namespace sluice::frontend::pg
