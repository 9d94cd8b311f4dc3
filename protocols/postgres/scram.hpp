// SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it (docs 55.3.1 "SASL Authentication"):
// the server side for authenticating clients, the client side for logging in to servers.
// Channel binding is not offered here (no TLS yet), so the GS2 header must be "n,," or "y,,".
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "protocols/common/crypto.hpp"

namespace sluice::pg {

inline constexpr int kScramDefaultIterations = 4096;

// A stored verifier: "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" (base64 parts).
struct ScramSecret {
  int iterations = 0;
  std::string salt;  // raw bytes
  crypto::Digest32 stored_key{}, server_key{};
};
std::optional<ScramSecret> parse_scram_secret(std::string_view text);
ScramSecret make_scram_secret(std::string_view password, std::string_view salt, int iterations);
std::string format_scram_secret(const ScramSecret& s);

// Server side of one exchange. Feed the client's two messages in order.
class ScramServer {
 public:
  // `channel_binding`: tls-server-end-point data of the TLS connection the exchange runs on
  // (empty without TLS); with it, SCRAM-SHA-256-PLUS ("p=tls-server-end-point") is accepted and
  // a client saying "y" (it could bind, thinks the server cannot) is refused (RFC 5802 6).
  explicit ScramServer(ScramSecret secret, std::string nonce = {}, std::string channel_binding = {});
  // Whether the client chose SCRAM-SHA-256-PLUS (after client_first).
  bool bound() const { return bound_; }
  // client-first-message -> server-first-message, or nullopt with `error` set.
  std::optional<std::string> client_first(std::string_view msg, std::string& error);
  // client-final-message -> server-final-message ("v=..."), or nullopt (bad proof: `error` set).
  std::optional<std::string> client_final(std::string_view msg, std::string& error);
  // After a successful exchange: ClientKey recovered from the proof (RFC 5802 section 3), which
  // lets Sluice log in to a server holding the same verifier without a plaintext password.
  const crypto::Digest32& client_key() const { return client_key_; }

 private:
  ScramSecret secret_;
  std::string nonce_, client_first_bare_, server_first_, full_nonce_;
  std::string channel_binding_, gs2_header_;
  bool bound_ = false;
  crypto::Digest32 client_key_{};
};

// The most PBKDF2 rounds a server may ask of Sluice's SCRAM login (server_first refuses more).
inline constexpr int kMaxServerIterations = 1'000'000;

// Client side of one exchange, from a password or from keys recovered by ScramServer.
class ScramClient {
 public:
  static ScramClient from_password(std::string password, std::string nonce = {});
  static ScramClient from_keys(const ScramSecret& secret, const crypto::Digest32& client_key,
                               std::string nonce = {});
  std::string client_first() const;  // "n,,n=,r=<nonce>"
  std::optional<std::string> server_first(std::string_view msg, std::string& error);
  bool server_final(std::string_view msg, std::string& error) const;

 private:
  std::string password_, nonce_;
  std::optional<ScramSecret> keys_;  // when logging in with recovered keys
  crypto::Digest32 client_key_{};
  crypto::Digest32 server_key_{};
  std::string auth_message_;
};

}  // namespace sluice::pg
