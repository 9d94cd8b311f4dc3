// A MySQL client's proof of its password (frontend/mysql/client_auth), packet by packet: the
// plugin Sluice insists on, the auth switch, native scrambles, caching_sha2_password's fast and
// full paths (RSA key on request, or the password over TLS), users with only a stored hash or no
// password, and one more lookup for a learned user whose password changed.
#include <doctest/doctest.h>

#include "protocols/common/crypto.hpp"
#include "protocols/mysql/codec.hpp"
#include "protocols/mysql/ed25519.hpp"
#include "src/frontend/mysql/client_auth.hpp"
#include "src/pool/credentials.hpp"

using namespace sluice;
using sluice::frontend::mysql::ClientAuth;
using Kind = ClientAuth::Step::Kind;

namespace {

const std::string kNonce = "0123456789abcdefghij";

std::shared_ptr<const pool::Credentials> user(const std::string& password) {
  config::User u;
  u.name = "app";
  u.password = password;
  return pool::make_credentials(u, "t.toml");
}

const crypto::RsaKey& rsa() {
  static auto key = crypto::RsaKey::generate();
  return *key;
}

ClientAuth make(std::shared_ptr<const pool::Credentials> creds, const std::string& plugin, bool tls = false,
                bool learned = false) {
  return ClientAuth(std::move(creds), plugin, kNonce, true, tls, rsa(), learned);
}

std::string switch_to(const std::string& plugin) {
  std::string p;
  my::build_auth_switch(p, plugin, kNonce + std::string(1, '\0'));
  return p;
}

}  // namespace

TEST_CASE("mysql_native_password: the scramble for the nonce, or a refusal that says a password was used") {
  auto a = make(user("secret"), "mysql_native_password");
  CHECK(a.start("mysql_native_password", my::native_scramble("secret", kNonce)).kind == Kind::Accepted);
  auto b = make(user("secret"), "mysql_native_password");
  CHECK(b.start("mysql_native_password", my::native_scramble("wrong", kNonce)).kind == Kind::Denied);
  CHECK(b.with_password());
  auto c = make(user("secret"), "mysql_native_password");
  CHECK(c.start("mysql_native_password", "").kind == Kind::Denied);
  CHECK_FALSE(c.with_password());
}

TEST_CASE("a client that began with another plugin gets an AuthSwitchRequest with the same nonce") {
  auto a = make(user("secret"), "mysql_native_password");
  auto s = a.start("caching_sha2_password", my::sha2_scramble("secret", kNonce));
  REQUIRE(s.kind == Kind::Ask);
  CHECK(s.packet == switch_to("mysql_native_password"));
  CHECK(s.packet[0] == '\xfe');
  CHECK(a.resume(my::native_scramble("secret", kNonce)).kind == Kind::Accepted);
  // An old client without a plugin name but with SECURE_CONNECTION speaks native.
  auto b = make(user("secret"), "mysql_native_password");
  CHECK(b.start("", my::native_scramble("secret", kNonce)).kind == Kind::Accepted);
}

TEST_CASE("a user with only a stored hash is always checked with mysql_native_password") {
  auto stored = user(my::native_stored_hash("secret"));
  auto a = make(stored, "caching_sha2_password");
  auto s = a.start("caching_sha2_password", my::sha2_scramble("secret", kNonce));
  REQUIRE(s.kind == Kind::Ask);
  CHECK(s.packet == switch_to("mysql_native_password"));
  CHECK(a.resume(my::native_scramble("secret", kNonce)).kind == Kind::Accepted);
  REQUIRE(stored->mysql_stage1());  // SHA1(password) learned from the proof: Sluice can log in with it
}

TEST_CASE("caching_sha2_password: full authentication with the RSA key on request, then the fast path") {
  auto creds = user("secret");
  auto a = make(creds, "caching_sha2_password");
  auto s = a.start("caching_sha2_password", my::sha2_scramble("secret", kNonce));
  REQUIRE(s.kind == Kind::Ask);
  CHECK(s.packet == std::string("\x01\x04", 2));  // perform full authentication
  s = a.resume(std::string("\x02", 1));           // the public key, please
  REQUIRE(s.kind == Kind::Ask);
  CHECK(s.packet == "\x01" + rsa().public_pem());
  auto encrypted = crypto::rsa_encrypt_oaep(rsa().public_pem(), my::xor_with_nonce(std::string("secret\0", 7), kNonce));
  REQUIRE(encrypted);
  CHECK(a.resume(*encrypted).kind == Kind::Accepted);

  // Cached now: the next login takes the fast path, and a wrong scramble is refused there.
  auto b = make(creds, "caching_sha2_password");
  s = b.start("caching_sha2_password", my::sha2_scramble("secret", kNonce));
  CHECK(s.kind == Kind::Accepted);
  CHECK(s.packet == std::string("\x01\x03", 2));
  auto c = make(creds, "caching_sha2_password");
  CHECK(c.start("caching_sha2_password", my::sha2_scramble("wrong", kNonce)).kind == Kind::Denied);
}

TEST_CASE("caching_sha2_password full path: the password itself over TLS, never over plain TCP") {
  auto a = make(user("secret"), "caching_sha2_password", /*tls=*/true);
  CHECK(a.start("caching_sha2_password", my::sha2_scramble("secret", kNonce)).kind == Kind::Ask);
  CHECK(a.resume(std::string("secret\0", 7)).kind == Kind::Accepted);

  auto b = make(user("secret"), "caching_sha2_password", /*tls=*/false);
  CHECK(b.start("caching_sha2_password", my::sha2_scramble("secret", kNonce)).kind == Kind::Ask);
  CHECK(b.resume(std::string("secret\0", 7)).kind == Kind::Denied);

  auto c = make(user("secret"), "caching_sha2_password", true);
  c.start("caching_sha2_password", my::sha2_scramble("secret", kNonce));
  CHECK(c.resume(std::string("wrong\0", 6)).kind == Kind::Denied);
  auto d = make(user("secret"), "caching_sha2_password", true);
  d.start("caching_sha2_password", my::sha2_scramble("secret", kNonce));
  CHECK(d.resume("secret").kind == Kind::Denied);  // not NUL-terminated
}

TEST_CASE("a user without a password: an empty response only") {
  auto a = make(user(""), "mysql_native_password");
  CHECK(a.start("mysql_native_password", "").kind == Kind::Accepted);
  auto b = make(user(""), "mysql_native_password");
  CHECK(b.start("mysql_native_password", my::native_scramble("x", kNonce)).kind == Kind::Denied);
}

TEST_CASE("a learned user whose scramble fails is looked up once more (the password may have changed)") {
  auto old_creds = user(my::native_stored_hash("old"));
  auto a = make(old_creds, "mysql_native_password", false, /*learned=*/true);
  auto s = a.start("mysql_native_password", my::native_scramble("new", kNonce));
  REQUIRE(s.kind == Kind::Relookup);
  auto fresh = user(my::native_stored_hash("new"));
  CHECK(a.relooked(fresh).kind == Kind::Accepted);
  CHECK(a.credentials() == fresh);

  auto b = make(old_creds, "mysql_native_password", false, true);
  REQUIRE(b.start("mysql_native_password", my::native_scramble("new", kNonce)).kind == Kind::Relookup);
  CHECK(b.relooked(nullptr).kind == Kind::Denied);  // the server no longer knows the user
  auto c = make(old_creds, "mysql_native_password", false, true);
  REQUIRE(c.start("mysql_native_password", my::native_scramble("new", kNonce)).kind == Kind::Relookup);
  CHECK(c.relooked(old_creds).kind == Kind::Denied);  // unchanged: no second chance
  // Configured users, and empty responses, are not looked up again.
  auto d = make(old_creds, "mysql_native_password", false, false);
  CHECK(d.start("mysql_native_password", my::native_scramble("new", kNonce)).kind == Kind::Denied);
  auto e = make(old_creds, "mysql_native_password", false, true);
  CHECK(e.start("mysql_native_password", "").kind == Kind::Denied);
}

TEST_CASE("a learned ed25519 account: switched to caching_sha2_password's full path, checked against its key") {
  auto learned_ed = [] {
    auto c = std::make_shared<pool::Credentials>();
    c->user = "ed";
    c->ed25519_public = my::ed25519_public_key("ed pw");
    return std::shared_ptr<const pool::Credentials>(c);
  };
  auto creds = learned_ed();
  auto a = make(creds, "mysql_native_password", /*tls=*/true, /*learned=*/true);
  auto s = a.start("mysql_native_password", my::native_scramble("ed pw", kNonce));
  REQUIRE(s.kind == Kind::Ask);
  CHECK(s.packet == switch_to("caching_sha2_password"));
  s = a.resume(my::sha2_scramble("ed pw", kNonce));
  REQUIRE(s.kind == Kind::Ask);
  CHECK(s.packet == std::string("\x01\x04", 2));  // full authentication, every time
  s = a.resume(std::string("ed pw\0", 6));
  CHECK(s.kind == Kind::Accepted);
  CHECK(creds->password() == "ed pw");  // kept: Sluice signs its server logins with it

  auto wrong = learned_ed();
  auto b = make(wrong, "caching_sha2_password", true, true);
  REQUIRE(b.start("caching_sha2_password", my::sha2_scramble("nope", kNonce)).kind == Kind::Ask);
  CHECK(b.resume(std::string("nope\0", 5)).kind == Kind::Denied);
  CHECK(wrong->password().empty());
}
