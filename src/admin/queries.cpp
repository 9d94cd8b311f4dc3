// SHOW QUERIES and the top digests (queries.hpp).
#include "src/admin/queries.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "src/state/context.hpp"

namespace sluice::admin {
namespace {

constexpr Type T = Type::Text, I = Type::Int, F = Type::Float, TS = Type::Timestamp;

// One digest's values, in cols_queries() order; numbers also as doubles for sorting.
struct Line {
  std::vector<Cell> cells;
  std::vector<double> keys;
};

Line line_of(const observe::Digest& d) {
  auto ld = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  std::uint64_t calls = ld(d.calls), total = ld(d.total_us);
  double total_ms = static_cast<double>(total) / 1000.0, mean_ms = calls ? total_ms / static_cast<double>(calls) : 0;
  double p50 = static_cast<double>(d.quantile_us(0.5)) / 1000.0,
         p99 = static_cast<double>(d.quantile_us(0.99)) / 1000.0;
  auto ts = [](std::int64_t us) {
    return timestamp(std::chrono::system_clock::time_point(std::chrono::microseconds(us)));
  };
  auto f3 = [](double v) { return fmt::format("{:.3f}", v); };
  Line l;
  l.cells = {d.protocol,
             d.database,
             d.user,
             d.fingerprint,
             std::to_string(calls),
             std::to_string(ld(d.errors)),
             std::to_string(ld(d.rows)),
             f3(total_ms),
             f3(mean_ms),
             f3(p50),
             f3(p99),
             std::to_string(ld(d.cache_hits)),
             std::to_string(ld(d.on_primary)),
             std::to_string(ld(d.on_replica)),
             ts(d.first_seen_us),
             ts(d.last_seen_us.load(std::memory_order_relaxed))};
  l.keys = {0,
            0,
            0,
            0,
            static_cast<double>(calls),
            static_cast<double>(ld(d.errors)),
            static_cast<double>(ld(d.rows)),
            total_ms,
            mean_ms,
            p50,
            p99,
            static_cast<double>(ld(d.cache_hits)),
            static_cast<double>(ld(d.on_primary)),
            static_cast<double>(ld(d.on_replica)),
            static_cast<double>(d.first_seen_us),
            static_cast<double>(d.last_seen_us.load(std::memory_order_relaxed))};
  return l;
}

}  // namespace

const std::vector<Column>& cols_queries() {
  static const std::vector<Column> c{{"protocol", T},   {"database", T},   {"user", T},        {"fingerprint", T},
                                     {"calls", I},      {"errors", I},     {"rows", I},        {"total_time", F},
                                     {"mean_time", F},  {"p50_time", F},   {"p99_time", F},    {"cache_hits", I},
                                     {"on_primary", I}, {"on_replica", I}, {"first_seen", TS}, {"last_seen", TS}};
  return c;
}

bool queries_column(const std::string& column) {
  for (auto& c : cols_queries())
    if (c.name == column) return true;
  return false;
}

Rows rows_queries(state::Context& ctx, const QueriesOrder& order, const std::optional<std::string>& pattern) {
  std::size_t col = 7;
  const auto& cols = cols_queries();
  for (std::size_t i = 0; i < cols.size(); ++i)
    if (cols[i].name == order.column) col = i;
  std::vector<Line> lines;
  for (auto& d : ctx.digests.all()) {
    if (pattern && !like(d->fingerprint, *pattern)) continue;
    lines.push_back(line_of(*d));
  }
  auto less = [&](const Line& a, const Line& b) {
    if (col < 4) return *a.cells[col] < *b.cells[col];
    return a.keys[col] < b.keys[col];
  };
  std::stable_sort(lines.begin(), lines.end(),
                   [&](const Line& a, const Line& b) { return order.descending ? less(b, a) : less(a, b); });
  if (order.limit && lines.size() > *order.limit) lines.resize(*order.limit);
  Rows r;
  for (auto& l : lines) r.push_back(std::move(l.cells));
  return r;
}

const std::vector<Column>& cols_mirrors() {
  static const std::vector<Column> c{{"cluster", T},    {"fingerprint", T}, {"sent", I},    {"matched", I},
                                     {"mismatched", I}, {"failed", I},      {"dropped", I}, {"waiting", I}};
  return c;
}

Rows rows_mirrors(state::Context& ctx) {
  Rows r;
  for (auto& m : ctx.mirrors.all()) {
    auto waiting = std::to_string(m->waiting());
    for (auto& row : m->rows())
      r.push_back({m->cluster(), row.fingerprint, std::to_string(row.sent), std::to_string(row.matched),
                   std::to_string(row.mismatched), std::to_string(row.failed), std::to_string(row.dropped), waiting});
  }
  return r;
}

std::vector<std::shared_ptr<const observe::Digest>> top_digests(state::Context& ctx, std::size_t n) {
  auto all = ctx.digests.all();
  auto total = [](const std::shared_ptr<const observe::Digest>& d) {
    return d->total_us.load(std::memory_order_relaxed);
  };
  std::sort(all.begin(), all.end(), [&](auto& a, auto& b) { return total(a) > total(b); });
  if (all.size() > n) all.resize(n);
  return all;
}

}  // namespace sluice::admin
