// The query firewall's step for a client statement, the same on both protocols: the decision
// (src/access/firewall.hpp) for a text the session has lexed, logged when it denies, and the
// words the client gets (each protocol frames them: PostgreSQL 42501, MySQL 1142).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "src/access/firewall.hpp"
#include "src/sql/lexer.hpp"
#include "src/state/context.hpp"

namespace sluice::frontend {

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
