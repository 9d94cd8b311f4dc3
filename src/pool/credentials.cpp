// Derives the secrets Sluice needs from a [[users]] entry.
#include "src/pool/credentials.hpp"

#include <fmt/format.h>

namespace sluice::pool {

void Credentials::remember_client_key(const crypto::Digest32& key) const {
  std::lock_guard lock(mu_);
  client_key_ = key;
}

std::optional<crypto::Digest32> Credentials::client_key() const {
  std::lock_guard lock(mu_);
  return client_key_;
}

void Credentials::remember_mysql_stage1(const std::string& stage1) const {
  std::lock_guard lock(mu_);
  mysql_stage1_ = stage1;
}

std::optional<std::string> Credentials::mysql_stage1() const {
  std::lock_guard lock(mu_);
  if (!plaintext.empty()) return crypto::sha1_raw(plaintext);
  return mysql_stage1_;
}

bool Credentials::sha2_cached() const {
  std::lock_guard lock(mu_);
  return sha2_cached_;
}

void Credentials::set_sha2_cached() const {
  std::lock_guard lock(mu_);
  sha2_cached_ = true;
}

std::string Credentials::password() const {
  if (!plaintext.empty()) return plaintext;
  std::lock_guard lock(mu_);
  return recovered_password_;
}

void Credentials::remember_password(const std::string& pw) const {
  std::lock_guard lock(mu_);
  recovered_password_ = pw;
}

std::shared_ptr<const Credentials> make_credentials(const config::User& user, const std::string& file) {
  auto c = std::make_shared<Credentials>();
  c->user = user.name;
  c->client_auth = user.auth;
  const std::string& pw = user.password;
  auto is_hex = [](std::string_view s) {
    return s.find_first_not_of("0123456789abcdefABCDEF") == std::string_view::npos;
  };
  if (pw.rfind("SCRAM-SHA-256$", 0) == 0) {
    c->scram = pg::parse_scram_secret(pw);
    if (!c->scram)
      throw config::ConfigError(fmt::format("{}:{}: users.password: malformed SCRAM-SHA-256 verifier for user \"{}\"", file, user.line, user.name));
  } else if (pw.size() == 35 && pw.rfind("md5", 0) == 0 && is_hex(std::string_view(pw).substr(3))) {
    c->md5_secret = pw;
  } else if (pw.size() == 41 && pw[0] == '*' && is_hex(std::string_view(pw).substr(1))) {
    // mysql_native_password hash: used by the MySQL front end only.
    c->mysql_stage2 = *crypto::hex_decode(std::string_view(pw).substr(1));
  } else if (!pw.empty()) {
    c->plaintext = pw;
    c->md5_secret = crypto::pg_md5_secret(pw, user.name);
    c->scram = pg::make_scram_secret(pw, crypto::random_bytes(16), pg::kScramDefaultIterations);
    c->mysql_stage2 = crypto::sha1_raw(crypto::sha1_raw(pw));
  }
  return c;
}

}  // namespace sluice::pool
