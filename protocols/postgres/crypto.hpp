// Small OpenSSL wrappers used by the authentication mechanisms of both protocols.
#pragma once

#include <array>
#include <cstdint>
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

inline std::string_view view(const Digest32& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

// PostgreSQL md5 scheme (docs 55.3.2): stored secret is "md5" + md5hex(password + user); the
// client answers "md5" + md5hex(md5hex(password + user) + 4-byte salt).
std::string pg_md5_secret(std::string_view password, std::string_view user);
std::string pg_md5_response(std::string_view secret_hex_without_prefix, std::string_view salt4);

}  // namespace sluice::crypto
