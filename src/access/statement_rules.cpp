// The statement rule engine (statement_rules.hpp).
#include "src/access/statement_rules.hpp"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <optional>

#include "src/access/match.hpp"
#include "src/config/time_zone.hpp"

namespace sluice::access {

class PatternSet {
 public:
  PatternSet() : set_(re2::RE2::DefaultOptions, re2::RE2::UNANCHORED) {}
  int add(const std::string& pattern) { return set_.Add(pattern, nullptr); }
  bool compile() { return set_.Compile(); }
  // Which patterns `text` matches (indexes, sorted).
  std::vector<int> match(const std::string& text) const {
    std::vector<int> hits;
    set_.Match(text, &hits);
    std::sort(hits.begin(), hits.end());
    return hits;
  }

 private:
  re2::RE2::Set set_;
};

bool in_window(const config::TimeWindow& w, std::int64_t t) {
  std::int64_t local = t + (w.zone ? w.zone->offset_at(t) : 0);
  std::int64_t day = local >= 0 ? local / 86400 : (local - 86399) / 86400;
  int minute = static_cast<int>((local - day * 86400) / 60);
  int weekday = static_cast<int>(((day % 7) + 7 + 4) % 7);  // 1970-01-01 was a Thursday
  auto on = [&](int d) { return (w.days >> ((d + 7) % 7) & 1) != 0; };
  if (w.from_minute < w.to_minute) return on(weekday) && minute >= w.from_minute && minute < w.to_minute;
  // Past midnight: the evening part on a listed day, the morning part the day after one.
  return (on(weekday) && minute >= w.from_minute) || (on(weekday - 1) && minute < w.to_minute);
}

StatementRules::StatementRules(std::vector<const config::StatementMatch*> rules) {
  for (auto* m : rules) {
    Rule r{m};
    if (!m->pattern.empty()) {
      if (!patterns_) patterns_ = std::make_unique<PatternSet>();
      r.pattern = patterns_->add(m->pattern);
    }
    rules_.push_back(r);
  }
  if (patterns_ && !patterns_->compile()) patterns_.reset();  // checked at load: cannot happen
  // Each rule under its most selective statement criterion; rules with none are always looked at.
  for (std::uint32_t i = 0; i < rules_.size(); ++i) {
    const auto& d = *rules_[i].m;
    any_kinds_ = any_kinds_ || !d.kinds.empty();
    if (!d.fingerprint.empty()) {
      by_fingerprint_[d.fingerprint].push_back(i);
    } else if (rules_[i].pattern >= 0 && patterns_) {
      auto p = static_cast<std::size_t>(rules_[i].pattern);
      if (by_pattern_.size() <= p) by_pattern_.resize(p + 1, kNone);
      by_pattern_[p] = i;
    } else if (!d.tables.empty()) {
      for (auto& t : d.tables) by_table_[t].push_back(i);
    } else if (!d.kinds.empty()) {
      for (auto& k : d.kinds) by_kind_[k].push_back(i);
    } else {
      unindexed_.push_back(i);
    }
  }
}

StatementRules::~StatementRules() = default;

void StatementRules::each_match(const StatementFacts& f, sql::Analysis& a,
                                const std::function<bool(std::size_t)>& visit) const {
  // The candidates: rules without a statement criterion, and those whose key criterion the
  // statement meets (its fingerprint, a pattern it matches, a table it touches, a verb or kind
  // it has), in rule order; each is then checked whole.
  thread_local std::vector<std::uint32_t> cands;
  cands.assign(unindexed_.begin(), unindexed_.end());
  auto add = [&](const auto& index, std::string_view key) {
    if (auto it = index.find(key); it != index.end()) cands.insert(cands.end(), it->second.begin(), it->second.end());
  };
  std::optional<std::vector<int>> matched;  // patterns the fingerprint matches
  if (!by_fingerprint_.empty()) add(by_fingerprint_, a.fingerprint());
  if (patterns_) {
    matched = patterns_->match(a.fingerprint());
    for (int h : *matched)
      if (auto r = by_pattern_[static_cast<std::size_t>(h)]; r != kNone) cands.push_back(r);
  }
  if (!by_table_.empty())
    for (auto& t : a.tables().names) add(by_table_, t);
  std::vector<std::string_view> kinds;  // each verb's kind
  if (!by_kind_.empty() || any_kinds_) {
    for (auto& v : a.verbs()) {
      kinds.push_back(sql::verb_kind(v));
      if (!by_kind_.empty()) {
        add(by_kind_, v);
        add(by_kind_, kinds.back());
      }
    }
  }
  if (cands.empty()) return;
  std::sort(cands.begin(), cands.end());
  cands.erase(std::unique(cands.begin(), cands.end()), cands.end());
  std::optional<config::IpAddress> addr;
  bool addr_parsed = false;
  for (std::uint32_t i : cands) {
    const auto& d = *rules_[i].m;
    if (d.protocol && *d.protocol != f.protocol) continue;
    if (!user_listed(d.users, f.user, f.groups) || !listed(d.databases, f.database) ||
        !listed(d.applications, f.application))
      continue;
    if (!d.addresses.empty()) {
      if (!addr_parsed) addr = config::IpAddress::parse(f.address), addr_parsed = true;
      bool hit = false;
      for (auto& c : d.addresses) hit = hit || (addr && c.contains(*addr));
      if (!hit) continue;
    }
    if (d.window && !in_window(*d.window, f.now)) continue;
    if (!d.kinds.empty()) {
      const auto& verbs = a.verbs();
      bool hit = false;
      for (std::size_t k = 0; k < verbs.size() && !hit; ++k)
        hit = listed(d.kinds, verbs[k]) || listed(d.kinds, kinds[k]);
      if (!hit) continue;
    }
    if (!d.tables.empty()) {
      bool hit = false;
      for (auto& t : a.tables().names) hit = hit || listed(d.tables, t);
      if (!hit) continue;
    }
    if (!d.fingerprint.empty() && d.fingerprint != a.fingerprint()) continue;
    if (rules_[i].pattern >= 0) {
      if (!matched) continue;
      if (!std::binary_search(matched->begin(), matched->end(), rules_[i].pattern)) continue;
    }
    if (!visit(i)) return;
  }
}

}  // namespace sluice::access
