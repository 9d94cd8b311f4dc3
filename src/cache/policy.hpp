// Which reads the cache keeps, and for how long: [cache] mode = "all", [[cache.rules]] (tables,
// an RE2 pattern on the normalized text, database, user, ttl), a leading /* sluice:cache ttl=30s */
// hint, or a [[rules]] entry's cache / cache_ttl (which also says "never"). Never: statements calling volatile or
// session-dependent functions, or reading system catalogs (those answers are not a function of the tables' data).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/config/config.hpp"
#include "src/sql/lexer.hpp"

namespace re2 {
class RE2;
}

namespace sluice::cache {

struct Candidate {
  std::string normalized;           // the key text
  std::vector<std::string> tables;  // what it reads (for invalidation)
  config::Duration ttl{0};
};

// What a [[rules]] entry says about caching one statement: nothing, never (false), or cached
// for `ttl` (0 = default_ttl), as a hint would, in either mode.
struct RuleCache {
  std::optional<bool> cache;
  config::Duration ttl{0};
};

class Policy {
 public:
  explicit Policy(const config::Cache& cfg);
  // For a statement the router classified as a read: a candidate, or nullopt (not cached).
  std::optional<Candidate> consider(std::string_view text, sql::Dialect d, std::string_view database,
                                    std::string_view user) const;
  // The same for a text already lexed (hint, volatility, key and tables from one lexing).
  std::optional<Candidate> consider(const sql::Lexed& lexed, std::string_view database, std::string_view user,
                                    const RuleCache& rule = {}) const;
  bool enabled() const { return cfg_.enabled; }

 private:
  struct Rule {
    config::CacheRule cfg;
    std::shared_ptr<const re2::RE2> re;  // RE2 syntax; null = any
  };
  config::Cache cfg_;
  std::vector<Rule> rules_;
};

// Volatile, session-dependent or catalog reads: never cached.
bool uncacheable(std::string_view text, sql::Dialect d);
bool uncacheable(const sql::Lexed& lexed);

}  // namespace sluice::cache
