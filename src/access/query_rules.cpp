// Traffic rules (query_rules.hpp).
#include "src/access/query_rules.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <re2/re2.h>

namespace sluice::access {

std::string describe_actions(const config::QueryRule& r) {
  std::vector<std::string> a;
  if (r.deny) a.push_back(r.message.empty() ? "deny" : fmt::format("deny message=\"{}\"", r.message));
  if (!r.cluster.empty()) a.push_back("cluster=" + r.cluster);
  if (r.route == config::RouteTo::Primary) a.push_back("route=primary");
  if (r.route == config::RouteTo::Replica) a.push_back("route=replica");
  for (auto& [k, v] : r.route_tags) a.push_back(fmt::format("route_tags.{}={}", k, v));
  if (r.cache == false) a.push_back("cache=off");
  if (r.cache == true)
    a.push_back(r.cache_ttl.count() > 0 ? fmt::format("cache_ttl={}ms", r.cache_ttl.count()) : "cache=on");
  if (!r.replace_match.empty()) a.push_back(fmt::format("replace {} -> {}", r.replace_match, r.replace_with));
  if (r.statement_timeout.count() > 0) a.push_back(fmt::format("statement_timeout={}ms", r.statement_timeout.count()));
  if (!r.tag.empty()) a.push_back("tag=" + r.tag);
  if (!r.mirror.empty()) a.push_back(fmt::format("mirror={}{}", r.mirror, r.mirror_writes ? " (writes too)" : ""));
  if (a.empty()) a.push_back("allow");
  return fmt::format("{}", fmt::join(a, " "));
}

QueryRules::QueryRules(const std::vector<config::QueryRule>& rules, const QueryRules* previous) {
  for (auto& d : rules) {
    Rule r;
    r.def = d;
    r.key = fmt::format("{}|{}|{}|{}", d.name, d.on.key(), describe_actions(d), d.next);
    if (previous)
      for (auto& p : previous->rules_)
        if (p.key == r.key) r.hits = p.hits;
    if (!r.hits) r.hits = std::make_shared<std::atomic<std::uint64_t>>(0);
    if (!d.replace_match.empty()) {
      r.replace = std::make_shared<const re2::RE2>(d.replace_match, re2::RE2::Quiet);
      rewrites_ = true;
    }
    rules_.push_back(std::move(r));
  }
  std::vector<const config::StatementMatch*> on;
  for (auto& r : rules_) on.push_back(&r.def.on);
  engine_ = std::make_unique<StatementRules>(std::move(on));
}

QueryRules::~QueryRules() = default;

RuleOutcome QueryRules::apply(const StatementFacts& f, sql::Analysis& a) const {
  RuleOutcome o;
  engine_->each_match(f, a, [&](std::size_t i) {
    const auto& d = rules_[i].def;
    rules_[i].hits->fetch_add(1, std::memory_order_relaxed);
    o.matched = true;
    o.last_rule = i + 1;
    if (d.deny) {
      o.deny = true;
      o.message = d.message;
      return false;  // nothing after a refusal matters
    }
    if (d.route != config::RouteTo::Default) o.route = d.route;
    if (!d.route_tags.empty()) o.route_tags = &d.route_tags;
    if (d.cache) o.cache = d.cache, o.cache_ttl = d.cache_ttl;
    if (rules_[i].replace) o.rewrite_rule = static_cast<int>(i);
    if (d.statement_timeout.count() > 0) o.statement_timeout = d.statement_timeout;
    if (!d.tag.empty()) o.tag = d.tag;
    if (!d.mirror.empty()) o.mirror = d.mirror, o.mirror_writes = d.mirror_writes;
    if (!d.cluster.empty()) o.cluster = d.cluster;
    return d.next;
  });
  return o;
}

bool QueryRules::rewrite(int rule, std::string& text) const {
  if (rule < 0 || static_cast<std::size_t>(rule) >= rules_.size() || !rules_[static_cast<std::size_t>(rule)].replace)
    return false;
  const auto& r = rules_[static_cast<std::size_t>(rule)];
  return re2::RE2::GlobalReplace(&text, *r.replace, r.def.replace_with) > 0;
}

std::vector<QueryRules::Row> QueryRules::rows() const {
  std::vector<Row> out;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const auto& d = rules_[i].def;
    out.push_back({i + 1, d.name, d.on.describe(), describe_actions(d), d.tag, d.next,
                   rules_[i].hits->load(std::memory_order_relaxed)});
  }
  return out;
}

}  // namespace sluice::access
