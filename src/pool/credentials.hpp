// How Sluice logs in to servers as a configured user, and how it checks that user's clients.
// Built once per config load from [[users]]; shared across workers (client_key under its mutex).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "protocols/postgres/scram.hpp"
#include "src/config/config.hpp"

namespace sluice::pool {

struct Credentials {
  std::string user;
  config::AuthMethod client_auth = config::AuthMethod::ScramSha256;
  std::string plaintext;                 // empty when the config holds only a stored secret
  std::string md5_secret;                // "md5" + 32 hex, when known
  std::optional<pg::ScramSecret> scram;  // from the verifier, or derived from the plaintext
  std::string mysql_stage2;              // SHA1(SHA1(password)), 20 bytes, from plaintext or *HEX
  // A MariaDB ed25519 account learned from the server ([mysql] auth_user): its 32-byte public
  // key. Its clients must send the password itself (caching_sha2_password's full path), which
  // is checked against this key and then kept for logging in to the servers (password()).
  std::string ed25519_public;

  // The plaintext password: configured, or recovered from a client (remember_password).
  std::string password() const;
  void remember_password(const std::string& pw) const;

  // ClientKey recovered from a client's SCRAM proof: lets Sluice log in to a server that holds

  // ClientKey recovered from a client's SCRAM proof: lets Sluice log in to a server that holds
  // the same verifier when the config has no plaintext password.
  void remember_client_key(const crypto::Digest32& key) const;
  std::optional<crypto::Digest32> client_key() const;
  // SHA1(password) recovered from a client's mysql_native_password scramble (same idea, for a
  // config that holds only the "*HEX" hash).
  void remember_mysql_stage1(const std::string& stage1) const;
  std::optional<std::string> mysql_stage1() const;
  // caching_sha2_password: a user's first login since start-up takes the full path (RSA), later
  // ones the fast path, as a MySQL server with an empty then warm cache does.
  bool sha2_cached() const;
  void set_sha2_cached() const;

 private:
  mutable std::mutex mu_;
  mutable std::optional<crypto::Digest32> client_key_;
  mutable std::optional<std::string> mysql_stage1_;
  mutable std::string recovered_password_;
  mutable bool sha2_cached_ = false;
};

// Throws config::ConfigError for secrets that cannot be parsed.
std::shared_ptr<const Credentials> make_credentials(const config::User& user, const std::string& file);

}  // namespace sluice::pool
