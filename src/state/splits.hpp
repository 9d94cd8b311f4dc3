// [[pools]] splits at run time: which arm (cluster) each new client of a split pool is placed on,
// in the turn order the config computed, and how many clients each arm took and holds now.
// Shared across workers: one mutex over the map (taken at login and reload only); counts are
// atomics, kept across reloads by (protocol, database, arm).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/config/config.hpp"

namespace sluice::state {

struct SplitArm {
  std::string cluster;
  std::atomic<std::uint64_t> placed{0};  // clients placed here since start
  std::atomic<std::int64_t> current{0};  // clients here now
};

// A client's place on an arm: counted in `current` while held.
class SplitPlace {
 public:
  SplitPlace() = default;
  SplitPlace(const SplitPlace&) = delete;
  SplitPlace& operator=(const SplitPlace&) = delete;
  // The place moves with its client's state (a hibernating session): counted once.
  SplitPlace(SplitPlace&& o) noexcept : arm_(std::move(o.arm_)) {}
  SplitPlace& operator=(SplitPlace&& o) noexcept {
    if (this != &o) {
      set(nullptr);
      arm_ = std::move(o.arm_);
    }
    return *this;
  }
  ~SplitPlace() { set(nullptr); }
  void set(std::shared_ptr<SplitArm> arm) {
    if (arm_) arm_->current.fetch_sub(1, std::memory_order_relaxed);
    arm_ = std::move(arm);
    if (arm_) arm_->current.fetch_add(1, std::memory_order_relaxed);
  }
  const SplitArm* get() const { return arm_.get(); }

 private:
  std::shared_ptr<SplitArm> arm_;
};

class Splits {
 public:
  // The pool a client of `p` uses: `p` itself without a split; with one, the arm it holds (when
  // the configuration still has it), else the next arm in turn (counted).
  const config::Pool& place(const config::Pool& p, SplitPlace& held);
  // The same for a client that was on `cluster`'s arm (an online upgrade's): that arm again
  // when `p` still has it.
  const config::Pool& place_on(const config::Pool& p, const std::string& cluster, SplitPlace& held);
  struct Row {
    std::string database, protocol, cluster;
    std::uint64_t placed;
    std::int64_t current;
  };
  std::vector<Row> rows() const;

 private:
  struct State {
    std::uint64_t next = 0;
    std::map<std::string, std::shared_ptr<SplitArm>> arms;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, State> pools_;  // (protocol, database)
};

}  // namespace sluice::state
