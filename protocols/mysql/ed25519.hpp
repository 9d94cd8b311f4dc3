// MariaDB's client_ed25519 authentication: the password itself is the Ed25519 secret (its
// SHA-512, clamped, is the signing scalar; the second half seeds the nonce), and the client
// answers the server's 32-byte scramble with the 64-byte signature R || S. Not RFC 8032 key
// generation (which hashes a 32-byte seed), so the signing arithmetic comes from libsodium's
// low-level Ed25519 primitives. The public key is what MariaDB's ed25519_password() returns.
#pragma once

#include <string>
#include <string_view>

namespace sluice::my {

// The 64-byte signature of `message` (the scramble) under `password`.
std::string ed25519_sign(std::string_view password, std::string_view message);
// The 32-byte public key of `password`.
std::string ed25519_public_key(std::string_view password);

}  // namespace sluice::my
