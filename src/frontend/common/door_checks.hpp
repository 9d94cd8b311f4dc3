// The front door's checks the same on both protocols, each logged when it refuses, with the
// words the client gets (each protocol frames them): the [[access]] decision at login
// (PostgreSQL 28000, MySQL 1130) and the query firewall's for a statement the session has lexed
// (PostgreSQL 42501, MySQL 1142).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "src/access/firewall.hpp"
#include "src/sql/lexer.hpp"
#include "src/state/context.hpp"

namespace sluice::frontend {

struct AccessOutcome {
  bool allow = true;
  std::optional<config::AuthMethod> method;  // allowed: the auth method the rule names, if any
  std::string refusal;                       // refused: what the client is told
};

// [[access]] for a client logging in (or changing user) as `user` to `database`.
AccessOutcome access_check(const state::Snapshot& snap, config::Protocol protocol, const observe::ClientInfo& info,
                           std::string_view user, std::string_view database, bool tls);

struct FirewallDenial {
  std::string message;  // for the client
  std::string fingerprint;
};

// None when the statement may go; otherwise why not (counted, logged at info level).
std::optional<FirewallDenial> firewall_check(state::Context& ctx, const state::Snapshot& snap,
                                             config::Protocol protocol, std::uint64_t client_id, std::string_view user,
                                             std::string_view database, std::string_view address,
                                             const sql::Lexed& lexed);

}  // namespace sluice::frontend
