// SCRAM-SHA-256 message handling; see RFC 5802 section 3 for the key derivations used below.
#include "protocols/postgres/scram.hpp"

#include "protocols/postgres/saslprep.hpp"

#include <charconv>

namespace sluice::pg {
namespace {

std::string make_nonce() { return crypto::base64_encode(crypto::random_bytes(18)); }

crypto::Digest32 xor32(const crypto::Digest32& a, const crypto::Digest32& b) {
  crypto::Digest32 r{};
  for (std::size_t i = 0; i < r.size(); ++i) r[i] = a[i] ^ b[i];
  return r;
}

// Finds attribute `key` ("r", "s", ...) in a comma-separated SCRAM message.
std::optional<std::string_view> attr(std::string_view msg, char key) {
  std::size_t pos = 0;
  while (pos <= msg.size()) {
    std::size_t end = msg.find(',', pos);
    if (end == std::string_view::npos) end = msg.size();
    std::string_view part = msg.substr(pos, end - pos);
    if (part.size() >= 2 && part[0] == key && part[1] == '=') return part.substr(2);
    pos = end + 1;
  }
  return std::nullopt;
}

bool decode_digest(std::string_view b64, crypto::Digest32& out) {
  auto raw = crypto::base64_decode(b64);
  if (!raw || raw->size() != out.size()) return false;
  std::copy(raw->begin(), raw->end(), out.begin());
  return true;
}

}  // namespace

std::optional<ScramSecret> parse_scram_secret(std::string_view text) {
  constexpr std::string_view prefix = "SCRAM-SHA-256$";
  if (text.substr(0, prefix.size()) != prefix) return std::nullopt;
  text.remove_prefix(prefix.size());
  auto colon = text.find(':'), dollar = text.find('$');
  if (colon == std::string_view::npos || dollar == std::string_view::npos || colon > dollar)
    return std::nullopt;
  ScramSecret s;
  auto iter_text = text.substr(0, colon);
  auto [p, ec] = std::from_chars(iter_text.data(), iter_text.data() + iter_text.size(), s.iterations);
  if (ec != std::errc() || p != iter_text.data() + iter_text.size() || s.iterations <= 0)
    return std::nullopt;
  auto salt = crypto::base64_decode(text.substr(colon + 1, dollar - colon - 1));
  if (!salt || salt->empty()) return std::nullopt;
  s.salt = *salt;
  auto keys = text.substr(dollar + 1);
  auto colon2 = keys.find(':');
  if (colon2 == std::string_view::npos) return std::nullopt;
  if (!decode_digest(keys.substr(0, colon2), s.stored_key) ||
      !decode_digest(keys.substr(colon2 + 1), s.server_key))
    return std::nullopt;
  return s;
}

ScramSecret make_scram_secret(std::string_view password, std::string_view salt, int iterations) {
  ScramSecret s;
  s.iterations = iterations;
  s.salt = std::string(salt);
  auto salted = crypto::pbkdf2_sha256(saslprep_password(password), salt, iterations);
  auto client_key = crypto::hmac_sha256(crypto::view(salted), "Client Key");
  s.stored_key = crypto::sha256(crypto::view(client_key));
  s.server_key = crypto::hmac_sha256(crypto::view(salted), "Server Key");
  return s;
}

std::string format_scram_secret(const ScramSecret& s) {
  return "SCRAM-SHA-256$" + std::to_string(s.iterations) + ":" + crypto::base64_encode(s.salt) +
         "$" + crypto::base64_encode(crypto::view(s.stored_key)) + ":" +
         crypto::base64_encode(crypto::view(s.server_key));
}

ScramServer::ScramServer(ScramSecret secret, std::string nonce, std::string channel_binding)
    : secret_(std::move(secret)),
      nonce_(nonce.empty() ? make_nonce() : std::move(nonce)),
      channel_binding_(std::move(channel_binding)) {}

std::optional<std::string> ScramServer::client_first(std::string_view msg, std::string& error) {
  // gs2-header: "n,," (client has no channel binding), "y,," (client could, server did not
  // offer), or "p=tls-server-end-point,," (SCRAM-SHA-256-PLUS). No authzid.
  std::size_t header_len = 0;
  if (msg.substr(0, 3) == "n,,") {
    header_len = 3;
  } else if (msg.substr(0, 3) == "y,,") {
    if (!channel_binding_.empty()) {
      error = "SCRAM channel binding downgrade: the client says the server offers no binding, but it does";
      return std::nullopt;
    }
    header_len = 3;
  } else if (msg.substr(0, 2) == "p=") {
    constexpr std::string_view kPlus = "p=tls-server-end-point,,";
    if (channel_binding_.empty() || msg.substr(0, kPlus.size()) != kPlus) {
      error = channel_binding_.empty() ? "channel binding is not supported on a connection without TLS"
                                       : "unsupported channel binding type (only tls-server-end-point)";
      return std::nullopt;
    }
    header_len = kPlus.size();
    bound_ = true;
  } else {
    error = "malformed SCRAM client-first-message";
    return std::nullopt;
  }
  gs2_header_ = std::string(msg.substr(0, header_len));
  client_first_bare_ = std::string(msg.substr(header_len));
  auto r = attr(client_first_bare_, 'r');
  if (!r || r->empty() || client_first_bare_.substr(0, 2) == "m=") {
    error = "malformed SCRAM client-first-message";
    return std::nullopt;
  }
  full_nonce_ = std::string(*r) + nonce_;
  server_first_ = "r=" + full_nonce_ + ",s=" + crypto::base64_encode(secret_.salt) +
                  ",i=" + std::to_string(secret_.iterations);
  return server_first_;
}

std::optional<std::string> ScramServer::client_final(std::string_view msg, std::string& error) {
  auto proof_pos = msg.rfind(",p=");
  auto c = attr(msg, 'c');
  auto r = attr(msg, 'r');
  if (proof_pos == std::string_view::npos || !c || !r) {
    error = "malformed SCRAM client-final-message";
    return std::nullopt;
  }
  // c= is base64(gs2-header [+ channel binding data]): it must repeat what client-first said.
  std::string expected = gs2_header_;
  if (bound_) expected += channel_binding_;
  if (*c != crypto::base64_encode(expected)) {
    error = "SCRAM channel binding check failed";
    return std::nullopt;
  }
  if (*r != full_nonce_) {
    error = "SCRAM nonce mismatch";
    return std::nullopt;
  }
  crypto::Digest32 proof{};
  if (!decode_digest(msg.substr(proof_pos + 3), proof)) {
    error = "malformed SCRAM proof";
    return std::nullopt;
  }
  std::string auth_message =
      client_first_bare_ + "," + server_first_ + "," + std::string(msg.substr(0, proof_pos));
  auto client_signature = crypto::hmac_sha256(crypto::view(secret_.stored_key), auth_message);
  client_key_ = xor32(proof, client_signature);
  auto stored = crypto::sha256(crypto::view(client_key_));
  if (!crypto::equal_constant_time(crypto::view(stored), crypto::view(secret_.stored_key))) {
    error = "password authentication failed";
    return std::nullopt;
  }
  auto server_signature = crypto::hmac_sha256(crypto::view(secret_.server_key), auth_message);
  return "v=" + crypto::base64_encode(crypto::view(server_signature));
}

ScramClient ScramClient::from_password(std::string password, std::string nonce) {
  ScramClient c;
  c.password_ = std::move(password);
  c.nonce_ = nonce.empty() ? make_nonce() : std::move(nonce);
  return c;
}

ScramClient ScramClient::from_keys(const ScramSecret& secret, const crypto::Digest32& client_key,
                                   std::string nonce) {
  ScramClient c;
  c.keys_ = secret;
  c.client_key_ = client_key;
  c.server_key_ = secret.server_key;
  c.nonce_ = nonce.empty() ? make_nonce() : std::move(nonce);
  return c;
}

std::string ScramClient::client_first() const { return "n,,n=,r=" + nonce_; }

std::optional<std::string> ScramClient::server_first(std::string_view msg, std::string& error) {
  auto r = attr(msg, 'r');
  auto s = attr(msg, 's');
  auto i = attr(msg, 'i');
  int iterations = 0;
  if (!r || !s || !i || std::from_chars(i->data(), i->data() + i->size(), iterations).ec != std::errc() ||
      iterations <= 0) {
    error = "malformed SCRAM server-first-message";
    return std::nullopt;
  }
  // PBKDF2 runs on the worker's thread (once per salt: the keys are kept). PostgreSQL's default
  // is 4096; a million rounds is about 0.3 s here, and more would stall every client of the worker.
  if (iterations > kMaxServerIterations) {
    error = "the server asks for " + std::to_string(iterations) + " SCRAM iterations; Sluice accepts at most " +
            std::to_string(kMaxServerIterations);
    return std::nullopt;
  }
  if (r->substr(0, nonce_.size()) != nonce_ || r->size() == nonce_.size()) {
    error = "SCRAM server nonce does not extend the client nonce";
    return std::nullopt;
  }
  auto salt = crypto::base64_decode(*s);
  if (!salt) {
    error = "malformed SCRAM salt";
    return std::nullopt;
  }
  if (keys_) {
    if (keys_->salt != *salt || keys_->iterations != iterations) {
      error = "the server's SCRAM verifier differs from the one in Sluice's configuration";
      return std::nullopt;
    }
  } else {
    auto salted = crypto::pbkdf2_sha256(saslprep_password(password_), *salt, iterations);
    client_key_ = crypto::hmac_sha256(crypto::view(salted), "Client Key");
    server_key_ = crypto::hmac_sha256(crypto::view(salted), "Server Key");
  }
  std::string without_proof = "c=biws,r=" + std::string(*r);
  auth_message_ = "n=,r=" + nonce_ + "," + std::string(msg) + "," + without_proof;
  auto stored = crypto::sha256(crypto::view(client_key_));
  auto signature = crypto::hmac_sha256(crypto::view(stored), auth_message_);
  auto proof = xor32(client_key_, signature);
  return without_proof + ",p=" + crypto::base64_encode(crypto::view(proof));
}

bool ScramClient::server_final(std::string_view msg, std::string& error) const {
  auto v = attr(msg, 'v');
  if (!v) {
    auto e = attr(msg, 'e');
    error = e ? "server rejected SCRAM authentication: " + std::string(*e)
              : "malformed SCRAM server-final-message";
    return false;
  }
  auto expected = crypto::hmac_sha256(crypto::view(server_key_), auth_message_);
  if (crypto::base64_encode(crypto::view(expected)) != *v) {
    error = "server's SCRAM signature is invalid";
    return false;
  }
  return true;
}

}  // namespace sluice::pg
