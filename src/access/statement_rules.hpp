// The one rule engine for statements: [[firewall.rules]] and [[rules]] are both ordered lists of
// config::StatementMatch, compiled here once (every `match` pattern in one RE2::Set, so a
// statement is scanned once however many rules have patterns) and matched against what a
// session knows of its client and what sql::Analysis knows of the statement (fingerprint,
// verbs, tables: computed on first need and shared with the cache and the router). The actions
// belong to the callers (firewall.hpp, query_rules.hpp). Read-only after construction: shared
// across workers in a snapshot.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "src/config/config.hpp"
#include "src/sql/analysis.hpp"

namespace sluice::access {

class PatternSet;

// Who sends the statement, and when (Unix seconds, the rules' clock).
struct StatementFacts {
  config::Protocol protocol = config::Protocol::Postgres;
  std::string_view user, database, application, address;
  const std::vector<std::string>* groups = nullptr;
  std::int64_t now = 0;
};

// Whether `unix_seconds` falls in the window (its days name where a window past midnight starts).
bool in_window(const config::TimeWindow& w, std::int64_t unix_seconds);

class StatementRules {
 public:
  explicit StatementRules(std::vector<const config::StatementMatch*> rules);
  ~StatementRules();
  StatementRules(const StatementRules&) = delete;
  StatementRules& operator=(const StatementRules&) = delete;

  std::size_t size() const { return rules_.size(); }
  // Calls visit(i) for each rule matching the statement `a` holds (a.of() was called), in
  // order, until visit returns false.
  void each_match(const StatementFacts& f, sql::Analysis& a, const std::function<bool(std::size_t)>& visit) const;

 private:
  struct Rule {
    const config::StatementMatch* m;
    int pattern = -1;  // its `match` in patterns_
  };
  std::vector<Rule> rules_;
  std::unique_ptr<PatternSet> patterns_;
};

}  // namespace sluice::access
