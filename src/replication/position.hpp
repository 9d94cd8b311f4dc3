// Replication positions, comparable across members of one cluster: a PostgreSQL WAL LSN, or a
// MariaDB GTID position (one sequence number per replication domain). Plain values, sans-io: the
// router compares members' positions with clients' read-your-writes tokens, and the result cache
// stamps replica answers with them, so they live below both.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::replication {

struct Position {
  // (domain, sequence): PostgreSQL uses domain 0 with the LSN as its sequence.
  std::vector<std::pair<std::uint32_t, std::uint64_t>> parts;
  bool empty() const { return parts.empty(); }
  bool operator==(const Position&) const = default;
  // True when this position includes everything `token` does (every domain at or past it).
  bool covers(const Position& token) const;
  // Becomes the least position that covers both this one and `other` (per domain, the larger).
  void merge(const Position& other);
  std::string text() const;
  // A token no replica covers: after a write whose position is unknown, reads stay on the primary.
  static Position unreachable() { return Position{{{0xFFFFFFFFu, ~std::uint64_t(0)}}}; }
  // A new client's token before the primary's position at its login is known
  // (read_your_writes_from_login): no replica covers it either; the first lease on the primary
  // replaces it.
  static Position login_pending() { return Position{{{0xFFFFFFFEu, ~std::uint64_t(0)}}}; }
  // Whether this is one of those, asked without making one (a vector, allocated: this is asked
  // per request).
  bool is_unreachable() const { return is_marker(0xFFFFFFFFu); }
  bool is_login_pending() const { return is_marker(0xFFFFFFFEu); }
  // Either of those: a marker, not a position a server reported.
  bool marker() const { return is_unreachable() || is_login_pending(); }

 private:
  bool is_marker(std::uint32_t domain) const {
    return parts.size() == 1 && parts[0].first == domain && parts[0].second == ~std::uint64_t(0);
  }
};

// "16/B374D848" -> position; nullopt when malformed.
std::optional<Position> parse_pg_lsn(std::string_view text);
// "0-1-123,1-2-7" -> position (per domain; the server id is not compared); "" -> empty.
std::optional<Position> parse_gtid_pos(std::string_view text);

}  // namespace sluice::replication
