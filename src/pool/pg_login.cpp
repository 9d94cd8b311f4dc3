// PostgreSQL server login, sans-io (pg_login.hpp).
#include "src/pool/pg_login.hpp"

#include <fmt/format.h>

#include "protocols/common/crypto.hpp"

namespace sluice::pool {

ConnectResult pg_local_error(std::string message, std::string code) {
  ConnectResult r;
  r.error.fields.severity = "FATAL";
  r.error.fields.code = std::move(code);
  r.error.fields.message = std::move(message);
  return r;
}

PgLogin::PgLogin(std::shared_ptr<const Credentials> creds, std::string database, ServerTls tls, std::string where,
                 std::string scram_nonce)
    : creds_(std::move(creds)),
      database_(std::move(database)),
      tls_(std::move(tls)),
      where_(std::move(where)),
      scram_nonce_(std::move(scram_nonce)) {}

LoginStep PgLogin::fail(std::string message, std::string code) {
  failure_ = pg_local_error(std::move(message), std::move(code));
  return LoginStep::Failed;
}

ConnectResult PgLogin::lost(bool sending, const std::string& reason) const {
  if (state_ == State::SslAnswer)
    return pg_local_error(fmt::format("{} closed the connection after SSLRequest: {}", where_, reason));
  if (sending) return pg_local_error(fmt::format("cannot write to {}: {}", where_, reason));
  return pg_local_error(fmt::format("{} closed the connection during login: {}", where_, reason));
}

ConnectResult PgLogin::tls_failed(const std::string& reason) const {
  auto r = pg_local_error(fmt::format("TLS with {} failed: {}", where_, reason));
  r.tls_handshake_failed = true;
  return r;
}

LoginStep PgLogin::resume(std::string& in, std::string& out) {
  switch (state_) {
    case State::Start:
      if (tls_.on()) {  // SSLRequest; 'S' = TLS handshake next, 'N' = the server has no TLS
        pg::ssl_request(out);
        state_ = State::SslAnswer;
        return LoginStep::Send;
      }
      state_ = State::Startup;
      return resume(in, out);
    case State::SslAnswer: {
      if (in.empty()) return LoginStep::Receive;
      char answer = in[0];
      in.erase(0, 1);  // one byte only (receive_limit): what follows an 'S' is the TLS handshake's
      if (answer == 'S') return LoginStep::StartTls;  // tls_ready() continues with Startup
      if (answer != 'N') return fail(fmt::format("{} answered SSLRequest with an unexpected byte", where_), "08P01");
      if (tls_.required())
        return fail(fmt::format("{} does not accept TLS, and server_tls = \"{}\" requires it", where_,
                                config::to_string(tls_.mode)),
                    "08006");
      state_ = State::Startup;
      return resume(in, out);
    }
    case State::Startup:
      if (replication)
        pg::startup_message(out, {{"user", creds_->user},
                                  {"database", database_},
                                  {"replication", "database"},
                                  {"options", "-c DateStyle=ISO -c TimeZone=UTC"}});  // test_decoding's commit times
      else pg::startup_message(out, {{"user", creds_->user}, {"database", database_}});
      state_ = State::Auth;
      return LoginStep::Send;
    case State::Auth:
      break;
  }
  std::size_t pos = 0;
  LoginStep step = LoginStep::Receive;
  for (;;) {
    pg::Frame f;
    auto d = pg::next_frame(pg::as_bytes(in).subspan(pos), 1 << 20, f);
    if (d == pg::Decode::NeedMore) break;
    if (d == pg::Decode::Malformed)
      return fail(fmt::format("{} sent a malformed message during login", where_), "08P01");
    pos += f.size();
    bool done = false;
    step = on_message(f.type, f.body, out, done);
    if (done || step == LoginStep::Failed || step == LoginStep::Send) break;
    step = LoginStep::Receive;
  }
  in.erase(0, pos);
  return step;
}

LoginStep PgLogin::on_message(char type, pg::Bytes body, std::string& out, bool& done) {
  pg::Reader r(body);
  switch (type) {
    case pg::be::Authentication: {
      std::int32_t code = r.i32();
      if (code == 0) return LoginStep::Receive;
      if (code == 3) {
        if (creds_->plaintext.empty())
          return fail(fmt::format("{} asks for a cleartext password, but only a stored secret is configured for user "
                                  "\"{}\"",
                                  where_, creds_->user),
                      "28P01");
        pg::password_message(out, creds_->plaintext);
      } else if (code == 5) {
        auto salt = r.bytes(4);
        if (!r.ok()) return fail(fmt::format("{} sent a malformed md5 request", where_), "08P01");
        if (creds_->md5_secret.empty())
          return fail(fmt::format("{} asks for md5, but the config has no plaintext or md5 secret for user \"{}\"",
                                  where_, creds_->user),
                      "28P01");
        pg::password_message(out,
                             crypto::pg_md5_response(std::string_view(creds_->md5_secret).substr(3), pg::as_sv(salt)));
      } else if (code == 10) {
        bool offered = false;
        for (;;) {
          auto mech = r.cstr();
          if (!r.ok() || mech.empty()) break;
          if (mech == "SCRAM-SHA-256") offered = true;
        }
        if (!offered) return fail(fmt::format("{} offers no SASL mechanism Sluice supports", where_), "28000");
        if (!creds_->plaintext.empty()) {
          scram_ = pg::ScramClient::from_password(creds_->plaintext, scram_nonce_);
        } else if (auto key = creds_->client_key(); key && creds_->scram) {
          scram_ = pg::ScramClient::from_keys(*creds_->scram, *key, scram_nonce_);
        } else {
          return fail(fmt::format("cannot log in to {} with SCRAM yet: the config holds only a verifier for user "
                                  "\"{}\"; a client must authenticate with SCRAM first",
                                  where_, creds_->user),
                      "28P01");
        }
        pg::sasl_initial_response(out, "SCRAM-SHA-256", scram_->client_first());
      } else if (code == 11) {
        if (!scram_) return fail(fmt::format("{} sent SASLContinue out of order", where_), "08P01");
        std::string err;
        auto final_msg = scram_->server_first(pg::as_sv(r.rest()), err);
        if (!final_msg) return fail(fmt::format("SCRAM login to {} failed: {}", where_, err), "28P01");
        pg::sasl_response(out, *final_msg);
      } else if (code == 12) {
        std::string err;
        if (!scram_ || !scram_->server_final(pg::as_sv(r.rest()), err))
          return fail(fmt::format("SCRAM login to {} failed: {}", where_, err), "28P01");
        return LoginStep::Receive;
      } else {
        return fail(fmt::format("{} requested authentication method {}, which Sluice does not support", where_, code),
                    "28000");
      }
      return LoginStep::Send;
    }
    case pg::be::ErrorResponse:
      failure_ = ConnectResult{};
      failure_.error.from_server = true;
      pg::parse_error_fields(body, failure_.error.fields);
      return LoginStep::Failed;
    case pg::be::ParameterStatus: {
      std::string_view name, value;
      if (pg::parse_parameter_status(body, name, value)) params.set(name, value);
      return LoginStep::Receive;
    }
    case pg::be::BackendKeyData:
      backend_pid = static_cast<std::uint32_t>(r.i32());
      backend_key = static_cast<std::uint32_t>(r.i32());
      return LoginStep::Receive;
    case pg::be::ReadyForQuery:
      done = true;
      return LoginStep::Done;
    default:  // NoticeResponse, NegotiateProtocolVersion: nothing to do at login
      return LoginStep::Receive;
  }
}

}  // namespace sluice::pool
