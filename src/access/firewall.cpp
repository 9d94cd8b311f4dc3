// Firewall rules, allow-list and decisions (firewall.hpp).
#include "src/access/firewall.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "src/sql/fingerprint.hpp"
#include "src/sql/normalize.hpp"

namespace sluice::access {
namespace {

// Escapes for the allow-list file: one entry per line, fields separated by a tab.
std::string escape(std::string_view s) {
  std::string o;
  for (char c : s) {
    if (c == '\\') o += "\\\\";
    else if (c == '\t') o += "\\t";
    else if (c == '\n') o += "\\n";
    else if (c == '\r') o += "\\r";
    else o += c;
  }
  return o;
}
std::string unescape(std::string_view s) {
  std::string o;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      char n = s[++i];
      o += n == 't' ? '\t' : n == 'n' ? '\n' : n == 'r' ? '\r' : n;
    } else {
      o += s[i];
    }
  }
  return o;
}

}  // namespace

FirewallRules::FirewallRules(const std::vector<config::FirewallRule>& rules, const FirewallRules* previous) {
  for (auto& d : rules) {
    Rule r;
    r.def = d;
    r.key = fmt::format("{}|{}|{}", d.name, d.on.key(), d.deny);
    if (previous)
      for (auto& p : previous->rules_)
        if (p.key == r.key) r.hits = p.hits;
    if (!r.hits) r.hits = std::make_shared<std::atomic<std::uint64_t>>(0);
    rules_.push_back(std::move(r));
  }
  std::vector<const config::StatementMatch*> on;
  for (auto& r : rules_) on.push_back(&r.def.on);
  engine_ = std::make_unique<StatementRules>(std::move(on));
}

FirewallRules::~FirewallRules() = default;

std::optional<std::pair<std::size_t, bool>> FirewallRules::match(const StatementFacts& f, sql::Analysis& a) const {
  std::optional<std::pair<std::size_t, bool>> out;
  engine_->each_match(f, a, [&](std::size_t i) {
    rules_[i].hits->fetch_add(1, std::memory_order_relaxed);
    out = std::make_pair(i + 1, rules_[i].def.deny);
    return false;
  });
  return out;
}

std::vector<FirewallRules::Row> FirewallRules::rows() const {
  std::vector<Row> out;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const auto& d = rules_[i].def;
    out.push_back(
        {i + 1, d.name, d.deny ? "deny" : "allow", d.on.describe(), rules_[i].hits->load(std::memory_order_relaxed)});
  }
  return out;
}

void Allowlist::learn(std::string_view user, const std::string& fingerprint) {
  std::lock_guard lock(mu_);
  auto u = users_.find(user);
  if (u == users_.end())
    u = users_.emplace(std::string(user), std::map<std::string, std::uint64_t, std::less<>>{}).first;
  auto [it, fresh] = u->second.try_emplace(fingerprint, 0);
  ++it->second;
  if (fresh) dirty_ = true;
}

bool Allowlist::allowed(std::string_view user, const std::string& fingerprint) {
  std::lock_guard lock(mu_);
  auto u = users_.find(user);
  if (u == users_.end()) return false;
  auto it = u->second.find(fingerprint);
  if (it == u->second.end()) return false;
  ++it->second;
  return true;
}

std::string Allowlist::load(const std::string& path) {
  decltype(users_) fresh;
  if (!path.empty()) {
    std::ifstream f(path);
    std::string line;
    std::size_t n = 0;
    while (f && std::getline(f, line)) {
      ++n;
      if (line.empty() || line[0] == '#') continue;
      auto tab1 = line.find('\t');
      auto tab2 = tab1 == std::string::npos ? std::string::npos : line.find('\t', tab1 + 1);
      if (tab1 == std::string::npos) return fmt::format("{}:{}: expected user<TAB>fingerprint[<TAB>count]", path, n);
      std::string fp = unescape(
          std::string_view(line).substr(tab1 + 1, tab2 == std::string::npos ? std::string::npos : tab2 - tab1 - 1));
      std::uint64_t seen = 0;
      if (tab2 != std::string::npos) seen = std::strtoull(line.c_str() + tab2 + 1, nullptr, 10);
      fresh[unescape(std::string_view(line).substr(0, tab1))][fp] = seen;
    }
  }
  std::lock_guard lock(mu_);
  users_ = std::move(fresh);
  dirty_ = false;
  return {};
}

std::string Allowlist::save_if_dirty(const std::string& path) {
  std::string text;
  {
    std::lock_guard lock(mu_);
    if (!dirty_ || path.empty()) return {};
    text =
        "# Sluice firewall allow-list: user<TAB>fingerprint<TAB>times seen (written by Sluice; edit in enforcing mode, "
        "then RELOAD)\n";
    for (auto& [user, fps] : users_)
      for (auto& [fp, seen] : fps) text += escape(user) + "\t" + escape(fp) + "\t" + std::to_string(seen) + "\n";
    dirty_ = false;
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!f || !(f << text) || !f.flush()) {
      std::lock_guard lock(mu_);
      dirty_ = true;
      return "cannot write " + tmp;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::lock_guard lock(mu_);
    dirty_ = true;
    return "cannot rename " + tmp + " to " + path;
  }
  return {};
}

std::vector<Allowlist::Row> Allowlist::rows() const {
  std::lock_guard lock(mu_);
  std::vector<Row> out;
  for (auto& [user, fps] : users_)
    for (auto& [fp, seen] : fps) out.push_back({user, fp, seen});
  return out;
}

FirewallVerdict check_statement(const config::Firewall& cfg, const FirewallRules& rules, Allowlist& list,
                                const StatementFacts& f, sql::Analysis& a) {
  FirewallVerdict v;
  v.fingerprint = a.fingerprint();
  if (!rules.empty()) {
    if (auto hit = rules.match(f, a)) {
      v.rule = hit->first;
      v.allow = !hit->second;
      if (!v.allow) list.count_denied();
      return v;
    }
  }
  if (cfg.mode == "learning") {
    list.learn(f.user, v.fingerprint);
  } else if (cfg.mode == "enforcing" && !list.allowed(f.user, v.fingerprint)) {
    v.allow = false;
    v.unlisted = true;
    list.count_denied();
  }
  return v;
}

}  // namespace sluice::access
