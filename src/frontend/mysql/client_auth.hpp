// Checking a MySQL client's proof of its password, as a sans-io algorithm: the plugin to use
// (the configured default; mysql_native_password for a user with only a stored hash), an
// AuthSwitchRequest when the client began with another, mysql_native_password's scramble,
// caching_sha2_password's fast path (once the password is cached) and full path (the password
// over TLS, or RSA-encrypted with Sluice's key, sent on request), and, for a user learned from
// the server ([mysql] auth_user) whose scramble fails, one more lookup in case the password
// changed. The session does the I/O (handshake.cpp); unit-tested packet by packet.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "protocols/common/crypto.hpp"
#include "src/pool/credentials.hpp"

namespace sluice::frontend::mysql {

class ClientAuth {
 public:
  struct Step {
    enum Kind {
      Ask,       // send `packet` to the client, then resume() with its next packet
      Accepted,  // the proof holds: send `packet` first when there is one
      Denied,    // refuse (with_password() for the message)
      Relookup,  // fetch the learned user's credentials again, then relooked()
    } kind;
    std::string packet;
  };

  // `nonce`: the 20 bytes of the greeting; `tls`: the client connection is encrypted; `learned`:
  // the credentials came from the server.
  ClientAuth(std::shared_ptr<const pool::Credentials> creds, std::string default_plugin, std::string nonce,
             bool secure_connection, bool tls, const crypto::RsaKey& rsa, bool learned);

  // The plugin and auth response of the client's HandshakeResponse.
  Step start(std::string client_plugin, std::string response);
  // The client's next packet, after Ask.
  Step resume(std::string_view payload);
  // After Relookup: the credentials fetched again (null: none).
  Step relooked(std::shared_ptr<const pool::Credentials> fresh);

  // The credentials the proof was checked against (a relookup may have replaced them).
  const std::shared_ptr<const pool::Credentials>& credentials() const { return creds_; }
  // The client sent a password (for "using password: YES" in a refusal).
  bool with_password() const { return !response_.empty(); }

 private:
  enum class State { Switching, Sha2Full, Done };
  Step verify();
  Step sha2_full(std::string_view data);
  Step denied_or_relookup();

  std::shared_ptr<const pool::Credentials> creds_;
  std::string plugin_, nonce_;
  bool secure_connection_, tls_;
  const crypto::RsaKey& rsa_;
  bool learned_;
  State state_ = State::Done;
  std::string response_;
};

}  // namespace sluice::frontend::mysql
