// Small OpenSSL wrappers used by the authentication mechanisms of both protocols.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::crypto {

using Digest32 = std::array<std::uint8_t, 32>;

Digest32 sha256(std::string_view data);
Digest32 hmac_sha256(std::string_view key, std::string_view data);
Digest32 pbkdf2_sha256(std::string_view password, std::string_view salt, int iterations);
std::string md5_hex(std::string_view data);
std::string base64_encode(std::string_view data);
std::optional<std::string> base64_decode(std::string_view text);
std::string random_bytes(std::size_t n);
bool equal_constant_time(std::string_view a, std::string_view b);
std::string sha1_raw(std::string_view data);    // 20 bytes
std::string sha256_raw(std::string_view data);  // 32 bytes
std::string hex_upper(std::string_view raw);
std::optional<std::string> hex_decode(std::string_view hex);

// An RSA key pair (2048 bits) for caching_sha2_password's full authentication without TLS.
class RsaKey {
 public:
  static std::shared_ptr<const RsaKey> generate();  // throws std::runtime_error
  ~RsaKey();
  RsaKey(const RsaKey&) = delete;
  RsaKey& operator=(const RsaKey&) = delete;
  const std::string& public_pem() const { return public_pem_; }
  // RSA-OAEP (SHA-1) decryption, as MySQL clients encrypt; nullopt on failure.
  std::optional<std::string> decrypt_oaep(std::string_view cipher) const;

 private:
  RsaKey() = default;
  void* pkey_ = nullptr;  // EVP_PKEY*
  std::string public_pem_;
};
// RSA-OAEP (SHA-1) encryption with a PEM public key (what a server sends on request).
std::optional<std::string> rsa_encrypt_oaep(std::string_view public_pem, std::string_view plain);

inline std::string_view view(const Digest32& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

// PostgreSQL md5 scheme (docs 55.3.2): stored secret is "md5" + md5hex(password + user); the
// client answers "md5" + md5hex(md5hex(password + user) + 4-byte salt).
std::string pg_md5_secret(std::string_view password, std::string_view user);
std::string pg_md5_response(std::string_view secret_hex_without_prefix, std::string_view salt4);

}  // namespace sluice::crypto
