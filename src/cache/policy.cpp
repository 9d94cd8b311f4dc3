// Cache policy (see header).
#include "src/cache/policy.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include <re2/re2.h>

#include "src/config/units.hpp"
#include "src/sql/normalize.hpp"

namespace sluice::cache {

bool uncacheable(std::string_view text, sql::Dialect d) { return uncacheable(sql::lex(text, d)); }

namespace {

// A few dozen fixed words (lower case), looked up for every word of a statement the cache
// considers: only those of the word's length are compared, case-insensitively, so most words
// (identifiers, SELECT, FROM) cost a length check and a comparison or two, without being folded
// or hashed.
class WordList {
 public:
  template <std::size_t N>
  explicit WordList(const std::array<std::string_view, N>& words) : words_(words.begin(), words.end()) {
    std::sort(words_.begin(), words_.end(), [](std::string_view a, std::string_view b) { return a.size() < b.size(); });
    for (std::size_t len = 0; len < kMaxLen + 2; ++len)
      start_[len] =
          static_cast<std::uint8_t>(std::lower_bound(words_.begin(), words_.end(), len,
                                                     [](std::string_view w, std::size_t l) { return w.size() < l; }) -
                                    words_.begin());
  }
  bool contains(std::string_view w) const {
    if (w.size() > kMaxLen) return false;
    for (std::size_t i = start_[w.size()]; i < start_[w.size() + 1]; ++i)
      if (equal_folded(words_[i], w)) return true;
    return false;
  }

 private:
  static constexpr std::size_t kMaxLen = 30;
  static bool equal_folded(std::string_view lower, std::string_view w) {
    for (std::size_t i = 0; i < w.size(); ++i)
      if (sql::lower_ascii(w[i]) != lower[i]) return false;
    return true;
  }
  std::vector<std::string_view> words_;
  std::array<std::uint8_t, kMaxLen + 2> start_{};
};

constexpr std::array<std::string_view, 57> kFunctionWords = {
    "now", "random", "clock_timestamp", "statement_timestamp", "transaction_timestamp", "timeofday", "gen_random_uuid",
    "uuid_generate_v1", "uuid_generate_v4", "pg_backend_pid", "inet_server_port", "inet_client_addr", "txid_current",
    "pg_is_in_recovery", "pg_sleep", "version", "current_setting", "rand", "uuid", "uuid_short", "sysdate",
    "unix_timestamp", "utc_timestamp", "curdate", "curtime", "current_timestamp", "localtimestamp", "localtime",
    "connection_id", "database", "schema", "user", "current_user", "session_user", "system_user", "sleep", "benchmark",
    "last_insert_id", "found_rows", "row_count", "get_lock", "is_free_lock", "is_used_lock", "nextval", "currval",
    "lastval", "setval",
    // The keywords with a precision or MySQL's parentheses, and more that differ per call or
    // per connection.
    "current_date", "current_time", "utc_date", "utc_time", "random_bytes", "sys_guid", "inet_server_addr",
    "inet_client_port", "uuid_generate_v1mc", "gen_random_bytes"};
constexpr std::array<std::string_view, 11> kKeywordWords = {
    "current_timestamp", "current_date",    "current_time", "localtime",
    "localtimestamp",    "current_user",    "session_user", "current_role",
    "current_schema",    "current_catalog", "user"};

}  // namespace

bool uncacheable(const sql::Lexed& lexed) {
  static const WordList functions(kFunctionWords);
  static const WordList keywords(kKeywordWords);
  const auto& t = lexed.tokens;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i].kind != sql::Token::Word) {
      if (t[i].sym('@')) return true;  // MySQL @@system or @user variables: session state
      continue;
    }
    const std::string_view w = t[i].text;  // as written: the lists compare it folded
    bool call = i + 1 < t.size() && t[i + 1].sym('(');
    if (call && functions.contains(w)) return true;
    if (!call && keywords.contains(w)) return true;
    // pg_catalog tables and views; server functions.
    if (w.size() >= 3 && sql::lower_ascii(w[0]) == 'p' && sql::lower_ascii(w[1]) == 'g' && w[2] == '_') return true;
    if (t[i].is("information_schema") || t[i].is("performance_schema") || t[i].is("sys") ||
        (t[i].is("mysql") && i + 1 < t.size() && t[i + 1].sym('.')))
      return true;
  }
  return false;
}

Policy::Policy(const config::Cache& cfg) : cfg_(cfg) {
  for (auto& r : cfg.rules) {
    Rule rule{r, nullptr};
    if (!r.match.empty()) rule.re = std::make_shared<const re2::RE2>(r.match, re2::RE2::Quiet);
    rules_.push_back(std::move(rule));
  }
}

std::optional<Candidate> Policy::consider(std::string_view text, sql::Dialect d, std::string_view database,
                                          std::string_view user) const {
  if (!cfg_.enabled) return std::nullopt;
  return consider(sql::lex(text, d), database, user);
}

std::optional<Candidate> Policy::consider(const sql::Lexed& lexed, std::string_view database, std::string_view user,
                                          const RuleCache& rule) const {
  if (!cfg_.enabled || rule.cache == false) return std::nullopt;
  // A hint: /* sluice:cache ttl=30s */ (ttl optional).
  std::optional<config::Duration> hint;
  {
    auto c = lexed.leading_comment;
    while (!c.empty() && c.front() == ' ') c.remove_prefix(1);
    if (c.rfind("sluice:cache", 0) == 0) {
      hint = cfg_.default_ttl;
      auto p = c.find("ttl=");
      if (p != std::string_view::npos) {
        auto v = c.substr(p + 4);
        auto end = v.find_first_of(" */");
        if (auto dur = config::parse_duration(std::string(v.substr(0, end)))) hint = *dur;
      }
    }
  }
  if (rule.cache == true) hint = rule.ttl.count() > 0 ? rule.ttl : cfg_.default_ttl;
  if (!hint && !cfg_.all && rules_.empty()) return std::nullopt;
  if (uncacheable(lexed)) return std::nullopt;
  Candidate c;
  c.normalized = sql::normalize(lexed);
  auto refs = sql::tables(lexed);
  if (!refs.complete) return std::nullopt;
  c.tables = std::move(refs.names);
  if (hint) {
    c.ttl = *hint;
    return c;
  }
  for (auto& r : rules_) {
    if (!r.cfg.database.empty() && r.cfg.database != database) continue;
    if (!r.cfg.user.empty() && r.cfg.user != user) continue;
    if (!r.cfg.tables.empty() &&
        std::none_of(c.tables.begin(), c.tables.end(), [&](const std::string& t) {
          return std::find(r.cfg.tables.begin(), r.cfg.tables.end(), t) != r.cfg.tables.end();
        }))
      continue;
    if (r.re && !re2::RE2::PartialMatch(c.normalized, *r.re)) continue;
    c.ttl = r.cfg.ttl.count() > 0 ? r.cfg.ttl : cfg_.default_ttl;
    return c;
  }
  if (cfg_.all) {
    c.ttl = cfg_.default_ttl;
    return c;
  }
  return std::nullopt;
}

}  // namespace sluice::cache
