// Replica lag in time (see header).
#include "src/router/lag_clock.hpp"

namespace sluice::router {

void LagClock::observe_primary(const Position& p, Clock::time_point now) {
  if (!history_.empty() && history_.back().second.covers(p) && p.covers(history_.back().second)) return;  // unchanged
  history_.emplace_back(now, p);
  // Beyond the horizon only the newest entry is needed (a replica that lacks it is at least that
  // far behind). The count bound is a backstop for very short check periods.
  while (history_.size() > 1 && now - history_[1].first >= horizon_) history_.pop_front();
  while (history_.size() > 4096) history_.pop_front();
}

std::chrono::milliseconds LagClock::lag(const Position& replica, Clock::time_point now) const {
  if (history_.empty() || replica.covers(history_.back().second)) return std::chrono::milliseconds(0);
  for (auto& [t, pos] : history_)
    if (!replica.covers(pos)) return std::chrono::duration_cast<std::chrono::milliseconds>(now - t);
  return std::chrono::milliseconds(0);
}

}  // namespace sluice::router
