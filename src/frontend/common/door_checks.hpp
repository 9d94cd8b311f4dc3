// The front door's checks the same on both protocols, each logged when it refuses, with the
// words the client gets (each protocol frames them): the [[access]] decision at login
// (PostgreSQL 28000, MySQL 1130), and for a statement the session has lexed the query firewall's
// and the traffic rules' (a refusal is PostgreSQL 42501, MySQL 1142).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "src/access/firewall.hpp"
#include "src/access/query_rules.hpp"
#include "src/sql/analysis.hpp"
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

// One statement's checks, firewall then [[rules]], through the one rule engine: a refusal (the
// firewall's or a deny rule's: counted, logged at info level) or what the rules decide.
struct StatementCheck {
  std::optional<std::string> refusal;  // for the client (42501 / 1142)
  access::RuleOutcome rules;
};

// `f` without its clock (set here); `a` holds the statement (a.of() was called); `firewall`:
// the firewall looks too (not for a prepared statement's executions). Only when
// ctx.firewall_on() or ctx.rules_on().
StatementCheck check_statement(state::Context& ctx, const state::Snapshot& snap, access::StatementFacts f,
                               std::uint64_t client_id, sql::Analysis& a, bool firewall = true);

}  // namespace sluice::frontend
