// A MySQL client's proof of its password, sans-io (client_auth.hpp).
#include "src/frontend/mysql/client_auth.hpp"

#include "protocols/mysql/codec.hpp"
#include "protocols/mysql/ed25519.hpp"

namespace sluice::frontend::mysql {

namespace {
constexpr std::string_view kNative = "mysql_native_password";
}  // namespace

ClientAuth::ClientAuth(std::shared_ptr<const pool::Credentials> creds, std::string default_plugin, std::string nonce,
                       bool secure_connection, bool tls, const crypto::RsaKey& rsa, bool learned)
    : creds_(std::move(creds)),
      plugin_(std::move(default_plugin)),
      nonce_(std::move(nonce)),
      secure_connection_(secure_connection),
      tls_(tls),
      rsa_(rsa),
      learned_(learned) {
  if (!creds_->ed25519_public.empty()) plugin_ = "caching_sha2_password";  // the password itself is needed
  else if (creds_->plaintext.empty()) plugin_ = kNative;                   // a stored hash serves only this one
}

ClientAuth::Step ClientAuth::start(std::string client_plugin, std::string response) {
  response_ = std::move(response);
  if (client_plugin.empty() && secure_connection_) client_plugin = kNative;
  if (client_plugin != plugin_) {
    // AuthSwitchRequest: the same nonce, as servers do.
    Step s{Step::Ask, {}};
    my::build_auth_switch(s.packet, plugin_, nonce_ + std::string(1, '\0'));
    state_ = State::Switching;
    return s;
  }
  return verify();
}

ClientAuth::Step ClientAuth::resume(std::string_view payload) {
  switch (state_) {
    case State::Switching:
      response_ = std::string(payload);
      return verify();
    case State::Sha2Full:
      return sha2_full(payload);
    case State::Done:
      break;
  }
  return {Step::Denied, {}};
}

ClientAuth::Step ClientAuth::verify() {
  state_ = State::Done;
  if (plugin_ == kNative) {
    if (creds_->mysql_stage2.empty()) {  // a user without a password
      return response_.empty() ? Step{Step::Accepted, {}} : denied_or_relookup();
    }
    if (auto stage1 = my::native_verify(response_, nonce_, creds_->mysql_stage2)) {
      if (creds_->plaintext.empty()) creds_->remember_mysql_stage1(*stage1);
      return {Step::Accepted, {}};
    }
    return denied_or_relookup();
  }
  // caching_sha2_password
  if (!creds_->ed25519_public.empty()) {  // a learned ed25519 account: always the full path
    state_ = State::Sha2Full;
    return {Step::Ask, std::string("\x01\x04", 2)};
  }
  if (creds_->plaintext.empty()) return response_.empty() ? Step{Step::Accepted, {}} : Step{Step::Denied, {}};
  if (creds_->sha2_cached()) {
    if (!my::sha2_verify(response_, nonce_, creds_->plaintext)) return {Step::Denied, {}};
    return {Step::Accepted, std::string("\x01\x03", 2)};  // fast authentication succeeded
  }
  // Full authentication: the client sends its password RSA-encrypted with Sluice's key (asking
  // for the key first, unless it has it), or itself over TLS.
  state_ = State::Sha2Full;
  return {Step::Ask, std::string("\x01\x04", 2)};
}

ClientAuth::Step ClientAuth::sha2_full(std::string_view data) {
  if (data == std::string_view("\x02", 1)) return {Step::Ask, "\x01" + rsa_.public_pem()};  // the key, please
  state_ = State::Done;
  std::string pw;
  if (tls_) {  // over TLS the client sends the password itself, NUL-terminated
    pw = std::string(data);
  } else {
    if (data.size() != 256) return {Step::Denied, {}};  // a cleartext password over plain TCP: refused
    auto plain = rsa_.decrypt_oaep(data);
    if (!plain) return {Step::Denied, {}};
    pw = my::xor_with_nonce(*plain, nonce_);
  }
  if (pw.empty() || pw.back() != '\0') return {Step::Denied, {}};
  pw.pop_back();
  if (!creds_->ed25519_public.empty()) {
    // The account's public key is the password's (MariaDB's ed25519): kept for the servers.
    if (!crypto::equal_constant_time(my::ed25519_public_key(pw), creds_->ed25519_public)) return {Step::Denied, {}};
    creds_->remember_password(pw);
    return {Step::Accepted, {}};
  }
  if (!crypto::equal_constant_time(pw, creds_->plaintext)) return {Step::Denied, {}};
  creds_->set_sha2_cached();
  return {Step::Accepted, {}};
}

ClientAuth::Step ClientAuth::denied_or_relookup() {
  // A learned user's password may have changed on the server since Sluice learned it.
  if (learned_ && plugin_ == kNative && !response_.empty()) return {Step::Relookup, {}};
  return {Step::Denied, {}};
}

ClientAuth::Step ClientAuth::relooked(std::shared_ptr<const pool::Credentials> fresh) {
  learned_ = false;  // once
  if (fresh && fresh != creds_ && !fresh->mysql_stage2.empty())
    if (auto stage1 = my::native_verify(response_, nonce_, fresh->mysql_stage2)) {
      fresh->remember_mysql_stage1(*stage1);
      creds_ = std::move(fresh);
      return {Step::Accepted, {}};
    }
  return {Step::Denied, {}};
}

}  // namespace sluice::frontend::mysql
