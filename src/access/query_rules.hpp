// [[rules]] at run time: the traffic rules compiled over the shared statement rule engine
// (statement_rules.hpp), their hit counters (kept across reloads for rules that did not change),
// and what they decide for one statement: deny, where it goes (primary, replica, members with
// tags), whether and how long it is cached, a rewrite of its text, a statement timeout and a
// tag for metrics. Rules apply in order; the first match ends the search unless it says
// `continue`, and a later match's action replaces an earlier one's of the same kind.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/access/statement_rules.hpp"

namespace re2 {
class RE2;
}

namespace sluice::access {

struct RuleOutcome {
  bool matched = false;
  std::size_t last_rule = 0;  // 1-based: the last rule that matched
  bool deny = false;
  std::string_view message;  // deny: the rule's own words ("" = the default)
  config::RouteTo route = config::RouteTo::Default;
  const std::vector<std::pair<std::string, std::string>>* route_tags = nullptr;
  std::optional<bool> cache;
  config::Duration cache_ttl{0};
  int rewrite_rule = -1;  // 0-based rule whose replace_match/replace_with applies
  config::Duration statement_timeout{0};
  std::string_view tag;
  std::string_view mirror;  // a cluster that gets a copy
  std::string_view cluster;  // the cluster the statement runs on instead
  bool mirror_writes = false;
};

class QueryRules {
 public:
  QueryRules(const std::vector<config::QueryRule>& rules, const QueryRules* previous);
  ~QueryRules();
  bool empty() const { return rules_.empty(); }
  // Whether any rule rewrites statements (sessions then keep a copy of the text to change).
  bool rewrites() const { return rewrites_; }
  // What the rules decide for the statement `a` holds; each rule that matched is counted.
  RuleOutcome apply(const StatementFacts& f, sql::Analysis& a) const;
  // Rewrites `text` by rule `rule` (RuleOutcome::rewrite_rule); false when nothing matched.
  bool rewrite(int rule, std::string& text) const;
  struct Row {
    std::size_t number;
    std::string name, what, actions, tag;
    bool next;
    std::uint64_t hits;
  };
  std::vector<Row> rows() const;

 private:
  struct Rule {
    config::QueryRule def;
    std::string key;
    std::shared_ptr<std::atomic<std::uint64_t>> hits;
    std::shared_ptr<const re2::RE2> replace;
  };
  std::vector<Rule> rules_;
  std::unique_ptr<StatementRules> engine_;
  bool rewrites_ = false;
};

// "route=replica cache_ttl=30s tag=reports ..." for SHOW RULES.
std::string describe_actions(const config::QueryRule& r);

}  // namespace sluice::access
