// Client authentication state machine, driven by a real SCRAM client and md5 answers.
#include <doctest/doctest.h>

#include "protocols/common/crypto.hpp"
#include "src/frontend/postgres/auth.hpp"

using namespace sluice;
using frontend::pg::ClientAuth;
namespace wire = sluice::pg;

namespace {
std::shared_ptr<const pool::Credentials> creds(const std::string& pw, config::AuthMethod m) {
  config::User u;
  u.name = "app";
  u.password = pw;
  u.auth = m;
  return pool::make_credentials(u, "t.toml");
}
wire::Frame frame_of(const std::string& m) {
  wire::Frame f;
  REQUIRE(wire::next_frame(wire::as_bytes(m), 1 << 20, f) == wire::Decode::Ok);
  return f;
}
// Body after the 4-byte auth code of an 'R' message.
std::string auth_data(const std::string& m) { return m.substr(9); }
}  // namespace

TEST_CASE("SCRAM: right password succeeds, recovered ClientKey is remembered") {
  for (std::string stored : {std::string("pw"), wire::format_scram_secret(wire::make_scram_secret("pw", "saltsaltsalt", 4096))}) {
    auto c = creds(stored, config::AuthMethod::ScramSha256);
    ClientAuth auth(*c);
    std::string out;
    REQUIRE(auth.start(out) == ClientAuth::Step::Send);
    auto client = wire::ScramClient::from_password("pw");
    std::string msg;
    wire::sasl_initial_response(msg, "SCRAM-SHA-256", client.client_first());
    out.clear();
    REQUIRE(auth.on_password_message(frame_of(msg).body, out) == ClientAuth::Step::Send);
    std::string err;
    auto fin = client.server_first(auth_data(out), err);
    REQUIRE(fin);
    msg.clear();
    wire::sasl_response(msg, *fin);
    out.clear();
    REQUIRE(auth.on_password_message(frame_of(msg).body, out) == ClientAuth::Step::Done);
    CHECK(out.substr(out.size() - 9) == std::string("R\0\0\0\x08\0\0\0\0", 9));  // AuthenticationOk last
    CHECK(c->client_key().has_value());
  }
}

TEST_CASE("SCRAM: wrong password fails") {
  auto c = creds("pw", config::AuthMethod::ScramSha256);
  ClientAuth auth(*c);
  std::string out;
  auth.start(out);
  auto client = wire::ScramClient::from_password("nope");
  std::string msg;
  wire::sasl_initial_response(msg, "SCRAM-SHA-256", client.client_first());
  out.clear();
  auth.on_password_message(frame_of(msg).body, out);
  std::string err;
  auto fin = client.server_first(auth_data(out), err);
  msg.clear();
  wire::sasl_response(msg, *fin);
  CHECK(auth.on_password_message(frame_of(msg).body, out) == ClientAuth::Step::Failed);
}

TEST_CASE("md5 and cleartext") {
  auto c = creds("pw", config::AuthMethod::Md5);
  ClientAuth auth(*c);
  std::string out;
  REQUIRE(auth.start(out) == ClientAuth::Step::Send);
  std::string salt = out.substr(9, 4);
  std::string msg;
  wire::password_message(msg, crypto::pg_md5_response(crypto::pg_md5_secret("pw", "app").substr(3), salt));
  CHECK(auth.on_password_message(frame_of(msg).body, out) == ClientAuth::Step::Done);

  ClientAuth bad(*c);
  out.clear();
  bad.start(out);
  msg.clear();
  wire::password_message(msg, "md5" + std::string(32, '0'));
  CHECK(bad.on_password_message(frame_of(msg).body, out) == ClientAuth::Step::Failed);

  auto p = creds(wire::format_scram_secret(wire::make_scram_secret("pw", "saltsalt", 4096)), config::AuthMethod::Password);
  ClientAuth clear(*p);
  out.clear();
  REQUIRE(clear.start(out) == ClientAuth::Step::Send);
  msg.clear();
  wire::password_message(msg, "pw");
  CHECK(clear.on_password_message(frame_of(msg).body, out) == ClientAuth::Step::Done);

  auto t = creds("", config::AuthMethod::Trust);
  ClientAuth trust(*t);
  out.clear();
  CHECK(trust.start(out) == ClientAuth::Step::Done);
}
