// TLS contexts (Asio's SSL layer over OpenSSL) for client-facing listeners.
#pragma once

#include <boost/asio/ssl.hpp>

#include <memory>
#include <optional>
#include <string>

#include "src/config/config.hpp"

namespace sluice::net {

// Builds a server-side context from a listener's [section] tls keys: certificate chain, key
// (checked against the certificate), minimum version, TLS 1.2 cipher list, and the CA that
// verifies client certificates when given. Throws config::ConfigError naming the key.
// Returns null when tls = "disable".
std::shared_ptr<boost::asio::ssl::context> make_server_tls(const config::ListenerTls& tls, const std::string& section);

// The common name of the client's certificate when it sent one and it verified against tls_ca.
std::optional<std::string> verified_peer_cn(SSL* ssl);

// The client-certificate rule of a login: the listener's tls_client_cert and `auth = "cert"`.
// `ssl` is null for a plaintext connection. `cn` is set to the certificate's name when there is one.
enum class CertVerdict { Ok, Missing, WrongUser };
CertVerdict check_client_cert(SSL* ssl, config::ClientCert mode, bool cert_user, const std::string& user,
                              std::optional<std::string>& cn);

// tls-server-end-point channel binding data (RFC 5929): the hash of the server certificate's
// DER encoding, with SHA-256 for MD5/SHA-1 signed certificates.
std::string server_end_point(boost::asio::ssl::context& ctx);

}  // namespace sluice::net
