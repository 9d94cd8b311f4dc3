// Firewall rules, allow-list and decisions (firewall.hpp).
#include "src/access/firewall.hpp"

#include "src/access/match.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <re2/re2.h>
#include <re2/set.h>

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

FirewallRules::FirewallRules(const std::vector<config::FirewallRule>& rules, const FirewallRules* previous) {
  for (auto& d : rules) {
    Rule r;
    r.def = d;
    if (!d.match.empty()) {
      if (!patterns_) patterns_ = std::make_unique<PatternSet>();
      r.pattern = patterns_->add(d.match);
    }
    r.key = fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", d.name, d.protocol ? config::to_string(*d.protocol) : "*",
                        fmt::join(d.users, ","), fmt::join(d.databases, ","), d.addresses.size(),
                        fmt::join(d.kinds, ","), fmt::join(d.tables, ","), d.match, d.fingerprint, d.deny);
    if (previous)
      for (auto& p : previous->rules_)
        if (p.key == r.key) r.hits = p.hits;
    if (!r.hits) r.hits = std::make_shared<std::atomic<std::uint64_t>>(0);
    rules_.push_back(std::move(r));
  }
  if (patterns_ && !patterns_->compile()) patterns_.reset();  // checked at load: cannot happen
}

FirewallRules::~FirewallRules() = default;

std::optional<std::pair<std::size_t, bool>> FirewallRules::match(const FirewallRequest& req,
                                                                 const std::string& fingerprint,
                                                                 const std::vector<std::string>& verbs,
                                                                 const std::vector<std::string>& tables) const {
  std::optional<config::IpAddress> addr;
  bool addr_parsed = false;
  std::optional<std::vector<int>> matched;  // patterns the fingerprint matches, once asked
  std::vector<std::string_view> kinds;      // each verb's kind, once asked
  bool kinds_known = false;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const Rule& r = rules_[i];
    const auto& d = r.def;
    if (d.protocol && *d.protocol != req.protocol) continue;
    if (!user_listed(d.users, req.user, req.groups) || !listed(d.databases, req.database)) continue;
    if (!d.addresses.empty()) {
      if (!addr_parsed) addr = config::IpAddress::parse(req.address), addr_parsed = true;
      bool hit = false;
      for (auto& c : d.addresses) hit = hit || (addr && c.contains(*addr));
      if (!hit) continue;
    }
    if (!d.kinds.empty()) {
      if (!kinds_known) {
        for (auto& v : verbs) kinds.push_back(sql::verb_kind(v));
        kinds_known = true;
      }
      bool hit = false;
      for (std::size_t k = 0; k < verbs.size() && !hit; ++k)
        hit = listed(d.kinds, verbs[k]) || listed(d.kinds, kinds[k]);
      if (!hit) continue;
    }
    if (!d.tables.empty()) {
      bool hit = false;
      for (auto& t : tables) hit = hit || listed(d.tables, t);
      if (!hit) continue;
    }
    if (!d.fingerprint.empty() && d.fingerprint != fingerprint) continue;
    if (r.pattern >= 0) {
      if (!patterns_) continue;
      if (!matched) matched = patterns_->match(fingerprint);
      if (!std::binary_search(matched->begin(), matched->end(), r.pattern)) continue;
    }
    r.hits->fetch_add(1, std::memory_order_relaxed);
    return std::make_pair(i + 1, d.deny);
  }
  return std::nullopt;
}

std::vector<FirewallRules::Row> FirewallRules::rows() const {
  std::vector<Row> out;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const auto& d = rules_[i].def;
    std::vector<std::string> what;
    if (d.protocol) what.push_back(fmt::format("protocol={}", config::to_string(*d.protocol)));
    if (!d.users.empty()) what.push_back(fmt::format("user={}", fmt::join(d.users, ",")));
    if (!d.databases.empty()) what.push_back(fmt::format("database={}", fmt::join(d.databases, ",")));
    if (!d.addresses.empty()) {
      std::string a;
      for (auto& c : d.addresses) a += (a.empty() ? "" : ",") + c.text;
      what.push_back("address=" + a);
    }
    if (!d.kinds.empty()) what.push_back(fmt::format("kinds={}", fmt::join(d.kinds, ",")));
    if (!d.tables.empty()) what.push_back(fmt::format("tables={}", fmt::join(d.tables, ",")));
    if (!d.match.empty()) what.push_back("match=" + d.match);
    if (!d.fingerprint.empty()) what.push_back("fingerprint=" + d.fingerprint);
    out.push_back({i + 1, d.name, d.deny ? "deny" : "allow", fmt::format("{}", fmt::join(what, " ")),
                   rules_[i].hits->load(std::memory_order_relaxed)});
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
                                const FirewallRequest& req, const sql::Lexed& lexed) {
  FirewallVerdict v;
  v.fingerprint = sql::fingerprint(lexed);
  if (!rules.empty()) {
    auto verbs = sql::verbs(lexed);
    auto tables = sql::tables(lexed).names;
    if (auto hit = rules.match(req, v.fingerprint, verbs, tables)) {
      v.rule = hit->first;
      v.allow = !hit->second;
      if (!v.allow) list.count_denied();
      return v;
    }
  }
  if (cfg.mode == "learning") {
    list.learn(req.user, v.fingerprint);
  } else if (cfg.mode == "enforcing" && !list.allowed(req.user, v.fingerprint)) {
    v.allow = false;
    v.unlisted = true;
    list.count_denied();
  }
  return v;
}

}  // namespace sluice::access
