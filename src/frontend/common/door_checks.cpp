// The front door's shared checks (door_checks.hpp).
#include "src/frontend/common/door_checks.hpp"

#include <fmt/format.h>

#include "src/observe/log.hpp"

namespace sluice::frontend {

AccessOutcome access_check(const state::Snapshot& snap, config::Protocol protocol, const observe::ClientInfo& info,
                           std::string_view user, std::string_view database, bool tls) {
  if (snap.access->empty()) return {};
  const config::User* u = snap.config->find_user(user);
  access::Request q;
  q.protocol = protocol;
  q.user = user;
  q.database = database;
  q.address = info.addr;
  q.tls = tls;
  q.groups = u ? &u->groups : nullptr;
  auto v = snap.access->decide(q);
  if (v.allow) return {true, v.auth, {}};
  log::info("client {} {}:{}: user {} database {} refused by {}", info.id, info.addr, info.port, user, database,
            v.rule ? fmt::format("access rule {} ({})", v.rule, v.rule_name) : std::string("no access rule"));
  return {false, std::nullopt, access::refusal_text(v, info.addr, user, database, tls)};
}

std::optional<FirewallDenial> firewall_check(state::Context& ctx, const state::Snapshot& snap,
                                             config::Protocol protocol, std::uint64_t client_id, std::string_view user,
                                             std::string_view database, std::string_view address,
                                             const sql::Lexed& lexed) {
  const config::User* u = snap.config->find_user(user);
  access::FirewallRequest req;
  req.protocol = protocol;
  req.user = user;
  req.database = database;
  req.address = address;
  req.groups = u ? &u->groups : nullptr;
  auto v = access::check_statement(snap.config->firewall, *snap.firewall, ctx.firewall_list, req, lexed);
  if (v.allow) return std::nullopt;
  std::string why = v.unlisted ? std::string("not on the allow-list of user \"") + std::string(user) + "\""
                               : fmt::format("denied by firewall rule {}", v.rule);
  log::info("client {} {}: user {} database {}: statement {} (fingerprint: {})", client_id, address, user, database,
            why, v.fingerprint);
  return FirewallDenial{fmt::format("Sluice firewall: statement {}", why), std::move(v.fingerprint)};
}

}  // namespace sluice::frontend
