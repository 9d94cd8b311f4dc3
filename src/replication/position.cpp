// Replication positions (see header).
#include "src/replication/position.hpp"

#include <charconv>

namespace sluice::replication {

bool Position::covers(const Position& token) const {
  for (auto& [domain, seq] : token.parts) {
    bool found = false;
    for (auto& [d, s] : parts)
      if (d == domain) {
        if (s < seq) return false;
        found = true;
        break;
      }
    if (!found) return false;
  }
  return true;
}

void Position::merge(const Position& other) {
  for (auto& [domain, seq] : other.parts) {
    bool found = false;
    for (auto& [d, s] : parts)
      if (d == domain) {
        if (s < seq) s = seq;
        found = true;
        break;
      }
    if (!found) parts.emplace_back(domain, seq);
  }
}

std::string Position::text() const {
  std::string out;
  for (auto& [d, s] : parts) {
    if (!out.empty()) out += ",";
    out += std::to_string(d) + ":" + std::to_string(s);
  }
  return out;
}

namespace {
template <typename T>
bool parse_num(std::string_view s, T& out, int base = 10) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}
}  // namespace

std::optional<Position> parse_pg_lsn(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::uint64_t hi = 0, lo = 0;
  if (!parse_num(text.substr(0, slash), hi, 16) || !parse_num(text.substr(slash + 1), lo, 16) || hi > 0xFFFFFFFFu ||
      lo > 0xFFFFFFFFu)
    return std::nullopt;
  Position p;
  p.parts.emplace_back(0, (hi << 32) | lo);
  return p;
}

std::optional<Position> parse_gtid_pos(std::string_view text) {
  Position p;
  while (!text.empty()) {
    auto comma = text.find(',');
    auto item = text.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\n')) item.remove_prefix(1);
    auto d1 = item.find('-'), d2 = item.rfind('-');
    if (d1 == std::string_view::npos || d1 == d2) return std::nullopt;
    std::uint32_t domain = 0, server = 0;
    std::uint64_t seq = 0;
    if (!parse_num(item.substr(0, d1), domain) || !parse_num(item.substr(d1 + 1, d2 - d1 - 1), server) ||
        !parse_num(item.substr(d2 + 1), seq))
      return std::nullopt;
    p.parts.emplace_back(domain, seq);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return p;
}

}  // namespace sluice::replication
