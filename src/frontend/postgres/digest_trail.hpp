// The query digests of the requests a PostgreSQL relay has in flight: a request (a simple Query,
// or an extended-protocol batch up to its Sync) gets the digest of its first statement when the
// session names one before queueing it; the relay then adds the rows of its CommandCompletes,
// notes an ErrorResponse, and at its ReadyForQuery records the time it took on the server.
#pragma once

#include <charconv>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "src/observe/digests.hpp"
#include "src/observe/stats.hpp"

namespace sluice::frontend::pg {

class DigestTrail {
 public:
  // The digest for the next request queued (the first statement named since the last one wins).
  void next(std::shared_ptr<observe::Digest> d, observe::DigestRoute route) {
    if (!next_) next_ = std::move(d), route_ = route;
  }
  bool armed() const { return next_ != nullptr; }
  // A request was queued with the digest named: its id (never 0), for its entry.
  std::uint16_t open() {
    if (++last_id_ == 0) last_id_ = 1;
    slots_.push_back({last_id_, std::move(next_), observe::Clock::now(), 0, false, route_});
    return last_id_;
  }
  bool any() const { return !slots_.empty(); }
  // Request `id`'s CommandComplete (its tag: "SELECT 5", "INSERT 0 3", ...) or ErrorResponse.
  void command_complete(std::uint16_t id, std::string_view tag) {
    if (auto* s = find(id)) s->rows += tag_rows(tag);
  }
  void error(std::uint16_t id) {
    if (auto* s = find(id)) s->failed = true;
  }
  // Request `id` ended (its ReadyForQuery): recorded.
  void close(std::uint16_t id) {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].id != id) continue;
      auto& s = slots_[i];
      s.digest->record(observe::micros_since(s.start), s.rows, s.failed, s.route);
      slots_.erase(slots_.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
  }
  // The requests in flight are gone unanswered (a server lost, a reset): nothing recorded.
  void clear() {
    slots_.clear();
    next_.reset();
  }
  // The number at the end of a CommandComplete tag (0 when there is none).
  static std::uint64_t tag_rows(std::string_view tag) {
    while (!tag.empty() && tag.back() == '\0') tag.remove_suffix(1);
    auto sp = tag.rfind(' ');
    if (sp == std::string_view::npos) return 0;
    std::uint64_t n = 0;
    auto num = tag.substr(sp + 1);
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
    return ec == std::errc() && p == num.data() + num.size() ? n : 0;
  }

 private:
  struct Slot {
    std::uint16_t id;
    std::shared_ptr<observe::Digest> digest;
    observe::Clock::time_point start;
    std::uint64_t rows;
    bool failed;
    observe::DigestRoute route;
  };
  Slot* find(std::uint16_t id) {
    for (auto& s : slots_)
      if (s.id == id) return &s;
    return nullptr;
  }
  std::vector<Slot> slots_;
  std::shared_ptr<observe::Digest> next_;
  observe::DigestRoute route_ = observe::DigestRoute::Primary;
  std::uint16_t last_id_ = 0;
};

}  // namespace sluice::frontend::pg
