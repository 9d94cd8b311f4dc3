// The query firewall at run time: [[firewall.rules]] compiled (RE2 patterns, counters kept across
// reloads like [[access]]), the per-user allow-list of fingerprints (learned, enforced, kept in
// allowlist_file), and the decision for one statement text. Shared across workers: the rules
// are read-only in a snapshot; the allow-list is guarded by one mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/config/config.hpp"
#include "src/access/statement_rules.hpp"

namespace sluice::access {

struct FirewallVerdict {
  bool allow = true;
  std::size_t rule = 0;     // 1-based rule that decided; 0 = none
  bool unlisted = false;    // enforcing: the fingerprint is not on the user's allow-list
  std::string fingerprint;  // set when the firewall looked at the text
};

class FirewallRules {
 public:
  FirewallRules(const std::vector<config::FirewallRule>& rules, const FirewallRules* previous);
  ~FirewallRules();
  bool empty() const { return rules_.empty(); }
  // The first rule matching the statement: (its 1-based number, deny); counted.
  std::optional<std::pair<std::size_t, bool>> match(const StatementFacts& f, sql::Analysis& a) const;
  struct Row {
    std::size_t number;
    std::string name, action, what;
    std::uint64_t hits;
  };
  std::vector<Row> rows() const;

 private:
  struct Rule {
    config::FirewallRule def;
    std::string key;
    std::shared_ptr<std::atomic<std::uint64_t>> hits;
  };
  std::vector<Rule> rules_;
  std::unique_ptr<StatementRules> engine_;  // over rules_[i].def.on
};

// Fingerprints allowed per user, with how often each was seen.
class Allowlist {
 public:
  // Learning: records (user, fingerprint). Enforcing: whether it is listed (and counts it).
  void learn(std::string_view user, const std::string& fingerprint);
  bool allowed(std::string_view user, const std::string& fingerprint);
  // Replaces the list with the file's ("" or a missing file: empty); "" or what went wrong.
  std::string load(const std::string& path);
  // Writes the list (atomically: a temporary file, then rename) when it changed since the last
  // save or load; "" or what went wrong.
  std::string save_if_dirty(const std::string& path);
  struct Row {
    std::string user, fingerprint;
    std::uint64_t seen;
  };
  std::vector<Row> rows() const;
  std::uint64_t denied() const { return denied_.load(std::memory_order_relaxed); }
  void count_denied() { denied_.fetch_add(1, std::memory_order_relaxed); }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::map<std::string, std::uint64_t, std::less<>>, std::less<>> users_;
  bool dirty_ = false;
  std::atomic<std::uint64_t> denied_{0};
};

// The firewall's decision for the text `a` holds (one query text, any number of statements).
FirewallVerdict check_statement(const config::Firewall& cfg, const FirewallRules& rules, Allowlist& list,
                                const StatementFacts& f, sql::Analysis& a);

}  // namespace sluice::access
