// [[access]] rule matching and counting (rules.hpp).
#include "src/access/rules.hpp"

#include "src/access/match.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace sluice::access {
namespace {

std::string list_text(const std::vector<std::string>& v) {
  return v.empty() ? "*" : fmt::format("{}", fmt::join(v, ","));
}

std::string cidrs_text(const std::vector<config::Cidr>& v) {
  if (v.empty()) return "*";
  std::string out;
  for (auto& c : v) out += (out.empty() ? "" : ",") + c.text;
  return out;
}

const char* tls_text(config::AccessTls t) {
  return t == config::AccessTls::Required ? "required" : t == config::AccessTls::Forbidden ? "forbidden" : "any";
}

}  // namespace

Rules::Rules(const std::vector<config::AccessRule>& rules, const Rules* previous) {
  unmatched_ = previous ? previous->unmatched_ : std::make_shared<std::atomic<std::uint64_t>>(0);
  for (auto& d : rules) {
    Rule r{d, {}, nullptr};
    r.key = fmt::format("{}|{}|{}|{}|{}|{}|{}|{}", d.name, d.protocol ? config::to_string(*d.protocol) : "*",
                        list_text(d.databases), list_text(d.users), cidrs_text(d.addresses), tls_text(d.tls), d.allow,
                        d.auth ? config::to_string(*d.auth) : "");
    if (previous)
      for (auto& p : previous->rules_)
        if (p.key == r.key) r.matches = p.matches;
    if (!r.matches) r.matches = std::make_shared<std::atomic<std::uint64_t>>(0);
    rules_.push_back(std::move(r));
  }
}

bool Rules::matches_address(const Rule& r, const std::optional<config::IpAddress>& a) const {
  if (r.def.addresses.empty()) return true;
  if (!a) return false;
  for (auto& c : r.def.addresses)
    if (c.contains(*a)) return true;
  return false;
}

Verdict Rules::decide(const Request& q) const {
  if (rules_.empty()) return {};
  auto addr = config::IpAddress::parse(q.address);
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const Rule& r = rules_[i];
    if (r.def.protocol && *r.def.protocol != q.protocol) continue;
    if (!listed(r.def.databases, q.database)) continue;
    if (!user_listed(r.def.users, q.user, q.groups)) continue;
    if (!matches_address(r, addr)) continue;
    if ((r.def.tls == config::AccessTls::Required && !q.tls) || (r.def.tls == config::AccessTls::Forbidden && q.tls))
      continue;
    r.matches->fetch_add(1, std::memory_order_relaxed);
    return {r.def.allow, i + 1, r.def.auth, r.def.name};
  }
  unmatched_->fetch_add(1, std::memory_order_relaxed);
  return {false, 0, std::nullopt, {}};
}

std::optional<Verdict> Rules::refused_by_address(config::Protocol protocol, std::string_view address) const {
  if (rules_.empty()) return std::nullopt;
  auto addr = config::IpAddress::parse(address);
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const Rule& r = rules_[i];
    if (r.def.protocol && *r.def.protocol != protocol) continue;
    if (!matches_address(r, addr)) continue;
    // The first rule that may apply: it decides alone only if nothing else about the client matters.
    if (r.def.allow || !r.def.databases.empty() || !r.def.users.empty() || r.def.tls != config::AccessTls::Any)
      return std::nullopt;
    r.matches->fetch_add(1, std::memory_order_relaxed);
    return Verdict{false, i + 1, std::nullopt, r.def.name};
  }
  unmatched_->fetch_add(1, std::memory_order_relaxed);
  return Verdict{false, 0, std::nullopt, {}};
}

std::vector<Rules::Row> Rules::rows() const {
  std::vector<Row> out;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    auto& d = rules_[i].def;
    out.push_back({i + 1, d.name, d.protocol ? config::to_string(*d.protocol) : "*", list_text(d.databases),
                   list_text(d.users), cidrs_text(d.addresses), tls_text(d.tls), d.allow ? "allow" : "reject",
                   d.auth ? config::to_string(*d.auth) : "", rules_[i].matches->load(std::memory_order_relaxed)});
  }
  return out;
}

std::string refusal_text(const Verdict& v, std::string_view address, std::string_view user, std::string_view database,
                         bool tls) {
  const char* enc = tls ? "SSL encryption" : "no encryption";
  if (v.rule == 0)
    return fmt::format("no access rule for host \"{}\", user \"{}\", database \"{}\", {}", address, user, database,
                       enc);
  return fmt::format("access rule {} rejects connection for host \"{}\", user \"{}\", database \"{}\", {}", v.rule,
                     address, user, database, enc);
}

}  // namespace sluice::access
