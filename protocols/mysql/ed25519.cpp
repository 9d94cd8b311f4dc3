// client_ed25519 signatures (see header).
#include "protocols/mysql/ed25519.hpp"

#include <openssl/evp.h>
#include <sodium.h>

#include <array>
#include <cstdint>

namespace sluice::my {

namespace {

using Hash = std::array<unsigned char, 64>;

Hash sha512(std::string_view a, std::string_view b = {}, std::string_view c = {}) {
  Hash out{};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr);
  for (auto part : {a, b, c}) EVP_DigestUpdate(ctx, part.data(), part.size());
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, out.data(), &n);
  EVP_MD_CTX_free(ctx);
  return out;
}

std::string_view view(const unsigned char* p, std::size_t n) { return {reinterpret_cast<const char*>(p), n}; }

// SHA-512 of the password, clamped: the first half is the secret scalar, the second the
// nonce seed.
Hash secret(std::string_view password) {
  Hash az = sha512(password);
  az[0] &= 248;
  az[31] &= 63;
  az[31] |= 64;
  return az;
}

bool init() {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

}  // namespace

std::string ed25519_public_key(std::string_view password) {
  if (!init()) return {};
  Hash az = secret(password);
  unsigned char a[32];
  if (crypto_scalarmult_ed25519_base_noclamp(a, az.data()) != 0) return {};
  return std::string(view(a, 32));
}

std::string ed25519_sign(std::string_view password, std::string_view message) {
  if (!init()) return {};
  Hash az = secret(password);
  unsigned char pub[32], r[32], big_r[32], h[32], s[32];
  if (crypto_scalarmult_ed25519_base_noclamp(pub, az.data()) != 0) return {};
  Hash nonce = sha512(view(az.data() + 32, 32), message);
  crypto_core_ed25519_scalar_reduce(r, nonce.data());
  if (crypto_scalarmult_ed25519_base_noclamp(big_r, r) != 0) return {};
  Hash hram = sha512(view(big_r, 32), view(pub, 32), message);
  crypto_core_ed25519_scalar_reduce(h, hram.data());
  unsigned char a[32];
  std::copy(az.begin(), az.begin() + 32, a);
  crypto_core_ed25519_scalar_mul(s, h, a);  // h·a mod L
  crypto_core_ed25519_scalar_add(s, s, r);  // + r
  return std::string(view(big_r, 32)) + std::string(view(s, 32));
}

}  // namespace sluice::my
