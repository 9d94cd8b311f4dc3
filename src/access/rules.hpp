// The [[access]] rules, compiled: who may log in, from where, over what, and how they must prove
// it. Ordered, the first matching rule decides (as pg_hba.conf); with no rules, everyone may.
// Each rule counts its matches (SHOW ACCESS, /metrics); a reload keeps the counts of rules that
// did not change. Built with a snapshot, then shared read-only across workers (counters atomic).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/config/config.hpp"

namespace sluice::access {

struct Request {
  config::Protocol protocol = config::Protocol::Postgres;
  std::string_view user, database;
  std::string_view address;  // the client's real address, as text
  bool tls = false;
  const std::vector<std::string>* groups = nullptr;  // the user's [[users]] groups, if listed
};

struct Verdict {
  bool allow = true;
  std::size_t rule = 0;                    // 1-based; 0 = no rule matched (refused when rules exist)
  std::optional<config::AuthMethod> auth;  // allow: the method the rule asks for
  std::string_view rule_name;
};

class Rules {
 public:
  // `previous` (the running set, may be null) lends its counters to identical rules.
  Rules(const std::vector<config::AccessRule>& rules, const Rules* previous);
  bool empty() const { return rules_.empty(); }
  // Decides and counts.
  Verdict decide(const Request& r) const;
  // A refusal that the address alone already decides (before a MySQL greeting): the first rule
  // for this protocol and address names any user, database and TLS and rejects, or no rule is
  // for this address at all. Counted when returned.
  std::optional<Verdict> refused_by_address(config::Protocol protocol, std::string_view address) const;

  struct Row {
    std::size_t number;
    std::string name, protocol, database, user, address, tls, action, auth;
    std::uint64_t matches;
  };
  std::vector<Row> rows() const;
  std::uint64_t unmatched() const { return unmatched_->load(std::memory_order_relaxed); }

 private:
  struct Rule {
    config::AccessRule def;
    std::string key;  // the definition as text: a reload keeps counters of equal keys
    std::shared_ptr<std::atomic<std::uint64_t>> matches;
  };
  bool matches_address(const Rule& r, const std::optional<config::IpAddress>& a) const;
  std::vector<Rule> rules_;
  std::shared_ptr<std::atomic<std::uint64_t>> unmatched_;
};

// The client-facing words (both protocols' texts name host, user, database and encryption as
// PostgreSQL's pg_hba refusal does).
std::string refusal_text(const Verdict& v, std::string_view address, std::string_view user, std::string_view database,
                         bool tls);

}  // namespace sluice::access
