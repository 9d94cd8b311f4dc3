// What a PostgreSQL relay follows for the requests it has in flight: a request (a simple Query,
// or an extended-protocol batch up to its Sync) gets, when the session names them before queueing
// it, the query digest of its statement and a mirror copy of it; the relay then adds the rows of
// its CommandCompletes, hashes its DataRows (when mirrored), notes an ErrorResponse, and at its
// ReadyForQuery records the digest and hands the copy, with the answer's sum, to the mirror.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "src/observe/digests.hpp"
#include "src/observe/stats.hpp"
#include "src/router/mirror.hpp"

namespace sluice::frontend::pg {

class RequestTrail {
 public:
  // The digest for the next request queued (the first statement named since the last one wins).
  void next(std::shared_ptr<observe::Digest> d, observe::DigestRoute route) {
    if (!next_) next_ = std::move(d), route_ = route;
  }
  // A copy of the next request for `mirror`.
  void next_mirror(std::shared_ptr<router::Mirror> mirror, router::MirrorCopy copy) {
    if (!next_mirror_) next_mirror_ = std::move(mirror), copy_ = std::move(copy);
  }
  bool armed() const { return next_ || next_mirror_; }
  bool digest_armed() const { return next_ != nullptr; }
  // A request was queued with what was named: its id (never 0), for its entry.
  std::uint16_t open() {
    if (++last_id_ == 0) last_id_ = 1;
    Slot s{last_id_, std::move(next_), observe::Clock::now(), {}, route_, std::move(next_mirror_), {}};
    if (s.mirror) s.copy = std::move(copy_), ++hashing_;
    slots_.push_back(std::move(s));
    return last_id_;
  }
  bool any() const { return !slots_.empty(); }
  bool hashing() const { return hashing_ > 0; }
  // Request `id`'s CommandComplete (its tag: "SELECT 5", "INSERT 0 3", ...), DataRow (its body)
  // or ErrorResponse.
  void command_complete(std::uint16_t id, std::string_view tag) {
    if (auto* s = find(id)) s->sum.rows += router::AnswerSum::tag_rows(tag);
  }
  void data_row(std::uint16_t id, std::string_view body) {
    if (auto* s = find(id); s && s->mirror) s->sum.row(body);
  }
  void error(std::uint16_t id) {
    if (auto* s = find(id)) s->sum.error = true;
  }
  // Request `id` ended (its ReadyForQuery): the digest recorded, the copy handed over.
  void close(std::uint16_t id) {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].id != id) continue;
      auto& s = slots_[i];
      if (s.digest) s.digest->record(observe::micros_since(s.start), s.sum.rows, s.sum.error, s.route);
      if (s.mirror) {
        s.copy.answer = s.sum;
        s.mirror->offer(std::move(s.copy));
        --hashing_;
      }
      slots_.erase(slots_.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
  }
  // The requests in flight are gone unanswered (a server lost, a reset): nothing recorded.
  void clear() {
    slots_.clear();
    next_.reset();
    next_mirror_.reset();
    hashing_ = 0;
  }

 private:
  struct Slot {
    std::uint16_t id;
    std::shared_ptr<observe::Digest> digest;
    observe::Clock::time_point start;
    router::AnswerSum sum;
    observe::DigestRoute route;
    std::shared_ptr<router::Mirror> mirror;
    router::MirrorCopy copy;
  };
  Slot* find(std::uint16_t id) {
    for (auto& s : slots_)
      if (s.id == id) return &s;
    return nullptr;
  }
  std::vector<Slot> slots_;
  std::shared_ptr<observe::Digest> next_;
  observe::DigestRoute route_ = observe::DigestRoute::Primary;
  std::shared_ptr<router::Mirror> next_mirror_;
  router::MirrorCopy copy_;
  int hashing_ = 0;
  std::uint16_t last_id_ = 0;
};

}  // namespace sluice::frontend::pg
