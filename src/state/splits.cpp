// [[pools]] splits (splits.hpp).
#include "src/state/splits.hpp"

namespace sluice::state {

const config::Pool& Splits::place(const config::Pool& p, SplitPlace& held) {
  if (p.split.empty() || p.arms.size() != p.split.size() || p.cycle.empty()) {
    held.set(nullptr);
    return p;
  }
  std::lock_guard lock(mu_);
  auto& st = pools_[{config::to_string(p.protocol), p.database}];
  if (auto* cur = held.get())
    for (auto& a : p.arms)
      if (a.cluster == cur->cluster) return a;  // sticky: the arm it was placed on
  std::size_t i = p.cycle[st.next++ % p.cycle.size()];
  auto& arm = st.arms[p.arms[i].cluster];
  if (!arm) {
    arm = std::make_shared<SplitArm>();
    arm->cluster = p.arms[i].cluster;
  }
  arm->placed.fetch_add(1, std::memory_order_relaxed);
  held.set(arm);
  return p.arms[i];
}

const config::Pool& Splits::place_on(const config::Pool& p, const std::string& cluster, SplitPlace& held) {
  if (p.split.empty() || p.arms.size() != p.split.size() || p.cycle.empty()) return place(p, held);
  for (auto& a : p.arms) {
    if (a.cluster != cluster) continue;
    std::lock_guard lock(mu_);
    auto& arm = pools_[{config::to_string(p.protocol), p.database}].arms[cluster];
    if (!arm) {
      arm = std::make_shared<SplitArm>();
      arm->cluster = cluster;
    }
    held.set(arm);
    return a;
  }
  return place(p, held);
}

std::vector<Splits::Row> Splits::rows() const {
  std::lock_guard lock(mu_);
  std::vector<Row> out;
  for (auto& [key, st] : pools_)
    for (auto& [cluster, a] : st.arms)
      out.push_back({key.second, key.first, cluster, a->placed.load(std::memory_order_relaxed),
                     a->current.load(std::memory_order_relaxed)});
  return out;
}

}  // namespace sluice::state
