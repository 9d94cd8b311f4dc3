// Write positions per (cluster, table) for replica answers (see header).
#include "src/cache/write_marks.hpp"

#include <algorithm>

namespace sluice::cache {

void WriteMarks::begin(const std::string& cluster, const std::vector<std::string>& tables, bool all,
                       Clock::time_point horizon) {
  std::lock_guard lock(mu_);
  auto mark = [&](const std::string& table) {
    Mark& m = marks_[key(cluster, table)];
    ++m.pending;
    m.horizon = std::max(m.horizon, horizon);
  };
  if (all) mark("");
  else
    for (auto& t : tables) mark(t);
  if (marks_.size() > kMaxMarks) fold_locked();
}

void WriteMarks::settle(const std::string& cluster, const std::vector<std::string>& tables, bool all,
                        const replication::Position& at, Clock::time_point horizon) {
  std::lock_guard lock(mu_);
  auto settle_one = [&](const std::string& table) {
    auto it = marks_.find(key(cluster, table));
    if (it == marks_.end()) it = marks_.find(key(cluster, ""));  // folded meanwhile
    if (it == marks_.end()) return;                              // past its horizon already
    Mark& m = it->second;
    if (m.pending > 0) --m.pending;
    m.at.merge(at);
    m.horizon = std::max(m.horizon, horizon);
  };
  if (all) settle_one("");
  else
    for (auto& t : tables) settle_one(t);
}

replication::Position WriteMarks::need(const std::string& cluster, const std::vector<std::string>& tables,
                                       Clock::time_point now) {
  replication::Position need;
  std::lock_guard lock(mu_);
  if (marks_.empty()) return need;
  auto add = [&](const std::string& table) {
    auto it = marks_.find(key(cluster, table));
    if (it == marks_.end()) return;
    if (it->second.horizon <= now) {  // every replica that may serve reads has it
      marks_.erase(it);
      return;
    }
    need.merge(it->second.pending > 0 ? replication::Position::unreachable() : it->second.at);
  };
  add("");
  for (auto& t : tables) add(t);
  return need;
}

std::size_t WriteMarks::size() const {
  std::lock_guard lock(mu_);
  return marks_.size();
}

void WriteMarks::fold_locked() {
  std::unordered_map<std::string, Mark> folded;
  for (auto& [k, m] : marks_) {
    Mark& f = folded[k.substr(0, k.find('\x1f') + 1)];
    f.at.merge(m.at);
    f.pending += m.pending;
    f.horizon = std::max(f.horizon, m.horizon);
  }
  marks_ = std::move(folded);
}

}  // namespace sluice::cache
