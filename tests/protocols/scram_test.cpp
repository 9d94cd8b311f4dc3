// SCRAM-SHA-256 against the RFC 7677 section 3 example, both sides, and verifier round trips.
#include <doctest/doctest.h>

#include "protocols/common/crypto.hpp"
#include "protocols/postgres/scram.hpp"
#include "protocols/postgres/saslprep.hpp"

using namespace sluice;

namespace {
// RFC 7677 section 3: user "user", password "pencil".
constexpr const char* kClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr const char* kServerNonceSuffix = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr const char* kServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr const char* kClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr const char* kServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

pg::ScramSecret rfc_secret() {
  auto salt = crypto::base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==");
  REQUIRE(salt);
  return pg::make_scram_secret("pencil", *salt, 4096);
}
}  // namespace

TEST_CASE("RFC 7677 example: server side") {
  pg::ScramServer server(rfc_secret(), kServerNonceSuffix);
  std::string err;
  auto first = server.client_first(std::string("n,,n=user,r=") + kClientNonce, err);
  REQUIRE(first);
  CHECK(*first == kServerFirst);
  auto fin = server.client_final(kClientFinal, err);
  REQUIRE(fin);
  CHECK(*fin == kServerFinal);
}

TEST_CASE("RFC 7677 example: wrong proof is refused") {
  pg::ScramServer server(pg::make_scram_secret("not pencil", *crypto::base64_decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096),
                         kServerNonceSuffix);
  std::string err;
  REQUIRE(server.client_first(std::string("n,,n=user,r=") + kClientNonce, err));
  CHECK_FALSE(server.client_final(kClientFinal, err));
  CHECK(err == "password authentication failed");
}

TEST_CASE("RFC 7677 example: client side (PostgreSQL sends an empty user name)") {
  auto client = pg::ScramClient::from_password("pencil", kClientNonce);
  CHECK(client.client_first() == std::string("n,,n=,r=") + kClientNonce);
  std::string err;
  auto fin = client.server_first(kServerFirst, err);
  REQUIRE(fin);
  // The proof differs from the RFC's because client-first-message-bare has "n=" not "n=user".
  pg::ScramServer server(rfc_secret(), kServerNonceSuffix);
  REQUIRE(server.client_first(client.client_first(), err));
  auto server_final = server.client_final(*fin, err);
  REQUIRE(server_final);
  CHECK(client.server_final(*server_final, err));
  CHECK_FALSE(client.server_final("v=AAAA", err));
}

TEST_CASE("client keys recovered by the server log in to another server with the same verifier") {
  auto secret = pg::make_scram_secret("s3cret", "0123456789abcdef", 4096);
  pg::ScramServer front(secret);
  auto client = pg::ScramClient::from_password("s3cret");
  std::string err;
  auto sf = front.client_first(client.client_first(), err);
  REQUIRE(sf);
  auto cf = client.server_first(*sf, err);
  REQUIRE(cf);
  REQUIRE(front.client_final(*cf, err));
  // Now act as a client towards a "server" holding the same verifier, using only the keys.
  auto proxy = pg::ScramClient::from_keys(secret, front.client_key());
  pg::ScramServer back(secret);
  auto sf2 = back.client_first(proxy.client_first(), err);
  REQUIRE(sf2);
  auto cf2 = proxy.server_first(*sf2, err);
  REQUIRE(cf2);
  auto fin = back.client_final(*cf2, err);
  REQUIRE(fin);
  CHECK(proxy.server_final(*fin, err));
}

TEST_CASE("stored verifiers parse and format") {
  auto secret = rfc_secret();
  auto text = pg::format_scram_secret(secret);
  CHECK(text.rfind("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$", 0) == 0);
  auto back = pg::parse_scram_secret(text);
  REQUIRE(back);
  CHECK(back->iterations == 4096);
  CHECK(back->stored_key == secret.stored_key);
  CHECK(back->server_key == secret.server_key);
  CHECK_FALSE(pg::parse_scram_secret("SCRAM-SHA-256$x:abc$def:ghi"));
  CHECK_FALSE(pg::parse_scram_secret("md5abc"));
  CHECK_FALSE(pg::parse_scram_secret("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:BBBB"));
}

TEST_CASE("malformed SCRAM messages are refused") {
  pg::ScramServer server(rfc_secret());
  std::string err;
  CHECK_FALSE(server.client_first("p=tls-server-end-point,,n=,r=abc", err));
  CHECK_FALSE(server.client_first("n,,n=,", err));
  CHECK_FALSE(server.client_first("", err));
  pg::ScramServer s2(rfc_secret());
  REQUIRE(s2.client_first("n,,n=,r=abc", err));
  CHECK_FALSE(s2.client_final("c=biws,r=wrongnonce,p=AAAA", err));
}

TEST_CASE("md5 password scheme") {
  // md5("pencil" + "user") = known value computed by PostgreSQL's scheme.
  CHECK(crypto::pg_md5_secret("md5pass", "md5user") == "md5" + crypto::md5_hex("md5passmd5user"));
  CHECK(crypto::md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(crypto::base64_encode("any carnal pleas") == "YW55IGNhcm5hbCBwbGVhcw==");
  CHECK(*crypto::base64_decode("YW55IGNhcm5hbCBwbGVhcw==") == "any carnal pleas");
  CHECK_FALSE(crypto::base64_decode("abc"));
}

namespace {
// A client-final-message for `c_attr` (base64 channel binding attribute), computed from the
// password as a client would.
std::string client_final_with(const std::string& password, const pg::ScramSecret& secret, const std::string& first_bare,
                              const std::string& server_first, const std::string& c_attr) {
  auto salted = crypto::pbkdf2_sha256(password, secret.salt, secret.iterations);
  auto client_key = crypto::hmac_sha256(crypto::view(salted), "Client Key");
  auto stored = crypto::sha256(crypto::view(client_key));
  auto r = server_first.substr(2, server_first.find(',') - 2);
  std::string without_proof = "c=" + c_attr + ",r=" + r;
  auto sig = crypto::hmac_sha256(crypto::view(stored), first_bare + "," + server_first + "," + without_proof);
  std::string proof(32, '\0');
  for (int i = 0; i < 32; ++i) proof[static_cast<std::size_t>(i)] = static_cast<char>(client_key[static_cast<std::size_t>(i)] ^ sig[static_cast<std::size_t>(i)]);
  return without_proof + ",p=" + crypto::base64_encode(proof);
}
}  // namespace

TEST_CASE("SCRAM-SHA-256-PLUS: tls-server-end-point binding checked; downgrade and mismatch refused") {
  auto secret = pg::make_scram_secret("pw", "0123456789abcdef", 4096);
  const std::string cb = std::string("\x01\x02\x03\xff", 4) + std::string(28, 'h');  // a certificate hash
  std::string err;
  {
    pg::ScramServer server(secret, "", cb);
    auto sf = server.client_first("p=tls-server-end-point,,n=,r=abc", err);
    REQUIRE(sf);
    CHECK(server.bound());
    auto fin = client_final_with("pw", secret, "n=,r=abc", *sf, crypto::base64_encode("p=tls-server-end-point,," + cb));
    CHECK(server.client_final(fin, err));
  }
  {  // the client bound to a different certificate (a man in the middle's)
    pg::ScramServer server(secret, "", cb);
    auto sf = server.client_first("p=tls-server-end-point,,n=,r=abc", err);
    REQUIRE(sf);
    auto fin = client_final_with("pw", secret, "n=,r=abc", *sf, crypto::base64_encode("p=tls-server-end-point,," + std::string(32, 'x')));
    CHECK_FALSE(server.client_final(fin, err));
    CHECK(err == "SCRAM channel binding check failed");
  }
  {  // "y": the client could bind but believes the server cannot: a downgrade, refused
    pg::ScramServer server(secret, "", cb);
    CHECK_FALSE(server.client_first("y,,n=,r=abc", err));
    CHECK(err.find("downgrade") != std::string::npos);
  }
  {  // "n" over TLS: a client without binding support is still served
    pg::ScramServer server(secret, "", cb);
    auto sf = server.client_first("n,,n=,r=abc", err);
    REQUIRE(sf);
    CHECK_FALSE(server.bound());
    CHECK(server.client_final(client_final_with("pw", secret, "n=,r=abc", *sf, "biws"), err));
  }
  {  // no TLS: PLUS refused, other binding types refused
    pg::ScramServer server(secret);
    CHECK_FALSE(server.client_first("p=tls-server-end-point,,n=,r=abc", err));
    pg::ScramServer server2(secret, "", cb);
    CHECK_FALSE(server2.client_first("p=tls-unique,,n=,r=abc", err));
  }
}

TEST_CASE("SASLprep of passwords: the RFC 4013 section 3 examples, with PostgreSQL's fallbacks") {
  CHECK(pg::saslprep_password("I\xC2\xAD" "X") == "IX");      // SOFT HYPHEN mapped to nothing
  CHECK(pg::saslprep_password("user") == "user");             // ASCII as is
  CHECK(pg::saslprep_password("USER") == "USER");             // no case folding
  CHECK(pg::saslprep_password("\xC2\xAA") == "a");            // FEMININE ORDINAL INDICATOR, NFKC
  CHECK(pg::saslprep_password("\xE2\x85\xA8") == "IX");       // ROMAN NUMERAL NINE, NFKC
  CHECK(pg::saslprep_password("a\xC2\xA0" "b") == "a b");     // non-ASCII space mapped to SPACE
  // Prohibited (a control character, with a non-ASCII one so that prep runs) or an invalid
  // bidirectional string: PostgreSQL uses the raw bytes, and so must the keys here.
  CHECK(pg::saslprep_password("\xC3\xA9\x07") == "\xC3\xA9\x07");
  CHECK(pg::saslprep_password("\xD8\xA7" "1") == "\xD8\xA7" "1");
  CHECK(pg::saslprep_password("\xFF\xFE") == "\xFF\xFE");     // not UTF-8
  // ASCII with a control character: PostgreSQL skips prep for pure ASCII.
  CHECK(pg::saslprep_password("a\x07") == "a\x07");
}

TEST_CASE("a SCRAM secret from a password needing SASLprep equals the one from its prepared form") {
  auto a = pg::make_scram_secret("\xE2\x85\xA8", "saltsalt", 4096);
  auto b = pg::make_scram_secret("IX", "saltsalt", 4096);
  CHECK(pg::format_scram_secret(a) == pg::format_scram_secret(b));
}
