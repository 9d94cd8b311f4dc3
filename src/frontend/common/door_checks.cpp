// The front door's shared checks (door_checks.hpp).
#include "src/frontend/common/door_checks.hpp"

#include <fmt/format.h>

#include "src/frontend/common/client_log.hpp"
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
  const std::string why =
      v.rule ? fmt::format("access rule {} ({})", v.rule, v.rule_name) : std::string("no access rule");
  log::event(log::Level::Info, "client_refused", client_fields(info, user, database, why),
             "client {} {}:{}: user {} database {} refused by {}", info.id, info.addr, info.port, user, database, why);
  return {false, std::nullopt, access::refusal_text(v, info.addr, user, database, tls)};
}

StatementCheck check_statement(state::Context& ctx, const state::Snapshot& snap, access::StatementFacts f,
                               std::uint64_t client_id, sql::Analysis& a, bool firewall) {
  StatementCheck out;
  const config::User* u = snap.config->find_user(f.user);
  f.groups = u ? &u->groups : nullptr;
  f.now = ctx.rules_now();
  if (firewall && (snap.config->firewall.mode != "off" || !snap.firewall->empty())) {
    auto v = access::check_statement(snap.config->firewall, *snap.firewall, ctx.firewall_list, f, a);
    if (!v.allow) {
      std::string why = v.unlisted ? std::string("not on the allow-list of user \"") + std::string(f.user) + "\""
                                   : fmt::format("denied by firewall rule {}", v.rule);
      log::event(log::Level::Info, "statement_denied",
                 {.client_id = client_id,
                  .address = f.address,
                  .user = f.user,
                  .database = f.database,
                  .reason = why,
                  .fingerprint = v.fingerprint},
                 "client {} {}: user {} database {}: statement {} (fingerprint: {})", client_id, f.address, f.user,
                 f.database, why, v.fingerprint);
      out.refusal = fmt::format("Sluice firewall: statement {}", why);
      return out;
    }
  }
  if (!snap.rules->empty()) {
    out.rules = snap.rules->apply(f, a);
    if (out.rules.deny) {
      ctx.firewall_list.count_denied();
      const auto why = fmt::format("denied by rule {}", out.rules.last_rule);
      log::event(log::Level::Info, "statement_denied",
                 {.client_id = client_id,
                  .address = f.address,
                  .user = f.user,
                  .database = f.database,
                  .reason = why,
                  .fingerprint = a.fingerprint()},
                 "client {} {}: user {} database {}: statement {} (fingerprint: {})", client_id, f.address, f.user,
                 f.database, why, a.fingerprint());
      out.refusal = out.rules.message.empty() ? fmt::format("Sluice: statement denied by rule {}", out.rules.last_rule)
                                              : std::string(out.rules.message);
    }
  }
  return out;
}

}  // namespace sluice::frontend
