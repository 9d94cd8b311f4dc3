// The one rule engine for statements: [[firewall.rules]] and [[rules]] are both ordered lists of
// config::StatementMatch, compiled here once (every `match` pattern in one RE2::Set, so a
// statement is scanned once however many rules have patterns; each rule indexed by one statement
// criterion, so a statement checks only the rules it may match) and matched against what a
// session knows of its client and what sql::Analysis knows of the statement (fingerprint,
// verbs, tables: computed on first need and shared with the cache and the router). The actions
// belong to the callers (firewall.hpp, query_rules.hpp). Read-only after construction: shared
// across workers in a snapshot.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "src/config/config.hpp"
#include "src/sql/analysis.hpp"

namespace sluice::access {

class PatternSet;

// Heterogeneous lookup of std::string keys by string_view.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

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
  // The index: each rule under one statement criterion (a statement that does not meet it cannot
  // match the rule), so a statement looks only at the rules it may match, not at every rule.
  static constexpr std::uint32_t kNone = ~0u;
  using Index = std::unordered_map<std::string, std::vector<std::uint32_t>, StringHash, std::equal_to<>>;
  Index by_fingerprint_, by_table_, by_kind_;
  std::vector<std::uint32_t> by_pattern_;  // pattern -> rule
  std::vector<std::uint32_t> unindexed_;   // no statement criterion: client, time or nothing
  bool any_kinds_ = false;
};

}  // namespace sluice::access
