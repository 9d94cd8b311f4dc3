// MariaDB client_ed25519: public keys as MariaDB stores them for a password, and
// signatures that standard Ed25519 verification (OpenSSL) accepts under that key.
#include <doctest/doctest.h>
#include <openssl/evp.h>

#include <string>

#include "protocols/mysql/ed25519.hpp"

namespace {

std::string base64_unpadded(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  return out;
}

bool verifies(const std::string& pub, const std::string& message, const std::string& sig) {
  EVP_PKEY* key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                              reinterpret_cast<const unsigned char*>(pub.data()), pub.size());
  if (!key) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return ok;
}

}  // namespace

TEST_CASE("client_ed25519: MariaDB's published public keys, and signatures that verify") {
  // As MariaDB 10.11 stores them (`CREATE USER ... IDENTIFIED VIA ed25519 USING PASSWORD('foo')`,
  // then mysql.global_priv's authentication_string).
  CHECK(base64_unpadded(sluice::my::ed25519_public_key("foo")) == "vubFBzIrapbfHct1/J72dnUryz5VS7lA6XHH8sIx4TI");
  CHECK(base64_unpadded(sluice::my::ed25519_public_key("foobar")) == "qv2mG6HWCuy32Slb5xhV4THStewNz2VINVPbgk+XAJ8");
  CHECK(base64_unpadded(sluice::my::ed25519_public_key("foo bar")) == "Y5fV74JAVRMOK2cdnUsYS+WW9sXaaL/o+6WGKOgqnzc");

  std::string scramble(32, '\0');
  for (int i = 0; i < 32; ++i) scramble[i] = static_cast<char>(i * 7 + 3);
  std::string sig = sluice::my::ed25519_sign("foo", scramble);
  REQUIRE(sig.size() == 64);
  CHECK(verifies(sluice::my::ed25519_public_key("foo"), scramble, sig));
  CHECK_FALSE(verifies(sluice::my::ed25519_public_key("foobar"), scramble, sig));
  std::string other = scramble;
  other[0] ^= 1;
  CHECK_FALSE(verifies(sluice::my::ed25519_public_key("foo"), other, sig));
  CHECK(sluice::my::ed25519_sign("foo", scramble) == sig);  // deterministic, as Ed25519 is
}
