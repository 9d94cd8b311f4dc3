// Client authentication state machine.
#include "src/frontend/postgres/auth.hpp"

#include <cstring>

#include "protocols/common/crypto.hpp"

namespace sluice::frontend::pg {

ClientAuth::ClientAuth(const pool::Credentials& creds, std::string channel_binding,
                       std::optional<config::AuthMethod> method)
    : creds_(creds), method_(method.value_or(creds.client_auth)), channel_binding_(std::move(channel_binding)) {
  if (method_ == config::AuthMethod::Md5 && creds_.md5_secret.size() != 35 && creds_.scram)
    method_ = config::AuthMethod::ScramSha256;
}

ClientAuth::Step ClientAuth::start(std::string& out) {
  switch (method_) {
    case config::AuthMethod::Trust:
    case config::AuthMethod::Cert:  // the session checked the client certificate already
      wire::auth_ok(out);
      return Step::Done;
    case config::AuthMethod::ScramSha256:
      if (!creds_.scram) {
        failure_ = "no SCRAM verifier is configured for this user";
        return Step::Failed;
      }
      if (channel_binding_.empty()) {
        wire::auth_sasl(out, "SCRAM-SHA-256");
      } else {  // PLUS first: the client's preference order is the server's list order
        wire::Builder(out).begin(wire::be::Authentication).i32(10).str("SCRAM-SHA-256-PLUS").str("SCRAM-SHA-256").i8(0).end();
      }
      state_ = 1;
      return Step::Send;
    case config::AuthMethod::Md5: {
      auto r = crypto::random_bytes(4);
      std::memcpy(salt_, r.data(), 4);
      wire::auth_md5(out, salt_);
      state_ = 10;
      return Step::Send;
    }
    case config::AuthMethod::Password:
      wire::auth_cleartext(out);
      state_ = 20;
      return Step::Send;
  }
  return Step::Failed;
}

ClientAuth::Step ClientAuth::on_password_message(wire::Bytes body, std::string& out) {
  wire::Reader r(body);
  switch (state_) {
    case 1: {  // SASLInitialResponse: mechanism, Int32 length, data
      auto mech = r.cstr();
      auto len = r.i32();
      bool plus = mech == "SCRAM-SHA-256-PLUS" && !channel_binding_.empty();
      if (!r.ok() || (mech != "SCRAM-SHA-256" && !plus) || len < 0 || static_cast<std::size_t>(len) != r.remaining()) {
        failure_ = "malformed SASLInitialResponse or unsupported mechanism";
        return Step::Failed;
      }
      scram_.emplace(*creds_.scram, std::string(), channel_binding_);
      auto reply = scram_->client_first(wire::as_sv(r.rest()), failure_);
      if (!reply) return Step::Failed;
      if (scram_->bound() != plus) {  // the mechanism and the gs2 header must agree
        failure_ = "SCRAM mechanism and channel binding flag disagree";
        return Step::Failed;
      }
      wire::auth_sasl_continue(out, *reply);
      state_ = 2;
      return Step::Send;
    }
    case 2: {
      auto reply = scram_->client_final(wire::as_sv(body), failure_);
      if (!reply) return Step::Failed;
      creds_.remember_client_key(scram_->client_key());
      wire::auth_sasl_final(out, *reply);
      wire::auth_ok(out);
      state_ = 3;
      return Step::Done;
    }
    case 10: {
      auto answer = r.cstr();
      if (!r.ok() || creds_.md5_secret.size() != 35) {
        failure_ = "malformed password message";
        return Step::Failed;
      }
      auto expected = crypto::pg_md5_response(std::string_view(creds_.md5_secret).substr(3),
                                              std::string_view(reinterpret_cast<const char*>(salt_), 4));
      if (!crypto::equal_constant_time(answer, expected)) {
        failure_ = "password does not match";
        return Step::Failed;
      }
      wire::auth_ok(out);
      return Step::Done;
    }
    case 20: {
      auto answer = r.cstr();
      if (!r.ok()) {
        failure_ = "malformed password message";
        return Step::Failed;
      }
      bool ok = false;
      if (!creds_.plaintext.empty()) {
        ok = crypto::equal_constant_time(answer, creds_.plaintext);
      } else if (creds_.scram) {
        auto s = wire::make_scram_secret(answer, creds_.scram->salt, creds_.scram->iterations);
        ok = crypto::equal_constant_time(crypto::view(s.stored_key), crypto::view(creds_.scram->stored_key));
      } else if (!creds_.md5_secret.empty()) {
        ok = crypto::equal_constant_time(crypto::pg_md5_secret(answer, creds_.user), creds_.md5_secret);
      }
      if (!ok) {
        failure_ = "password does not match";
        return Step::Failed;
      }
      wire::auth_ok(out);
      return Step::Done;
    }
    default:
      failure_ = "unexpected password message";
      return Step::Failed;
  }
}

}  // namespace sluice::frontend::pg
