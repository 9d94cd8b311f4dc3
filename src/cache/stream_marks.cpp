// Stream marks (see header).
#include "src/cache/stream_marks.hpp"

#include <algorithm>

namespace sluice::cache {

void StreamMarks::start(const std::string& cluster, const std::string& follower, const replication::Position& at) {
  std::lock_guard lock(mu_);
  auto& c = clusters_[cluster];
  c.floor.merge(at);
  c.followers[follower] = at;
}

void StreamMarks::stop(const std::string& cluster, const std::string& follower) {
  std::lock_guard lock(mu_);
  auto& c = clusters_[cluster];
  c.followers[follower] = replication::Position{};
}

void StreamMarks::commit(const std::string& cluster, const std::vector<std::string>& tables, bool all,
                         const replication::Position& at) {
  std::lock_guard lock(mu_);
  auto& c = clusters_[cluster];
  if (all) {
    c.floor.merge(at);
  } else {
    if (c.tables.size() + tables.size() > kMaxTables) {
      for (auto& [name, pos] : c.tables) c.floor.merge(pos);
      c.tables.clear();
    }
    for (auto& t : tables) c.tables[t].merge(at);
  }
}

void StreamMarks::read_to(const std::string& cluster, const std::string& follower, const replication::Position& at) {
  std::lock_guard lock(mu_);
  auto& c = clusters_[cluster];
  auto it = c.followers.find(follower);
  // A commit whose position is unknown (a binlog group without a GTID) is marked where no
  // answer reaches, but says nothing of how far the follower has read.
  if (it != c.followers.end() && !it->second.empty() && !at.marker()) it->second.merge(at);
}

replication::Position StreamMarks::read_position(const std::string& cluster) const {
  std::lock_guard lock(mu_);
  auto it = clusters_.find(cluster);
  if (it == clusters_.end() || it->second.followers.empty()) return {};
  replication::Position least;
  bool first = true;
  for (auto& entry : it->second.followers) {
    const replication::Position& pos = entry.second;
    if (pos.empty()) return {};
    if (first) {
      least = pos;
      first = false;
      continue;
    }
    // Per domain, the smaller; a domain one of them lacks is not known to be read at all.
    std::erase_if(least.parts, [&](auto& part) {
      auto p = std::find_if(pos.parts.begin(), pos.parts.end(), [&](auto& q) { return q.first == part.first; });
      if (p == pos.parts.end()) return true;
      part.second = std::min(part.second, p->second);
      return false;
    });
  }
  return least;
}

bool StreamMarks::covers(const std::string& cluster, const std::vector<std::string>& tables,
                         const replication::Position& data) const {
  std::lock_guard lock(mu_);
  auto it = clusters_.find(cluster);
  if (it == clusters_.end() || it->second.floor.empty()) return false;  // nothing read yet: nothing known
  const auto& c = it->second;
  if (!data.covers(c.floor)) return false;
  for (auto& t : tables)
    if (auto m = c.tables.find(t); m != c.tables.end() && !data.covers(m->second)) return false;
  return true;
}

void StreamMarks::forget(const std::string& cluster) {
  std::lock_guard lock(mu_);
  clusters_.erase(cluster);
}

}  // namespace sluice::cache
